"""Tiny data sets in real file formats for end-to-end tests (no network, no ../shared)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def learnable_images(labels: np.ndarray, seed: int, classes: int = 10) -> np.ndarray:
    """uint8 (N, 3072) CIFAR rows whose colour and a bright stripe depend on the label, plus noise."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    img = rng.integers(0, 60, size=(n, 3, 32, 32)).astype(np.int64)
    for i, y in enumerate(labels):
        img[i, y % 3] += 120
        row = (y * 3) % 32
        img[i, :, row:row + 3, :] += 70
    return np.clip(img, 0, 255).astype(np.uint8).reshape(n, 3072)


def write_cifar10(root: Path, per_batch: int = 20, test: int = 40, seed: int = 0) -> Path:
    """A CIFAR-10 python-layout folder (``root/cifar-10-batches-py``) with learnable tiny batches."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(1, 6):
        labels = rng.integers(0, 10, per_batch)
        batch = {b"batch_label": b"x", b"labels": labels.tolist(), b"data": learnable_images(labels, seed + i)}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    labels = np.arange(test) % 10
    (folder / "test_batch").write_bytes(pickle.dumps(
        {b"batch_label": b"t", b"labels": labels.tolist(), b"data": learnable_images(labels, seed + 99)}, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps(
        {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072}, protocol=2))
    return Path(root)


def write_mnist(root: Path, n: int = 240, test: int = 60, seed: int = 0) -> Path:
    """MNIST IDX files (gzipped, torchvision's ``root/MNIST/raw`` layout) whose digits are learnable:
    a bright bar at a label-dependent row."""
    import gzip
    import struct

    rng = np.random.default_rng(seed)
    folder = Path(root) / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", n), ("t10k", test)):
        labels = (np.arange(count) % 10).astype(np.uint8)
        images = rng.integers(0, 40, (count, 28, 28), dtype=np.uint8)
        for i, y in enumerate(labels):
            images[i, 2 + 2 * y: 4 + 2 * y, 4:24] = 250
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(
            struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes()))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(
            struct.pack(">II", 2049, count) + labels.tobytes()))
    return Path(root)
