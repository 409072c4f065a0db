"""A long-lived process that loads data files for the fuzz tests of test_data_limits.py.

Reads one JSON request per line on stdin (``{"kind": ..., "path": ...}``), loads the file
through the public reader of that kind, and answers one JSON line: the outcome (``ok``,
``DataError``, or another exception's type and traceback), the peak bytes tracemalloc saw
during the load (numpy reports its buffers to it, so an allocation counts even if its pages
are never touched), and the process's peak resident memory (``VmHWM``: the peak of its own memory
since it started; ``ru_maxrss`` would not do, since Linux keeps there the peak of the memory an exec
replaced, which for a process started from a large pytest worker is the worker's).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import traceback
import tracemalloc
from pathlib import Path

from trainkit.data.datasets import CIFAR10, NPZDataset


def _hwm_kb() -> int:
    """This process's peak resident memory since its exec, in KiB (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from trainkit.data.readers import IDX_IMAGES, read_idx, read_npy
from trainkit.errors import DataError


def load(kind: str, path: str) -> None:
    if kind == "npy":
        read_npy(path)
    elif kind == "npz":
        NPZDataset(path)
    elif kind == "idx":
        read_idx(Path(path), IDX_IMAGES, 60_000)  # any item shape: the general path
    elif kind == "cifar":  # a CIFAR-10 python folder whose data_batch_1 is the file under test
        CIFAR10(path)
    else:
        raise ValueError(f"unknown kind {kind!r}")


def main() -> None:
    tracemalloc.start()
    print(json.dumps({"ready": True, "maxrss_kb": _hwm_kb()}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        tracemalloc.reset_peak()
        try:
            load(req["kind"], req["path"])
            outcome, detail = "ok", ""
        except DataError as exc:
            outcome, detail = "DataError", str(exc)
        except Exception as exc:  # reported to the test, which fails on it
            outcome, detail = type(exc).__name__, traceback.format_exc()
        peak = tracemalloc.get_traced_memory()[1]
        print(json.dumps({"outcome": outcome, "detail": detail, "peak_bytes": peak,
                          "maxrss_kb": _hwm_kb()}), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TRAINKIT_NO_DATA_CACHE", "1")
    main()
