"""Matrix ops with PyTorch's names: mm, bmm, dot, outer, tril/triu, diag/diagonal/diag_embed, trace, eye, norm.

``mm``/``bmm``/``dot`` check their ranks (as PyTorch does, so a silent
broadcast cannot hide a bug) and then run the one :class:`~.matmul.MatMul` node.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..function import Op, is_grad_enabled
from ..tensor import Tensor
from .elementwise import promote
from .matmul import MatMul
from .reduce import _axis, _expand_grad


def mm(input: Tensor, mat2: Tensor) -> Tensor:  # noqa: A002 - PyTorch's names
    """Matrix product of two 2-D tensors."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {input.ndim}-D and {mat2.ndim}-D")
    if input.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x{input.shape[1]} and "
                           f"{mat2.shape[0]}x{mat2.shape[1]})")
    return MatMul.apply(*promote(input, mat2))


def bmm(input: Tensor, mat2: Tensor) -> Tensor:  # noqa: A002
    """Batched matrix product of (b, n, m) and (b, m, p) tensors."""
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor and batch2 must be a 3D tensor, got {input.ndim}-D and "
                           f"{mat2.ndim}-D")
    if input.shape[0] != mat2.shape[0] or input.shape[2] != mat2.shape[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{input.shape[0]}, {input.shape[2]}] but got: [{mat2.shape[0]}, {mat2.shape[1]}].")
    return MatMul.apply(*promote(input, mat2))


def dot(input: Tensor, tensor: Tensor) -> Tensor:  # noqa: A002
    """Inner product of two 1-D tensors of the same length."""
    if input.ndim != 1 or tensor.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {tensor.ndim}D tensors")
    if input.shape[0] != tensor.shape[0]:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{input.shape[0]}] and src [{tensor.shape[0]}] "
                           "to have the same number of elements, but got different.")
    return MatMul.apply(*promote(input, tensor))


def outer(input: Tensor, vec2: Tensor) -> Tensor:  # noqa: A002
    """Outer product ``input[i] * vec2[j]`` of two 1-D tensors."""
    if input.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError(f"outer: expected 1-D tensors, got {input.ndim}-D and {vec2.ndim}-D")
    return input.reshape(-1, 1) * vec2.reshape(1, -1)


ger = outer


def _add_scaled(input, product, beta, alpha):  # noqa: A002
    """``beta * input + alpha * product`` as torch's addmm family. With beta 0 the input's values are
    ignored, NaN and infinities too, and its gradient is zeros, as in torch."""
    try:
        fits = np.broadcast_shapes(tuple(input.shape), tuple(product.shape)) == tuple(product.shape)
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(f"the input of shape {tuple(input.shape)} does not broadcast to the product's shape "
                           f"{tuple(product.shape)}")
    if alpha != 1:
        product = product * alpha
    if beta != 0:
        return product + (input if beta == 1 else input * beta)
    if input.requires_grad and is_grad_enabled():  # a zero gradient for input, its values not read
        from ..functional import where
        return product + where(input.isfinite(), input, 0.0) * 0
    return product


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta=1, alpha=1) -> Tensor:  # noqa: A002
    """``beta * input + alpha * (mat1 @ mat2)``: 2-D matrices, ``input`` broadcast to the product."""
    return _add_scaled(input, mm(mat1, mat2), beta, alpha)


def baddbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:  # noqa: A002
    """``beta * input + alpha * (batch1 @ batch2)``: batches of matrices, ``input`` broadcast."""
    return _add_scaled(input, bmm(batch1, batch2), beta, alpha)


class Tri(Op):
    """Keep the lower (``tril``) or upper (``triu``) triangle of the last two dimensions."""

    def __init__(self, diagonal=0, upper=False):
        self.k, self.upper = diagonal, upper

    def forward(self, x):
        return np.triu(x, self.k) if self.upper else np.tril(x, self.k)

    def backward(self, gy):
        return (np.triu(gy, self.k) if self.upper else np.tril(gy, self.k),)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002
    """The lower triangle (on and below ``diagonal``) of the last two dimensions; the rest zero."""
    if input.ndim < 2:
        raise RuntimeError("tril: input tensor must have at least 2 dimensions")
    return Tri.apply(input, diagonal=int(diagonal), upper=False)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002
    """The upper triangle (on and above ``diagonal``) of the last two dimensions; the rest zero."""
    if input.ndim < 2:
        raise RuntimeError("triu: input tensor must have at least 2 dimensions")
    return Tri.apply(input, diagonal=int(diagonal), upper=True)


def _diag_coords(n_rows: int, n_cols: int, offset: int) -> tuple:
    """Row and column indices of diagonal ``offset`` of an (n_rows, n_cols) matrix."""
    if offset >= 0:
        n = max(min(n_rows, n_cols - offset), 0)
        i = np.arange(n)
        return i, i + offset
    n = max(min(n_rows + offset, n_cols), 0)
    i = np.arange(n)
    return i - offset, i


class Diagonal(Op):
    """Diagonal ``offset`` of the (dim1, dim2) planes, appended as the last dimension."""

    def __init__(self, offset=0, dim1=0, dim2=1):
        self.offset, self.dim1, self.dim2 = offset, dim1, dim2

    def forward(self, x):
        self.shape = x.shape
        return np.diagonal(x, self.offset, self.dim1, self.dim2).copy()

    def backward(self, gy):
        g = np.zeros(self.shape, gy.dtype)
        planes = np.moveaxis(g, (self.dim1, self.dim2), (-2, -1))  # a writeable view of g
        rows, cols = _diag_coords(planes.shape[-2], planes.shape[-1], self.offset)
        planes[..., rows, cols] = gy
        return (g,)


class DiagEmbed(Op):
    """Square matrices with the last dimension on diagonal ``offset`` (zeros elsewhere)."""

    def __init__(self, offset=0):
        self.offset = offset

    def forward(self, x):
        n = x.shape[-1] + abs(self.offset)
        out = np.zeros(x.shape[:-1] + (n, n), x.dtype)
        self.coords = _diag_coords(n, n, self.offset)
        out[..., self.coords[0], self.coords[1]] = x
        return out

    def backward(self, gy):
        return (gy[..., self.coords[0], self.coords[1]],)


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:  # noqa: A002
    """The diagonal ``offset`` of the planes (dim1, dim2), as a new last dimension."""
    nd = input.ndim
    return Diagonal.apply(input, offset=int(offset), dim1=dim1 % nd, dim2=dim2 % nd)


def diag_embed(input: Tensor, offset: int = 0) -> Tensor:  # noqa: A002
    """Batched square matrices whose diagonal ``offset`` is the last dimension of ``input``."""
    return DiagEmbed.apply(input, offset=int(offset))


def diag(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002
    """A 1-D tensor as the diagonal of a square matrix, or the diagonal of a 2-D tensor."""
    if input.ndim == 1:
        return DiagEmbed.apply(input, offset=int(diagonal))
    if input.ndim == 2:
        return Diagonal.apply(input, offset=int(diagonal), dim1=0, dim2=1)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


def trace(input: Tensor) -> Tensor:  # noqa: A002
    """Sum of the main diagonal of a 2-D tensor."""
    if input.ndim != 2:
        raise RuntimeError("trace: expected a matrix")
    return Diagonal.apply(input, offset=0, dim1=0, dim2=1).sum()


def eye(n: int, m: int | None = None, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """The (n, m) identity matrix (m = n by default), float32 unless ``dtype`` says otherwise."""
    t = Tensor(np.eye(n, n if m is None else m, dtype=dtypes.to_dtype(dtype) or dtypes.get_default_dtype()))
    return t.requires_grad_(True) if requires_grad else t


class VectorNorm(Op):
    """The p-norm over ``dim`` (all elements when None), with PyTorch's gradient at 0, ties and p = 0, inf."""

    def __init__(self, p=2.0, dim=None, keepdim=False):
        self.p, self.dim, self.keepdim = p, dim, keepdim

    def forward(self, x):
        p = self.p
        self.x = x
        self.axis = axis = _axis(self.dim, x.ndim)
        a = np.abs(x)
        if p == 2:
            y = np.sqrt((x * x).sum(axis=axis, keepdims=True))
        elif p == 1:
            y = a.sum(axis=axis, keepdims=True)
        elif p == math.inf:
            y = a.max(axis=axis, keepdims=True)
        elif p == -math.inf:
            y = a.min(axis=axis, keepdims=True)
        elif p == 0:
            y = (a != 0).sum(axis=axis, keepdims=True).astype(x.dtype)
        else:
            y = (a ** p).sum(axis=axis, keepdims=True) ** (1.0 / p)
        self.yk = y = np.asarray(y, x.dtype)
        return y if self.keepdim else np.asarray(np.squeeze(y, axis))

    def backward(self, gy):
        x, y, p = self.x, self.yk, self.p
        g = _expand_grad(gy, x.shape, self.axis, self.keepdim)
        zero = y == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 0:
                return (np.zeros(x.shape, gy.dtype),)
            if p == 1:
                return (np.sign(x) * g,)
            if p == 2:
                return (g * np.where(zero, 0.0, x / y).astype(x.dtype, copy=False),)
            if math.isinf(p):
                a = np.abs(x)
                mask = (a == y) | np.isnan(a)
                return (np.sign(x) * (g / mask.sum(axis=self.axis, keepdims=True).astype(gy.dtype)) * mask,)
            ratio = np.abs(x) / y
            if p < 2:
                out = np.sign(x) * ratio ** (p - 1) * g
            else:
                out = (x / y) * ratio ** (p - 2) * g
            return (np.where(zero, 0.0, out).astype(x.dtype, copy=False),)


class NuclearNorm(Op):
    """Sum of the singular values of the matrices in the last two dimensions; d/dA = U Vᵀ."""

    def __init__(self, keepdim=False):
        self.keepdim = keepdim

    def forward(self, x):
        u, s, vh = np.linalg.svd(x, full_matrices=False)
        self.uvh = u @ vh
        y = s.sum(axis=-1)
        return y[..., None, None] if self.keepdim else y

    def backward(self, gy):
        g = gy if self.keepdim else gy[..., None, None]
        return (g * self.uvh,)


def norm(input: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:  # noqa: A002
    """PyTorch's ``norm``: vector p-norms (``'fro'`` is p=2) over ``dim`` or all elements, or ``'nuc'``.

    ``p`` may be any number, ``inf``/``-inf`` or 0 (the count of nonzeros);
    ``'nuc'`` is the sum of singular values of a matrix (or of the planes ``dim``).
    """
    x = input if dtype is None else input.to(dtype)
    if x._array.dtype.kind != "f":
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point tensor as input. Got {x.dtype}")
    if isinstance(dim, int):
        dim = (dim,)
    if p == "nuc":
        dims = (x.ndim - 2, x.ndim - 1) if dim is None else tuple(d % x.ndim for d in dim)
        if len(dims) != 2:
            raise RuntimeError("nuclear norm requires a 2-D input or two dims")
        from .layout import movedim
        moved = movedim(x, dims, (-2, -1))
        y = NuclearNorm.apply(moved, keepdim=keepdim)
        return movedim(y, (-2, -1), dims) if keepdim else y
    if p == "fro" or p is None:
        p = 2.0
    elif isinstance(p, str):
        raise RuntimeError(f"norm: unsupported p {p!r} (numbers, inf, 'fro' and 'nuc' are)")
    return VectorNorm.apply(x, p=float(p), dim=None if dim is None else tuple(dim), keepdim=keepdim)
