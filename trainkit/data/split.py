"""Seeded, stratified index splits (train/validation and train/test hold-outs).

Stratified means each class keeps its share in both parts: with 10% held out,
every class gives about 10% of its samples. The split depends only on the
labels, the fraction and the seed, so the same config always holds out the
same samples.
"""
from __future__ import annotations

import numpy as np


def holdout_split(labels: np.ndarray | None, n: int, fraction: float, seed: int,
                  stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(keep, held_out)`` index arrays, both sorted ascending.

    Args:
        labels: class labels (N,) to stratify on, or ``None`` for a plain random split.
        n: number of samples.
        fraction: share held out, in ``[0, 1)``.
        seed: seed of the permutation.
        stratify: stratify on ``labels`` (ignored when ``labels`` is None).

    Each class contributes ``round(fraction * count)`` samples (so a class
    with one sample stays in the kept part for small fractions); without
    stratification ``round(fraction * n)`` samples are held out.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"hold-out fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    if fraction == 0.0 or n == 0:
        return np.arange(n), np.arange(0)
    if labels is None or not stratify:
        perm = rng.permutation(n)
        k = int(round(fraction * n))
        return np.sort(perm[k:]), np.sort(perm[:k])
    labels = np.asarray(labels)
    held = []
    # np.unique sorts the classes, so the order of draws (and the split) does not
    # depend on the order the samples happen to be stored in.
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        k = int(round(fraction * len(idx)))
        if k:
            held.append(rng.permutation(idx)[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.arange(0)
    mask = np.ones(n, dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx
