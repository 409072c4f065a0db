"""Hostile data files for tests/test_data_limits.py, and the worker process that loads them.

Builders write files that claim sizes they do not hold (pickled arrays, .npy/.npz headers, IDX
headers). :class:`Worker` drives ``data_load_worker.py``, one long-lived process, so that its
tracemalloc peak and ``ru_maxrss`` measure each load alone (the test process's peak is whatever
earlier tests left). The fixtures ``worker`` and ``cifar_template`` are imported by the test module.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fakedata import write_cifar10
from trainkit.data.readers import IDX_IMAGES

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

WORKER = Path(__file__).with_name("data_load_worker.py")
PEAK_BYTES = 48 << 20      # what one load of these tiny files may allocate (tracemalloc)
RSS_GROWTH_KB = 256 << 10  # what the worker's peak RSS may grow over all loads
MiB = 1 << 20


# -- builders of hostile files -------------------------------------------------------------------

class Reduce:
    """Pickles as ``fn(*args)`` (then ``BUILD state``): any call a hostile pickle can make."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def array_state(shape, dtype, raw, fortran=False) -> Reduce:
    """numpy's own array pickle (``_reconstruct`` + BUILD), with whatever state one likes."""
    return Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, fortran, raw))


def batch(data, labels, protocol: int = 2) -> bytes:
    return pickle.dumps({b"data": data, b"labels": labels}, protocol=protocol)


def with_memo_index(blob: bytes, index: int) -> bytes:
    """``blob`` (protocol 2) with one extra memo entry stored at ``index``: push None, LONG_BINPUT, pop."""
    return blob[:2] + b"Nr" + struct.pack("<I", index) + b"0" + blob[2:]


def npy_bytes(descr="<f8", shape=(2,), fortran=False, payload=b"", version=1, header=None) -> bytes:
    text = (header if header is not None else repr({"descr": descr, "fortran_order": fortran, "shape": shape}))
    raw = text.encode("utf-8" if version == 3 else "latin1")
    width = 2 if version == 1 else 4
    raw += b" " * ((-(8 + width + len(raw) + 1)) % 64) + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + len(raw).to_bytes(width, "little") + raw + payload


def npz_bytes(members: dict[str, bytes], deflate: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def idx_bytes(dims, payload: bytes, magic: int = IDX_IMAGES) -> bytes:
    return struct.pack(">I" + "I" * len(dims), magic, *dims) + payload


#: The issue's 193-byte CIFAR batch (181 here): ``numpy.ndarray((300000, 3072), uint8)`` called directly.
NDARRAY_CALL = batch(Reduce(np.ndarray, ((300000, 3072), np.dtype("u1"))), [0])
#: The issue's 538-byte .npz (346 here) whose x.npy header claims a million million float64.
NPZ_1E12 = npz_bytes({"x.npy": npy_bytes("<f8", (10 ** 12,), payload=bytes(16)),
                      "y.npy": npy_bytes("<i8", (2,), payload=bytes(16))})


# -- the worker ------------------------------------------------------------------------------------

class Worker:
    """The loading process; restarted if a load kills it (which the test then reports)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.proc = None

    def _start(self) -> None:
        env = dict(os.environ, TRAINKIT_DATA=str(self.tmp / "worker-data"), TRAINKIT_NO_DATA_CACHE="1")
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.base_kb = json.loads(self.proc.stdout.readline())["maxrss_kb"]

    def load(self, kind: str, path: Path) -> dict:
        """Load ``path``; the answer holds outcome, detail, peak_bytes and rss_growth_kb."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(json.dumps({"kind": kind, "path": str(path)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            return {"outcome": f"crashed (exit {code})", "detail": "", "peak_bytes": 0, "rss_growth_kb": 0}
        answer = json.loads(line)
        answer["rss_growth_kb"] = answer["maxrss_kb"] - self.base_kb
        return answer

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("worker"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def cifar_template(tmp_path_factory) -> Path:
    """A valid tiny CIFAR-10 python folder; each test links it and replaces data_batch_1."""
    return write_cifar10(tmp_path_factory.mktemp("cifar-template"), per_batch=2, test=10) / "cifar-10-batches-py"


_counter = iter(range(10 ** 9))


def cifar_root(template: Path, base: Path, data_batch_1: bytes) -> Path:
    """A fresh CIFAR-10 root (its own path, so no cache hit) with ``data_batch_1`` replaced."""
    root = base / f"cifar-{next(_counter)}"
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for f in template.iterdir():
        if f.name != "data_batch_1":
            os.link(f, folder / f.name)
    (folder / "data_batch_1").write_bytes(data_batch_1)
    return root


def assert_bounded(answer: dict) -> str:
    """Only a clean load or a DataError, without a big allocation; returns the outcome."""
    assert answer["outcome"] in ("ok", "DataError"), f"{answer['outcome']}\n{answer['detail']}"
    assert answer["peak_bytes"] < PEAK_BYTES, f"allocated {answer['peak_bytes'] / MiB:.0f} MiB: {answer['detail']}"
    assert answer["rss_growth_kb"] < RSS_GROWTH_KB, f"peak RSS grew {answer['rss_growth_kb'] >> 10} MiB"
    return answer["outcome"]


def assert_refused(answer: dict, *phrases: str) -> str:
    assert_bounded(answer)
    assert answer["outcome"] == "DataError", answer
    for phrase in phrases:
        assert phrase in answer["detail"], f"{phrase!r} not in {answer['detail']!r}"
    return answer["detail"]
