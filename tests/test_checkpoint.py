"""Checkpoints: round trip, PyTorch compatibility, hostile files, crash safety."""
from __future__ import annotations

import errno
import json
import os
import pickle
import random
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainkit.errors import CheckpointError
from trainkit.train import checkpoint as ck
from trainkit.utils.atomic import StorageError
from trainkit.train.checkpoint import (
    MANIFEST,
    MODEL_FILE,
    STATE_FILE,
    STATE_JSON,
    check_state_fits,
    load_checkpoint,
    load_model_weights,
    read_safetensors,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]


def sample(i: int = 0):
    """A checkpoint whose every value identifies ``i``."""
    model = {
        "features.0.weight": np.full((4, 3, 3, 3), i, dtype=np.float32),
        "features.0.bias": np.arange(4, dtype=np.float64) + i,
        "fc.weight": np.full((10, 5), i, dtype=np.float32),
        "bn.num_batches_tracked": np.array(i, dtype=np.int64),
    }
    state = {"optimizer.state.0.exp_avg": np.full((4,), i, dtype=np.float32), "steps": np.array([i, 2 * i])}
    meta = {"epoch": i, "step": 10 * i, "best": {"metric": "val_acc", "value": 0.5}, "rng": [1, 2**70]}
    return model, state, meta


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k])


# ----------------------------------------------------------------------------- round trip
def test_round_trip_dtypes_and_dotted_names(tmp_path):
    model, state, meta = sample(3)
    model["empty"] = np.zeros((0, 5), dtype=np.float32)
    out = save_checkpoint(tmp_path / "ck" / "last", model, state, meta)
    assert out == tmp_path / "ck" / "last"
    assert sorted(os.listdir(out)) == sorted([MODEL_FILE, STATE_FILE, STATE_JSON, MANIFEST])
    m2, s2, j2 = load_checkpoint(out)
    assert_same(model, m2)
    assert_same(state, s2)
    assert j2 == meta
    # Loaded arrays are writable (optimizers update buffers in place).
    m2["fc.weight"] += 1
    s2["optimizer.state.0.exp_avg"][0] = 7


def test_state_json_accepts_numpy_scalars(tmp_path):
    save_checkpoint(tmp_path / "c", {}, None, {"epoch": np.int64(4), "best": np.float32(0.5), "key": np.arange(3, dtype=np.uint32)})
    assert load_checkpoint(tmp_path / "c")[2] == {"epoch": 4, "best": 0.5, "key": [0, 1, 2]}


def test_non_contiguous_arrays_saved_by_value(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_checkpoint(tmp_path / "c", {"t": a.T, "s": a[:, ::2]})
    m, s, j = load_checkpoint(tmp_path / "c")
    np.testing.assert_array_equal(m["t"], a.T)
    np.testing.assert_array_equal(m["s"], a[:, ::2])
    assert s == {} and j == {}


def test_overwrite_replaces_and_leaves_no_debris(tmp_path):
    d = tmp_path / "ck" / "last"
    for i in range(3):
        save_checkpoint(d, *sample(i))
    assert load_checkpoint(d)[2]["epoch"] == 2
    assert os.listdir(tmp_path / "ck") == ["last"]


def test_model_safetensors_metadata_and_single_file_load(tmp_path):
    model, state, meta = sample(1)
    save_checkpoint(tmp_path / "c", model, state, meta)
    raw = (tmp_path / "c" / MODEL_FILE).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert json.loads(raw[8 : 8 + n])["__metadata__"] == {"format": "pt"}
    assert_same(load_model_weights(tmp_path / "c" / MODEL_FILE), model)
    assert_same(load_model_weights(tmp_path / "c"), model)


def test_pytorch_loads_model_file(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    rng = np.random.default_rng(0)
    model = {"weight": rng.standard_normal((3, 5)).astype(np.float32), "bias": rng.standard_normal(3).astype(np.float32)}
    save_checkpoint(tmp_path / "c", model)
    lin = torch.nn.Linear(5, 3)
    lin.load_state_dict(load_file(str(tmp_path / "c" / MODEL_FILE)))
    np.testing.assert_array_equal(lin.weight.detach().numpy(), model["weight"])
    x = rng.standard_normal((2, 5)).astype(np.float32)
    np.testing.assert_allclose(lin(torch.from_numpy(x)).detach().numpy(), x @ model["weight"].T + model["bias"], rtol=1e-6)


def test_unsupported_dtype_is_a_bug(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "c", {"x": np.array(["a"])})
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------- hostile files
class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {EVIL_MARKER}",))


EVIL_MARKER = Path("/tmp") / f"trainkit-evil-{os.getpid()}"


def _st(header: dict | bytes, data: bytes = b"", n: int | None = None) -> bytes:
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(hb) if n is None else n) + hb + data


F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}

BAD_FILES = {
    "pickle": (pickle.dumps(_Evil()), "pickle"),
    "random bytes": (bytes(random.Random(1).randrange(256) for _ in range(4096)), "header length"),
    "empty": (b"", "only 0 bytes"),
    "short": (b"\x01\x02\x03", "only 3 bytes"),
    "header longer than file": (_st({}, n=500), "larger than the rest of the file"),
    "not utf-8": (_st(b"\xff\xfe{}"), "not UTF-8"),
    "not json": (_st(b"{nope"), "not valid JSON"),
    "json list": (_st([1, 2]), "expected an object"),
    "duplicate keys": (_st(b'{"a": 1, "a": 2}'), "duplicate"),
    "unknown dtype": (_st({"x": {**F32x2, "dtype": "Q99"}}, bytes(8)), "unsupported dtype"),
    "negative shape": (_st({"x": {**F32x2, "shape": [-2]}}, bytes(8)), "non-negative"),
    "bool shape": (_st({"x": {**F32x2, "shape": [True, 2]}}, bytes(8)), "non-negative"),
    "offsets past end": (_st({"x": {**F32x2, "data_offsets": [0, 4000]}}, bytes(8)), "past the end"),
    "offsets reversed": (_st({"x": {**F32x2, "data_offsets": [8, 0]}}, bytes(8)), "not increasing"),
    "size mismatch": (_st({"x": {**F32x2, "shape": [3]}}, bytes(8)), "needs 12"),
    "overlap": (_st({"x": F32x2, "y": F32x2}, bytes(8)), "overlap"),
    "gap": (_st({"x": {**F32x2, "data_offsets": [4, 12]}}, bytes(12)), "gap"),
    "trailing": (_st({"x": F32x2}, bytes(16)), "trailing"),
    "missing field": (_st({"x": {"dtype": "F32", "shape": [2]}}, bytes(8)), "missing"),
    "bad metadata": (_st({"__metadata__": {"a": 1}}), "__metadata__"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_hostile_model_file_refused(tmp_path, case):
    content, expect = BAD_FILES[case]
    d = tmp_path / "c"
    save_checkpoint(d, *sample(1))
    (d / MODEL_FILE).write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(d)
    msg = str(err.value)
    assert str(d / MODEL_FILE) in msg and expect in msg, msg
    with pytest.raises(CheckpointError, match=expect):
        read_safetensors(d / MODEL_FILE)
    assert not EVIL_MARKER.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_refused_without_blocking(tmp_path):
    d = tmp_path / "c"
    save_checkpoint(d, *sample(1))
    (d / MODEL_FILE).unlink()
    os.mkfifo(d / MODEL_FILE)  # open() on a FIFO would block forever
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(d)
    (d / MODEL_FILE).unlink()
    (d / MODEL_FILE).symlink_to("/dev/zero")  # would read forever
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(d)
    (d / STATE_JSON).unlink()
    os.mkfifo(d / STATE_JSON)
    with pytest.raises(CheckpointError, match="not a regular file"):
        ck._read_json_file(d / STATE_JSON, STATE_JSON)


def test_truncated_file_refused(tmp_path):
    d = tmp_path / "c"
    save_checkpoint(d, *sample(1))
    raw = (d / STATE_FILE).read_bytes()
    for cut in (4, 12, len(raw) // 2, len(raw) - 1):
        (d / STATE_FILE).write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="state.safetensors"):
            load_checkpoint(d)


def test_huge_header_refused_without_reading_it(tmp_path):
    path = tmp_path / "big.safetensors"
    n = 100 * 1024 * 1024
    with open(path, "wb") as f:  # sparse: costs no disk
        f.write(struct.pack("<Q", n) + b"{")
        f.seek(8 + n + 10)
        f.write(b"\0")
    with pytest.raises(CheckpointError, match="exceeds the 16 MiB limit"):
        read_safetensors(path)


def test_valid_file_not_matching_manifest_refused(tmp_path):
    d, other = tmp_path / "c", tmp_path / "o"
    save_checkpoint(d, *sample(1))
    save_checkpoint(other, *sample(2))
    (d / MODEL_FILE).write_bytes((other / MODEL_FILE).read_bytes())
    with pytest.raises(CheckpointError, match="does not match manifest.json"):
        load_checkpoint(d)


@pytest.mark.parametrize("damage", ["no manifest", "bad manifest", "state.json list", "state.json garbage", "no state.json"])
def test_damaged_json_parts_refused(tmp_path, damage):
    d = tmp_path / "c"
    save_checkpoint(d, *sample(1))
    if damage == "no manifest":
        (d / MANIFEST).unlink()
    elif damage == "bad manifest":
        (d / MANIFEST).write_text('{"format": "other"}')
    elif damage == "state.json list":
        (d / STATE_JSON).write_text("[]")
    elif damage == "state.json garbage":
        (d / STATE_JSON).write_bytes(b"\xff\x00garbage")
    else:
        (d / STATE_JSON).unlink()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(d)
    assert str(d) in str(err.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="missing"):
        read_safetensors(tmp_path / "nothing.safetensors")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_reader_only_raises_checkpoint_error(tmp_path, data):
    import safetensors.numpy

    valid = safetensors.numpy.save({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b.c": np.ones(2, np.int64)})
    mode = data.draw(st.sampled_from(["random", "flip", "cut", "splice"]))
    if mode == "random":
        blob = data.draw(st.binary(max_size=300))
    else:
        buf = bytearray(valid)
        if mode == "flip":
            for _ in range(data.draw(st.integers(1, 8))):
                buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        elif mode == "cut":
            del buf[data.draw(st.integers(0, len(buf) - 1)):]
        else:
            at = data.draw(st.integers(0, len(buf)))
            buf[at:at] = data.draw(st.binary(min_size=1, max_size=20))
        blob = bytes(buf)
    path = tmp_path / "f.safetensors"
    path.write_bytes(blob)
    try:
        out = read_safetensors(path)
    except CheckpointError as exc:
        assert str(path) in str(exc)
    else:
        assert all(isinstance(v, np.ndarray) for v in out.values())


# ----------------------------------------------------------------------------- fitting
def test_check_state_fits_reports_everything_at_once():
    expected = {"a.weight": ((3, 4), np.float32), "a.bias": ((3,), "float32"), "b.weight": np.zeros((2, 2), np.float32)}
    state = {"a.weight": np.zeros((4, 3), np.float32), "b.weight": np.zeros((2, 2), np.float64), "c.weight": np.zeros(1)}
    with pytest.raises(CheckpointError) as err:
        check_state_fits(state, expected, source="run/checkpoints/best/model.safetensors")
    msg = str(err.value)
    assert "run/checkpoints/best/model.safetensors" in msg
    assert "missing from the checkpoint (1): a.bias (3,)" in msg
    assert "unexpected in the checkpoint (1): c.weight (1,)" in msg
    assert "a.weight: checkpoint (4, 3) vs model (3, 4)" in msg
    assert "b.weight: checkpoint float64 vs model float32" in msg
    check_state_fits({"a": np.zeros((2,), np.float32)}, {"a": ((2,), None)})  # fits: no error


# ----------------------------------------------------------------------------- faults
class _Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so no cleanup handler runs."""


def _crash_at(monkeypatch, k: int):
    """Make the k-th filesystem step of save_checkpoint 'kill' the process."""
    calls = {"n": 0}

    def wrap(fn):
        def inner(*a, **kw):
            calls["n"] += 1
            if calls["n"] == k:
                raise _Killed()
            return fn(*a, **kw)
        return inner

    for name in ("_write_file", "fsync_dir"):
        monkeypatch.setattr(ck, name, wrap(getattr(ck, name)))
    monkeypatch.setattr(ck.os, "rename", wrap(os.rename))
    monkeypatch.setattr(ck.os, "mkdir", wrap(os.mkdir))
    monkeypatch.setattr(ck.shutil, "rmtree", wrap(ck.shutil.rmtree))
    return calls


def test_crash_at_every_step_leaves_a_complete_checkpoint(tmp_path, monkeypatch):
    d = tmp_path / "ck" / "last"
    k = 1
    while True:
        save_checkpoint(d, *sample(1))
        with monkeypatch.context() as mp:
            calls = _crash_at(mp, k)
            try:
                save_checkpoint(d, *sample(2))
                finished = True
            except _Killed:
                finished = False
        m, s, j = load_checkpoint(d)
        assert j["epoch"] in (1, 2)
        ref = sample(j["epoch"])
        assert_same(m, ref[0])
        assert_same(s, ref[1])
        # The next save recovers and cleans up whatever the crash left behind.
        save_checkpoint(d, *sample(3))
        assert load_checkpoint(d)[2]["epoch"] == 3
        assert os.listdir(d.parent) == ["last"]
        if finished:
            break
        k += 1
    assert k > 8 and calls["n"] < k  # every step up to a clean finish was crashed once


def test_mid_swap_state_prefers_newest_complete(tmp_path):
    d = tmp_path / "last"
    save_checkpoint(d, *sample(1))
    save_checkpoint(tmp_path / "x", *sample(2))
    os.rename(d, tmp_path / "last.old-aaaa")
    os.rename(tmp_path / "x", tmp_path / "last.tmp-bbbb")
    (tmp_path / "last.tmp-cccc").mkdir()  # an incomplete one, as after a kill while writing
    (tmp_path / "last.tmp-cccc" / MODEL_FILE).write_bytes(b"partial")
    assert load_checkpoint(d)[2]["epoch"] == 2
    assert ck.find_checkpoint(d) == tmp_path / "last.tmp-bbbb"
    assert not d.exists()  # loading never modifies the folder
    save_checkpoint(d, *sample(3))
    assert sorted(os.listdir(tmp_path)) == ["last"]


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    d = tmp_path / "last"
    save_checkpoint(d, *sample(1))
    calls = {"n": 0}
    real = ck._write_file

    def full(path, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(ck, "_write_file", full)
    with pytest.raises(StorageError, match="disk is full") as err:
        save_checkpoint(d, *sample(2))
    assert isinstance(err.value.__cause__, OSError) and err.value.errno == errno.ENOSPC
    assert load_checkpoint(d)[2]["epoch"] == 1
    assert os.listdir(tmp_path) == ["last"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder_gives_clear_error(tmp_path):
    d = tmp_path / "ck" / "last"
    save_checkpoint(d, *sample(1))
    os.chmod(tmp_path / "ck", 0o555)
    try:
        with pytest.raises(StorageError, match="permission"):
            save_checkpoint(d, *sample(2))
    finally:
        os.chmod(tmp_path / "ck", 0o755)
    assert load_checkpoint(d)[2]["epoch"] == 1


_SAVER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from trainkit.train.checkpoint import save_checkpoint
    start = int(sys.argv[2])
    for i in range(start, start + 100000):
        model = {"w": np.full((256, 256), i, np.float32), "b.bias": np.full(7, i, np.float64)}
        save_checkpoint(sys.argv[1], model, {"m": np.full(1000, i, np.int64)}, {"i": i})
        if i == start:
            print("ready", flush=True)
    """
)


def test_sigkill_at_random_moments(tmp_path):
    d = tmp_path / "checkpoints" / "last"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rng = random.Random(1234)
    start = 0
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(d), str(start)],
            stdout=subprocess.PIPE, env=env, cwd=tmp_path,
        )
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        model, state, meta = load_checkpoint(d)
        i = meta["i"]
        assert start <= i
        np.testing.assert_array_equal(model["w"], np.full((256, 256), i, np.float32))
        np.testing.assert_array_equal(model["b.bias"], np.full(7, i, np.float64))
        np.testing.assert_array_equal(state["m"], np.full(1000, i, np.int64))
        start = i + 1  # the next process must never go back to an older checkpoint
