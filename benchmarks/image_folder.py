"""Time an epoch over an image folder's decoded cache against epochs over arrays held in memory.

    python benchmarks/image_folder.py                 # 10,000 PNG files of 64x64, in a temporary folder
    python benchmarks/image_folder.py --images 2000   # smaller

Writes ``--images`` PNG files (three drawn shapes, 64x64), decodes them once
into trainkit's cache (timed: the first load), loads the folder again (timed:
every later load maps the cache), then times full data epochs (batch 32,
shuffled, ToTensor + Normalize, no model) over

* ``cache``: the image folder, batches gathered from the memory-mapped cache;
* ``memory``: the same 10,000 x 3 x 64 x 64 uint8 images as an array in memory;
* ``cifar``: CIFAR-10-sized uint8 arrays in memory (50,000 x 3 x 32 x 32);

alternating the three, ``--rounds`` times, and prints each one's median. The
machine is shared, so only figures from one alternating run compare. Not a test.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from imagedata import write_shapes  # noqa: E402
from trainkit.data import ArrayDataset, DataLoader  # noqa: E402
from trainkit.data import transforms as T  # noqa: E402
from trainkit.data.datasets import ImageFolder  # noqa: E402

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def epoch(dataset, transform, batch_size: int) -> float:
    """Seconds for one full shuffled epoch of batches."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, seed=0, transform=transform)
    t0 = time.perf_counter()
    for x, y in loader:
        pass
    assert x.numpy().dtype == np.float32
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    print(f"machine: {platform.machine()} cpus={os.cpu_count()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRAINKIT_DATA"] = str(Path(tmp) / "cache")
        per_class = args.images // 3
        t0 = time.perf_counter()
        write_shapes(Path(tmp) / "pics", per_class, size=64)
        n = 3 * per_class
        print(f"wrote {n:,} PNG/JPEG files of about 64x64 in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        ImageFolder(Path(tmp) / "pics", image_size=64)
        print(f"first load (decode every file into the cache): {time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        folder = ImageFolder(Path(tmp) / "pics", image_size=64)
        print(f"later load (stat the files, map the cache): {time.perf_counter() - t0:.3f} s "
              f"(from cache: {folder.from_cache})")
        rng = np.random.default_rng(0)
        memory = ArrayDataset(np.array(folder.input_array), np.asarray(folder.targets))
        cifar = ArrayDataset(rng.integers(0, 256, (50_000, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 50_000))
        tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
        cases = {"cache": folder, "memory": memory, "cifar": cifar}
        times: dict[str, list[float]] = {k: [] for k in cases}
        for name, ds in cases.items():  # warm-up: page cache, allocator
            epoch(ds, tf, args.batch_size)
        for _ in range(args.rounds):
            for name, ds in cases.items():
                times[name].append(epoch(ds, tf, args.batch_size))
        sizes = {"cache": f"{n:,} x 3x64x64 from the cache", "memory": f"{n:,} x 3x64x64 in memory",
                 "cifar": "50,000 x 3x32x32 in memory"}
        for name, values in times.items():
            med = statistics.median(values)
            print(f"{name:7s} {sizes[name]:32s} epoch median {med:.3f} s (min {min(values):.3f}, max "
                  f"{max(values):.3f}; {len(cases[name]) / med:,.0f} img/s)")
        ratio = statistics.median(times["cache"]) / statistics.median(times["cifar"])
        print(f"cache epoch / CIFAR-sized in-memory epoch: {ratio:.2f}; cache / same images in memory: "
              f"{statistics.median(times['cache']) / statistics.median(times['memory']):.2f}")


if __name__ == "__main__":
    main()
