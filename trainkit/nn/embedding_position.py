"""Learned positional embeddings: ``PositionalEmbedding`` and ``TokenPositionEmbedding`` (GPT's input layer).

PyTorch has no class for these; GPT-2 and nanoGPT write them as two
``nn.Embedding`` tables, ``wte`` for tokens and ``wpe`` for positions, summed::

    x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))

:class:`TokenPositionEmbedding` is exactly that, with its tables as children
``tok`` and ``pos`` (keys ``tok.weight``, ``pos.weight``: two ``nn.Embedding``
state dicts); :class:`PositionalEmbedding` adds the position table alone to an
input that already holds vectors (``weight``, as ``nn.Embedding(max_len, dim)``
would hold it). Both start N(0, 1), ``nn.Embedding``'s default.
"""
from __future__ import annotations

import numpy as np

from trainkit.autograd.tensor import Tensor
from trainkit.nn import functional as F
from trainkit.nn import init
from trainkit.nn._helpers import np_dtype
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.nn.sparse import Embedding
from trainkit.registry import Example, Inferred, Int, ShapeProblem, fmt, layer
from trainkit.nn import onnx_rules as _onnx

__all__ = ["PositionalEmbedding", "TokenPositionEmbedding"]


def _positions(length: int, max_len: int, who: str) -> Tensor:
    if length > max_len:
        raise IndexError(f"{who}: the sequence has {length} positions but max_len is {max_len}")
    return Tensor(np.arange(length, dtype=np.int64))


def _tokens(rng: np.random.Generator) -> list:
    """The gradient-check input: token ids, a batch of 2 sequences of 3."""
    return [rng.integers(0, 5, size=(2, 3)).astype(np.int64)]


@layer("positional_embedding", input_arg="embedding_dim", input_dim=-1,
       args={"max_len": Int(lo=1), "embedding_dim": Int(lo=1)},
       example=Example((2, 3, 4), {"max_len": 5}), onnx=_onnx.positional_embedding)
class PositionalEmbedding(Module):
    """Add a learned vector per position to a sequence of vectors: ``x + weight[:seq]``.

    Args:
        max_len: the longest sequence (rows of the table).
        embedding_dim: size of each vector (the input's last dimension).
        dtype: parameter dtype (float32 by default).

    Shape:
        ``(N, seq, embedding_dim)`` -> the same, ``seq <= max_len`` (or unbatched ``(seq, embedding_dim)``).

    Attributes:
        weight: ``(max_len, embedding_dim)``, initialised N(0, 1) (``nn.Embedding``'s default).
    """

    def __init__(self, max_len: int, embedding_dim: int, dtype=None):
        super().__init__()
        self.max_len, self.embedding_dim = max_len, embedding_dim
        self.weight = Parameter(np.empty((max_len, embedding_dim), dtype=np_dtype(dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 1), as ``nn.Embedding``."""
        init.normal_(self.weight)

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        if input.ndim < 2 or input.shape[-1] != self.embedding_dim:
            raise RuntimeError(f"PositionalEmbedding: expected input (N, seq, {self.embedding_dim}), got "
                               f"{tuple(input.shape)}")
        return input + F.embedding(_positions(input.shape[-2], self.max_len, "PositionalEmbedding"), self.weight)

    def extra_repr(self) -> str:
        return f"{self.max_len}, {self.embedding_dim}"

    @staticmethod
    def infer_shape(args, x):
        """``(seq, embedding_dim)`` per sample, unchanged; ``seq`` at most ``max_len``."""
        if len(x) != 2:
            raise ShapeProblem(f"positional_embedding needs (sequence, features) input per sample, found {fmt(x)}")
        if x[0] > args["max_len"]:
            raise ShapeProblem(f"the input has {x[0]} positions but max_len is {args['max_len']}", "max_len")
        return Inferred(tuple(x), macs=0, params=args["max_len"] * x[1])


@layer("token_position_embedding", args={"num_embeddings": Int(lo=1), "embedding_dim": Int(lo=1),
                                         "max_len": Int(lo=1)},
       example=Example(_tokens, {"num_embeddings": 5, "embedding_dim": 3, "max_len": 4}), onnx=_onnx.token_position_embedding)
class TokenPositionEmbedding(Module):
    """Token ids to vectors plus a learned vector per position: GPT's ``wte(idx) + wpe(arange(seq))``.

    Args:
        num_embeddings: the vocabulary size (token ids run from 0 to num_embeddings-1).
        embedding_dim: size of each vector.
        max_len: the longest sequence (the model's context length, a GPT's block size).
        dtype: parameter dtype (float32 by default).

    Shape:
        integer ``(N, seq)`` -> ``(N, seq, embedding_dim)``, ``seq <= max_len`` (or unbatched ``(seq,)``).

    Attributes:
        tok: ``Embedding(num_embeddings, embedding_dim)`` (key ``tok.weight``).
        pos: ``Embedding(max_len, embedding_dim)`` (key ``pos.weight``).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, max_len: int, dtype=None):
        super().__init__()
        self.max_len = max_len
        self.tok = Embedding(num_embeddings, embedding_dim, dtype=dtype)
        self.pos = Embedding(max_len, embedding_dim, dtype=dtype)

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return self.tok(input) + self.pos(_positions(input.shape[-1], self.max_len, "TokenPositionEmbedding"))

    def extra_repr(self) -> str:
        return f"{self.tok.num_embeddings}, {self.tok.embedding_dim}, max_len={self.max_len}"

    @staticmethod
    def infer_shape(args, x):
        """``(seq,)`` token ids per sample -> ``(seq, embedding_dim)``; ``seq`` at most ``max_len``."""
        if len(x) != 1:
            raise ShapeProblem(f"token_position_embedding needs a sequence of token ids per sample, found {fmt(x)}")
        if x[0] > args["max_len"]:
            raise ShapeProblem(f"the input has {x[0]} positions but max_len is {args['max_len']}", "max_len")
        dim = args["embedding_dim"]
        return Inferred((x[0], dim), macs=0, params=(args["num_embeddings"] + args["max_len"]) * dim)
