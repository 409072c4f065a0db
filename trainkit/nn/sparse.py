"""``Embedding``: a lookup table of learned vectors indexed by integer tokens (PyTorch's ``nn.Embedding``)."""
from __future__ import annotations

import numpy as np

from trainkit.autograd import device as _device
from trainkit.autograd.tensor import Tensor
from trainkit.nn import functional as F
from trainkit.nn import init
from trainkit.nn._helpers import np_dtype
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.registry import Example, Inferred, Int, Nullable, ShapeProblem, layer
from trainkit.nn import onnx_rules as _onnx

__all__ = ["Embedding"]


def _tokens(rng: np.random.Generator) -> list:
    """The gradient-check input of the declared example: token ids (a batch of 2 sequences of 3)."""
    return [rng.integers(0, 5, size=(2, 3)).astype(np.int64)]


def _check_padding(args, path, ck) -> None:
    pad, n = args.get("padding_idx"), args.get("num_embeddings")
    if pad is not None and isinstance(n, int) and not -n <= pad < n:
        ck.error(path + ("padding_idx",), f"padding_idx {pad} is outside the {n} embeddings "
                                          f"(from {-n} to {n - 1})")


@layer("embedding", args={"num_embeddings": Int(lo=1), "embedding_dim": Int(lo=1), "padding_idx": Nullable(Int())},
       exclude=("max_norm", "norm_type", "scale_grad_by_freq", "sparse", "_weight", "_freeze"),
       check=_check_padding, example=Example(_tokens, {"num_embeddings": 5, "embedding_dim": 3}), onnx=_onnx.embedding)
class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``; the input holds indices into it.

    Args:
        num_embeddings: size of the vocabulary (indices run from 0 to num_embeddings-1).
        embedding_dim: size of each vector.
        padding_idx: this row gets no gradient (and starts at zero); negative values count from the end.
        max_norm: not supported (a NotImplementedError says so).
        norm_type: with ``max_norm`` only.
        scale_grad_by_freq: not supported.
        sparse: accepted and ignored (gradients are dense on this engine).
        dtype: parameter dtype (float32 by default).

    Shape:
        integer input of any shape ``(*)`` -> ``(*, embedding_dim)``.

    Attributes:
        weight: ``(num_embeddings, embedding_dim)``, initialised N(0, 1) (the ``padding_idx`` row zeroed).

    In YAML the input is each sample's token ids, e.g. ``(seq,)`` -> ``(seq, embedding_dim)``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, max_norm=None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False, _weight=None,
                 _freeze: bool = False, device=None, dtype=None):
        super().__init__()
        _device.check_cpu(device)
        if max_norm is not None or scale_grad_by_freq:
            raise NotImplementedError("Embedding: max_norm and scale_grad_by_freq are not supported by trainkit")
        if padding_idx is not None:
            if padding_idx > 0:
                assert padding_idx < num_embeddings, "Padding_idx must be within num_embeddings"
            elif padding_idx < 0:
                assert padding_idx >= -num_embeddings, "Padding_idx must be within num_embeddings"
                padding_idx = num_embeddings + padding_idx
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=np_dtype(dtype)),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            arr = _weight._array if isinstance(_weight, Tensor) else np.asarray(_weight)
            if arr.shape != (num_embeddings, embedding_dim):
                raise ValueError("Shape of weight does not match num_embeddings and embedding_dim")
            self.weight = Parameter(arr, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """N(0, 1), then the ``padding_idx`` row set to zero (PyTorch's default)."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._array[self.padding_idx] = 0

    def forward(self, input):  # noqa: A002
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        if self.sparse is not False:
            s += ", sparse=True"
        return s

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None, max_norm=None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False):
        """An Embedding whose weight is ``embeddings`` (2-D; shared, not copied), frozen unless ``freeze=False``."""
        if embeddings.ndim != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, _weight=embeddings,
                   _freeze=freeze)

    @staticmethod
    def infer_shape(args, x):
        """``(*) -> (*, embedding_dim)``: one vector per token id."""
        if any(s is None for s in x):
            raise ShapeProblem("embedding needs a known number of token ids per sample")
        dim = args["embedding_dim"]
        return Inferred(tuple(x) + (dim,), macs=0, params=args["num_embeddings"] * dim)
