"""``einsum``: numpy's ``einsum_path`` picks the contraction order; each pairwise step is one batched GEMM.

numpy's own ``einsum(optimize=...)`` falls back to its C loop for contractions
with a batch index (``bij,bjk->bik``), which is many times slower than
``matmul``. Here each pair of operands is transposed to (batch..., M, K) and
(batch..., K, N) and multiplied with ``np.matmul`` (BLAS), the way PyTorch
does it. The gradient with respect to each operand is another einsum (of the
output gradient and the other operands) run through the same planner.
"""
from __future__ import annotations

import functools
import string

import numpy as np

from ..function import Op
from ..tensor import Tensor

_LETTERS = string.ascii_letters


def parse(equation: str, shapes: list) -> tuple:
    """Explicit subscripts ``(inputs, output)``: ellipses expanded into unused letters, implicit output filled in."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise RuntimeError(f"einsum(): {len(terms)} operand subscripts given for {len(shapes)} operands")
    free = [c for c in _LETTERS if c not in eq]
    n_ell = max((len(s) - (len(t) - 3) for t, s in zip(terms, shapes) if "..." in t), default=0)
    ell = "".join(free[:n_ell])
    inputs = []
    for t, s in zip(terms, shapes):
        if "..." in t:
            k = len(s) - (len(t) - 3)
            t = t.replace("...", ell[n_ell - k:] if k else "")
        if len(t) != len(s) or any(c not in _LETTERS for c in t):
            raise RuntimeError(f"einsum(): subscript {t!r} does not fit an operand with {len(s)} dimensions")
        inputs.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:  # implicit mode: ellipsis dimensions, then the labels used once, in alphabetical order
        joined = "".join(terms)
        out = ell + "".join(sorted(c for c in set(joined) if c in _LETTERS and joined.count(c) == 1))
    for c in out:
        if c not in "".join(inputs):
            raise RuntimeError(f"einsum(): output subscript {c} does not appear in the equation for any input operand")
    return tuple(inputs), out


@functools.lru_cache(maxsize=512)
def _path(inputs: tuple, out: str, shapes: tuple) -> tuple:
    """numpy's greedy contraction order for these subscripts and shapes (cached: planning costs ~50 µs)."""
    if len(inputs) < 3:
        return ((0, 1),) if len(inputs) == 2 else ((0,),)
    eq = ",".join(inputs) + "->" + out
    placeholders = [np.broadcast_to(np.zeros((), np.float32), s) for s in shapes]  # only shapes matter
    path, _ = np.einsum_path(eq, *placeholders, optimize="greedy")
    return tuple(tuple(step) for step in path[1:])


def _reduce_single(a: np.ndarray, labels: str, keep: set) -> tuple:
    """Take diagonals of repeated labels and sum out labels nobody else needs."""
    target = "".join(c for i, c in enumerate(labels) if c in keep and c not in labels[:i])
    if target != labels:
        a = np.einsum(f"{labels}->{target}", a)
    return a, target


def _pair(a: np.ndarray, la: str, b: np.ndarray, lb: str, keep: set) -> tuple:
    """Contract two operands with one ``np.matmul``; returns the result and its labels."""
    a, la = _reduce_single(a, la, keep | set(lb))
    b, lb = _reduce_single(b, lb, keep | set(la))
    size = {}
    for arr, labels in ((a, la), (b, lb)):
        for c, n in zip(labels, arr.shape):
            size[c] = max(size.get(c, 1), n)
    batch = [c for c in la if c in lb and c in keep]
    contract = [c for c in la if c in lb and c not in keep]
    left = [c for c in la if c not in lb]
    right = [c for c in lb if c not in la]
    # A contracted label of size 1 on one side broadcasts: sum the other side over it first.
    for c in list(contract):
        na, nb = a.shape[la.index(c)], b.shape[lb.index(c)]
        if na != nb:
            if na == 1:
                b = b.sum(axis=lb.index(c), keepdims=True)
            else:
                a = a.sum(axis=la.index(c), keepdims=True)
    perm_a = [la.index(c) for c in batch + left + contract]
    perm_b = [lb.index(c) for c in batch + contract + right]
    at = a.transpose(perm_a)
    bt = b.transpose(perm_b)
    nb_ = len(batch)
    m = int(np.prod([a.shape[la.index(c)] for c in left], dtype=np.int64))
    k = int(np.prod([at.shape[nb_ + len(left) + i] for i in range(len(contract))], dtype=np.int64))
    n = int(np.prod([b.shape[lb.index(c)] for c in right], dtype=np.int64))
    am = at.reshape(at.shape[:nb_] + (m, k))
    bm = bt.reshape(bt.shape[:nb_] + (k, n))
    y = np.matmul(am, bm)
    y = y.reshape(y.shape[:nb_] + tuple(a.shape[la.index(c)] for c in left) + tuple(b.shape[lb.index(c)] for c in right))
    return y, "".join(batch + left + right)


def contract(inputs: tuple, out: str, arrays: list) -> np.ndarray:
    """Evaluate ``inputs -> out`` on ``arrays`` along numpy's planned order, pairwise through matmul."""
    ops = list(zip(arrays, inputs))
    for step in _path(inputs, out, tuple(a.shape for a in arrays)):
        picked = [ops[i] for i in step]
        for i in sorted(step, reverse=True):
            del ops[i]
        keep = set(out).union(*(lab for _, lab in ops))
        if len(picked) == 1:
            ops.append(_reduce_single(picked[0][0], picked[0][1], keep))
        else:
            (a, la), rest = picked[0], picked[1:]
            for j, (b, lb) in enumerate(rest):
                needed = keep.union(*(lab for _, lab in rest[j + 1:]))
                a, la = _pair(a, la, b, lb, needed)
            ops.append((a, la))
    (y, labels), = ops
    if labels != out:
        if sorted(labels) == sorted(out):  # only the order differs
            y = y.transpose([labels.index(c) for c in out])
        else:
            y = np.einsum(f"{labels}->{out}", y)
    return y


class Einsum(Op):
    """An einsum node; the gradient of operand i contracts the output gradient with the other operands."""

    def __init__(self, inputs=(), out=""):
        self.inputs_sub, self.out = inputs, out

    def forward(self, *xs):
        self.xs = xs
        return np.asarray(contract(self.inputs_sub, self.out, list(xs)))

    def backward(self, gy):
        grads = []
        for i, (x, sub) in enumerate(zip(self.xs, self.inputs_sub)):
            if not self.needs[i]:
                grads.append(None)
                continue
            others = [(self.xs[j], s) for j, s in enumerate(self.inputs_sub) if j != i]
            avail = set(self.out).union(*(s for _, s in others))
            unique = "".join(c for k, c in enumerate(sub) if c not in sub[:k])
            target = "".join(c for c in unique if c in avail)
            g = contract((self.out,) + tuple(s for _, s in others), target, [gy] + [a for a, _ in others])
            # labels only this operand had were summed out: broadcast back along them
            full = tuple(x.shape[sub.index(c)] for c in unique)
            g = g.reshape(tuple(g.shape[target.index(c)] if c in target else 1 for c in unique))
            reduce_axes = tuple(k for k, (n, m) in enumerate(zip(full, g.shape)) if n == 1 and m != 1)
            if reduce_axes:
                g = g.sum(axis=reduce_axes, keepdims=True)
            g = np.broadcast_to(g, full)
            if unique != sub:  # repeated labels: the gradient lives on the diagonal
                out = np.zeros(x.shape, gy.dtype)
                strides = [0] * len(unique)
                for k, c in enumerate(sub):
                    strides[unique.index(c)] += out.strides[k]
                np.lib.stride_tricks.as_strided(out, full, strides)[...] = g
                g = out
            grads.append(np.ascontiguousarray(g, dtype=x.dtype))
        return tuple(grads)


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation over ``operands`` (also accepted as one list), with PyTorch's subscript rules.

    Contraction order comes from numpy's ``einsum_path`` (greedy), and each
    pairwise contraction is a batched matrix product.
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    ts = list(operands)
    if not ts:
        raise RuntimeError("einsum(): must provide at least one operand")
    floats = [t.dtype for t in ts if t.dtype.kind == "f"]  # PyTorch's promotion: any float wins over ints
    common = np.result_type(*floats) if floats else np.result_type(*[t.dtype for t in ts])
    ts = [t if t.dtype == common else t.to(common) for t in ts]
    inputs, out = parse(equation, [t.shape for t in ts])
    return Einsum.apply(*ts, inputs=inputs, out=out)
