"""Time the data pipeline: a full CIFAR-10-sized epoch (no model), and loading the real archive.

    python benchmarks/data_pipeline.py                       # synthetic 50,000 uint8 3x32x32 images
    python benchmarks/data_pipeline.py --root ../shared/data # also load the real CIFAR-10 archive

For each case the script prints the best of ``--repeat`` epochs: batch 32,
shuffled, ToTensor + Normalize (and, separately, with RandomCrop(32, 4) +
RandomHorizontalFlip). Loading is timed once without the decoded cache (the
archive is inflated and unpickled) and once with it. Not a test: the figures
depend on the machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainkit.data import ArrayDataset, DataLoader  # noqa: E402
from trainkit.data import transforms as T  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def epoch_seconds(dataset, transform, batch_size: int, repeat: int) -> tuple[float, int]:
    """Best wall time of one full epoch over ``dataset`` and the number of batches."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, seed=0, transform=transform)
    best, batches = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        batches = 0
        for x, y in loader:
            batches += 1
        best = min(best, time.perf_counter() - t0)
    assert x.numpy().dtype == np.float32 and y.numpy().dtype == np.int64
    return best, batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="folder holding cifar-10-python.tar.gz or cifar-10-batches-py/")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()}, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    plain = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    augmented = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(MEAN, STD)])

    rng = np.random.default_rng(0)
    synthetic = ArrayDataset(rng.integers(0, 256, (50_000, 3, 32, 32), dtype=np.uint8),
                             rng.integers(0, 10, 50_000))
    for name, tf in (("normalize", plain), ("crop+flip+normalize", augmented)):
        secs, n = epoch_seconds(synthetic, tf, args.batch_size, args.repeat)
        print(f"synthetic 50,000 images, {name:20s}: epoch {secs:.3f} s ({n} batches, {50_000 / secs:,.0f} img/s)")

    if args.root:
        from trainkit.data.datasets import CIFAR10
        from trainkit.data.datasets import cifar as cifar_module

        with tempfile.TemporaryDirectory() as cache_root:
            # A private cache folder: first load inflates the archive, second uses the decoded copy.
            os.environ["TRAINKIT_DATA"] = cache_root
            for label in ("archive (no decoded copy)", "decoded copy"):
                cifar_module._CACHE.clear()
                t0 = time.perf_counter()
                ds = CIFAR10(args.root, train=True)
                load = time.perf_counter() - t0
                secs, n = epoch_seconds(ds, plain, args.batch_size, 1)
                print(f"CIFAR-10 {args.root}: load from {label:26s} {load:.3f} s + epoch {secs:.3f} s "
                      f"= {load + secs:.3f} s ({len(ds)} images)")
        secs, _ = epoch_seconds(ds, augmented, args.batch_size, args.repeat)
        print(f"CIFAR-10 epoch with crop+flip+normalize: {secs:.3f} s")


if __name__ == "__main__":
    main()
