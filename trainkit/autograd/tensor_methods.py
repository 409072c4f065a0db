"""The op methods of :class:`~trainkit.autograd.tensor.Tensor` (``x.sin()``, ``x.gather(1, i)``, ``x.topk(3)`` ...).

Each method calls the function of the same name in ``autograd/ops``, so a
method and ``trainkit.<name>`` are one implementation. They live in this
mixin to keep ``tensor.py`` to the tensor's own protocol. The op modules are
reached through the ``ops`` package at call time because they import Tensor
themselves (``tensor.py`` imports them once Tensor exists).
"""
from __future__ import annotations

import numpy as np

from . import ops


class TensorMethods:
    """Math, reduction, comparison, indexing, sorting, layout and linear-algebra methods of Tensor."""

    __slots__ = ()

    # ------------------------------------------------------------ elementwise math
    def sin(self):
        return ops.math.sin(self)

    def cos(self):
        return ops.math.cos(self)

    def tan(self):
        return ops.math.tan(self)

    def asin(self):
        return ops.math.asin(self)

    def acos(self):
        return ops.math.acos(self)

    def atan(self):
        return ops.math.atan(self)

    arcsin, arccos, arctan = asin, acos, atan

    def atan2(self, other):
        return ops.math.atan2(self, other)

    arctan2 = atan2

    def sinh(self):
        return ops.math.sinh(self)

    def cosh(self):
        return ops.math.cosh(self)

    def log1p(self):
        return ops.math.log1p(self)

    def expm1(self):
        return ops.math.expm1(self)

    def log2(self):
        return ops.math.log2(self)

    def log10(self):
        return ops.math.log10(self)

    def rsqrt(self):
        return ops.math.rsqrt(self)

    def reciprocal(self):
        return ops.math.reciprocal(self)

    def erf(self):
        return ops.math.erf(self)

    def frac(self):
        return ops.math.frac(self)

    def sign(self):
        return ops.math.sign(self)

    def floor(self):
        return ops.math.floor(self)

    def ceil(self):
        return ops.math.ceil(self)

    def trunc(self):
        return ops.math.trunc(self)

    def round(self, decimals: int = 0):
        return ops.math.round(self, decimals=decimals)

    def negative(self):
        return -self

    # ------------------------------------------------------------ reductions
    def prod(self, dim=None, keepdim=False, dtype=None):
        return ops.scan.prod(self, dim, keepdim, dtype=dtype)

    def cumsum(self, dim, dtype=None):
        return ops.scan.cumsum(self, dim, dtype=dtype)

    def cumprod(self, dim, dtype=None):
        return ops.scan.cumprod(self, dim, dtype=dtype)

    def amax(self, dim=(), keepdim=False):
        return ops.reduce.amax(self, dim, keepdim)

    def amin(self, dim=(), keepdim=False):
        return ops.reduce.amin(self, dim, keepdim)

    def all(self, dim=None, keepdim=False):
        return ops.reduce.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return ops.reduce.any(self, dim, keepdim)

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        return ops.linalg.norm(self, p, dim, keepdim, dtype)

    # ------------------------------------------------------------ comparisons and logic
    def gt(self, other):
        return ops.compare.gt(self, other)

    def lt(self, other):
        return ops.compare.lt(self, other)

    def ge(self, other):
        return ops.compare.ge(self, other)

    def le(self, other):
        return ops.compare.le(self, other)

    greater, less, greater_equal, less_equal = gt, lt, ge, le

    def not_equal(self, other):
        return ops.compare.ne(self, other)

    def isnan(self):
        return ops.compare.isnan(self)

    def isinf(self):
        return ops.compare.isinf(self)

    def isfinite(self):
        return ops.compare.isfinite(self)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return ops.compare.isclose(self, other, rtol, atol, equal_nan)

    def logical_and(self, other):
        return ops.compare.logical_and(self, other)

    def logical_or(self, other):
        return ops.compare.logical_or(self, other)

    def logical_xor(self, other):
        return ops.compare.logical_xor(self, other)

    def logical_not(self):
        return ops.compare.logical_not(self)

    def __xor__(self, other):
        from .tensor import Tensor
        return Tensor(self._array ^ ops.elementwise.raw(other))

    # ------------------------------------------------------------ indexing
    def gather(self, dim, index):
        return ops.index.gather(self, dim, index)

    def take_along_dim(self, indices, dim=None):
        return ops.index.take_along_dim(self, indices, dim)

    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        return ops.index.scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_add(self, dim, index, src):
        return ops.index.scatter_add(self, dim, index, src)

    def index_select(self, dim, index):
        return ops.index.index_select(self, dim, index)

    def masked_fill(self, mask, value):
        return ops.index.masked_fill(self, mask, value)

    def masked_select(self, mask):
        return ops.index.masked_select(self, mask)

    def nonzero(self, *, as_tuple=False):
        return ops.index.nonzero(self, as_tuple=as_tuple)

    def argwhere(self):
        return ops.index.argwhere(self)

    # in place (data only, like the other ``_`` methods: for buffers and parameters under no_grad)
    def masked_fill_(self, mask, value):
        self._check_inplace("masked_fill_", value)
        self._array[...] = ops.index.masked_fill(self.detach(), mask, value)._array
        return self

    def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
        self._check_inplace("scatter_", src)
        self._array[...] = ops.index.scatter(self.detach(), dim, index,
                                             None if src is None else _detached(src), value=value,
                                             reduce=reduce)._array
        return self

    def scatter_add_(self, dim, index, src):
        self._check_inplace("scatter_add_", src)
        self._array[...] = ops.index.scatter_add(self.detach(), dim, index, _detached(src))._array
        return self

    # ------------------------------------------------------------ sorting
    def sort(self, dim=-1, descending=False, stable=False):
        return ops.sort.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return ops.sort.argsort(self, dim, descending, stable)

    def msort(self):
        return ops.sort.msort(self)

    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002
        return ops.sort.topk(self, k, dim, largest, sorted)

    def kthvalue(self, k, dim=-1, keepdim=False):
        return ops.sort.kthvalue(self, k, dim, keepdim)

    def median(self, dim=None, keepdim=False):
        return ops.sort.median(self, dim, keepdim)

    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
        return ops.sort.unique(self, sorted, return_inverse, return_counts, dim)

    # ------------------------------------------------------------ layout
    def split(self, split_size, dim=0):
        return ops.layout.split(self, split_size, dim)

    def chunk(self, chunks, dim=0):
        return ops.layout.chunk(self, chunks, dim)

    def tensor_split(self, indices_or_sections, dim=0):
        return ops.layout.tensor_split(self, indices_or_sections, dim)

    def unbind(self, dim=0):
        return ops.layout.unbind(self, dim)

    def narrow(self, dim, start, length):
        return ops.layout.narrow(self, dim, start, length)

    def select(self, dim, index):
        return ops.layout.select(self, dim, index)

    def movedim(self, source, destination):
        return ops.layout.movedim(self, source, destination)

    moveaxis = movedim

    def flip(self, *dims):
        return ops.layout.flip(self, dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims)

    def fliplr(self):
        return ops.layout.fliplr(self)

    def flipud(self):
        return ops.layout.flipud(self)

    def roll(self, shifts, dims=None):
        return ops.layout.roll(self, shifts, dims)

    def repeat_interleave(self, repeats, dim=None, *, output_size=None):
        return ops.layout.repeat_interleave(self, repeats, dim)

    # ------------------------------------------------------------ linear algebra
    def tril(self, diagonal=0):
        return ops.linalg.tril(self, diagonal)

    def triu(self, diagonal=0):
        return ops.linalg.triu(self, diagonal)

    def tril_(self, diagonal=0):
        self._check_inplace("tril_")
        self._array[...] = np.tril(self._array, diagonal)
        return self

    def triu_(self, diagonal=0):
        self._check_inplace("triu_")
        self._array[...] = np.triu(self._array, diagonal)
        return self

    def diag(self, diagonal=0):
        return ops.linalg.diag(self, diagonal)

    def diagonal(self, offset=0, dim1=0, dim2=1):
        return ops.linalg.diagonal(self, offset, dim1, dim2)

    def diag_embed(self, offset=0):
        return ops.linalg.diag_embed(self, offset)

    def trace(self):
        return ops.linalg.trace(self)

    def bmm(self, mat2):
        return ops.linalg.bmm(self, mat2)

    def dot(self, other):
        return ops.linalg.dot(self, other)

    def outer(self, vec2):
        return ops.linalg.outer(self, vec2)

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        return ops.linalg.addmm(self, mat1, mat2, beta=beta, alpha=alpha)

    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return ops.linalg.baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)

    def lerp(self, end, weight):
        return ops.math.lerp(self, end, weight)

    # ------------------------------------------------------------ random
    def bernoulli(self, p=None, *, generator=None):
        from .sampling import bernoulli
        return bernoulli(self, p, generator=generator)

    def multinomial(self, num_samples, replacement=False, *, generator=None):
        from .sampling import multinomial
        return multinomial(self, num_samples, replacement, generator=generator)

    # in place (data only)
    def bernoulli_(self, p=0.5, *, generator=None):
        """Fill with 1 (probability ``p``, a scalar or a tensor) or 0."""
        from .random import default_generator
        self._check_inplace("bernoulli_", p)
        rng = generator or default_generator()
        self._array[...] = rng.random(self._array.shape) < np.asarray(ops.elementwise.raw(p))
        return self

    def exponential_(self, lambd=1.0, *, generator=None):
        """Fill with exponential samples of rate ``lambd``."""
        from .random import default_generator
        self._check_inplace("exponential_")
        rng = generator or default_generator()
        self._array[...] = rng.exponential(1.0 / lambd, self._array.shape)
        return self


def _detached(x):
    return x.detach() if hasattr(x, "detach") else x
