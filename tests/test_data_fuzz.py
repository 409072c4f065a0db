"""Fuzzing the file readers: random bytes and mutations of valid files give a result or a DataError, nothing else."""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainkit.data.datasets import CSVDataset
from trainkit.data.readers import IDX_IMAGES, iter_tar, load_pickle, read_idx
from trainkit.errors import DataError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

VALID_IDX = struct.pack(">IIII", IDX_IMAGES, 2, 28, 28) + bytes(range(256)) * 6 + bytes(32)
VALID_PICKLE = pickle.dumps({b"data": np.arange(3072 * 2, dtype=np.uint8).reshape(2, 3072) % 251,
                             b"labels": [1, 2]}, protocol=2)


def _tar_gz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("d/a", b"x" * 300), ("d/b", VALID_PICKLE[:500])):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


VALID_TAR = _tar_gz()


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for pos, val in edits:
        out[pos % len(out)] = val
    return bytes(out[: max(1, len(out) - cut)])


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8)


@FUZZ
@given(st.one_of(st.binary(max_size=2000), st.builds(_mutate, st.just(VALID_IDX), edits, st.integers(0, 40))),
       st.booleans())
def test_idx_reader_fuzz(tmp_path_factory, data, gz):
    path = tmp_path_factory.mktemp("idx") / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        arr = read_idx(path, IDX_IMAGES, 60_000, (28, 28))
        assert arr.shape[1:] == (28, 28)
    except DataError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=2000), st.builds(_mutate, st.just(VALID_PICKLE), edits, st.integers(0, 6000))))
def test_pickle_reader_fuzz(data):
    try:
        load_pickle(data, "fuzz")
    except DataError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=2000), st.builds(_mutate, st.just(VALID_TAR), edits, st.integers(0, 200))))
def test_tar_reader_fuzz(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("tar") / "a.tar.gz"
    path.write_bytes(data)
    try:
        for _name, blob in iter_tar(path, lambda n: 10_000):
            assert len(blob) <= 10_000
    except DataError:
        pass


@FUZZ
@given(st.text(alphabet=st.sampled_from("ab,y\n0123.-e \"naif"), max_size=300))
def test_csv_reader_fuzz(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("csv") / "f.csv"
    path.write_text(text)
    try:
        ds = CSVDataset(path, target="y")
        assert np.all(np.isfinite(ds.data)) and len(ds) > 0
    except DataError:
        pass
