"""Hostile and broken .pt files: every one refused cleanly by trainkit.load and by the CLI, nothing run."""
from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit
from trainkit.serialization import SerializationError, UnsafePickleError

from clitools import tk, weights

torch = pytest.importorskip("torch")


# ----------------------------------------------------------------------------- hand-made pickles
def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def uni(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def i32(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def big(n: int) -> bytes:
    """LONG1: any integer (for sizes beyond 32 bits)."""
    raw = n.to_bytes((n.bit_length() + 8) // 8 or 1, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def tensor_v2(numel, offset, size, stride, storage="FloatStorage", key="0") -> bytes:
    pid = tup(uni("storage"), glob("torch", storage), uni(key), uni("cpu"), big(numel))
    args = tup(pid + b"Q", big(offset), tup(*map(big, size)), tup(*map(big, stride)), b"\x89",
               glob("collections", "OrderedDict") + b")R")
    return glob("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def pt_zip(pkl: bytes, members: dict[str, bytes] | None = None, prefix: str = "archive",
           compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        z.writestr(f"{prefix}/byteorder", b"little")
        for k, v in (members or {}).items():
            z.writestr(f"{prefix}/data/{k}", v)
        z.writestr(f"{prefix}/version", b"3\n")
    return buf.getvalue()


def load_bytes(data: bytes, tmp_path: Path, name: str = "h.pt"):
    path = tmp_path / name
    path.write_bytes(data)
    return trainkit.load(path)


class Evil:
    """Unpickling this with pickle would run a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ----------------------------------------------------------------------------- the pickle
def test_hand_made_pickle_matches_torch_reader(tmp_path):
    data = np.arange(6, dtype=np.float32)
    t = load_bytes(pt_zip(b"\x80\x02" + tensor_v2(6, 1, (2, 2), (1, 2)) + b".", {"0": data.tobytes()}), tmp_path)
    assert t.tolist() == [[1.0, 3.0], [2.0, 4.0]]  # the helpers build what torch builds


def test_reduce_payload_calling_os_system_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"w": torch.ones(2), "evil": Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError, match=r"forbidden global '(posix|os)\.system'"):
        trainkit.load(tmp_path / "evil.pt")
    assert not marker.exists()
    # The same payload as a bare pickle (the legacy format) is refused too.
    (tmp_path / "bare.pt").write_bytes(pickle.dumps(Evil(marker), protocol=2))
    with pytest.raises(UnsafePickleError, match="bare pickle"):
        trainkit.load(tmp_path / "bare.pt")
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("__builtin__", "getattr"), ("collections", "deque"),
                                         ("numpy.core.multiarray", "_reconstruct"), ("torch", "load"),
                                         ("torch.nn.modules.linear", "Linear"), ("subprocess", "Popen")])
def test_globals_outside_the_allowlist_are_named(tmp_path, module, name):
    pkl = b"\x80\x02" + glob(module, name) + tup(uni("x")) + b"R."
    shown = {"__builtin__": "builtins"}.get(module, module)
    with pytest.raises(UnsafePickleError, match=f"forbidden global '{shown}.{name}'"):
        load_bytes(pt_zip(pkl), tmp_path)


def test_torch_pickled_module_and_numpy_array_are_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a whole module: its class is a global
    with pytest.raises(UnsafePickleError, match="forbidden global 'torch.nn.modules.linear.Linear'"):
        trainkit.load(tmp_path / "module.pt")
    torch.save({"a": np.zeros(2)}, tmp_path / "np.pt")
    with pytest.raises(UnsafePickleError, match="forbidden global"):
        trainkit.load(tmp_path / "np.pt")


@pytest.mark.parametrize("pkl,msg", [
    (b"\x80\x02]q\x00(K\x01e0.", "unsupported pickle instruction"),          # POP is not admitted
    (b"\x80\x02\x95\x00\x00\x00\x00\x00\x00\x00\x00.", "unsupported"),        # FRAME (protocol 4)
    (b"\x80\x02K\x01K\x02a.", "only lists"),                                  # APPEND on an int
    (b"\x80\x02K\x01K\x02K\x03s.", "only dict"),                              # SETITEM on an int
    (b"\x80\x02K\x01}b.", "BUILD is only allowed on OrderedDict"),
    (b"\x80\x02h\x05.", "memo entry 5"),
    (b"\x80\x02K\x01K\x02R.", "not a callable"),                              # REDUCE on an int
    (b"\x80\x02" + glob("torch", "Size") + b")\x81.", "NEWOBJ"),
    (b"\x80\x02" + glob("builtins", "bytearray") + tup(big(10**12)) + b"R.", "only allowed on bytes"),
    (b"\x80\x02" + glob("_codecs", "encode") + tup(uni("x"), uni("zlib_codec")) + b"R.", "latin1"),
    (b"\x80\x02X\xff\xff\xff\x7fabc.", "truncated"),                          # a 2 GB string claim
    (b"\x80\x02K\x01", "without a STOP"),
    (b"\x80\x02" + tup(uni("nostorage")) + b"Q.", "persistent ids of storages"),
    (b"\x80\x02" + b"(" * 20000 + b".", "deeper"),
    (b"\x80\x02" + glob("torch._utils", "_rebuild_qtensor") + b")R.", "not supported by trainkit"),
    (b"\x80\x02.", "malformed"),                                              # STOP on an empty stack
])
def test_malformed_and_disallowed_instructions(tmp_path, pkl, msg):
    with pytest.raises(UnsafePickleError, match=msg):
        load_bytes(pt_zip(pkl), tmp_path)


def test_ordered_dict_metadata_build_is_admitted_but_not_dunder_attributes(tmp_path):
    good = b"\x80\x02" + glob("collections", "OrderedDict") + b")R}X\x09\x00\x00\x00_metadataK\x01sb."
    assert load_bytes(pt_zip(good), tmp_path)._metadata == 1
    bad = good.replace(b"X\x09\x00\x00\x00_metadata", b"X\x09\x00\x00\x00__class__")
    with pytest.raises(UnsafePickleError, match="attribute names"):
        load_bytes(pt_zip(bad), tmp_path)


# ----------------------------------------------------------------------------- sizes and storages
@pytest.mark.parametrize("numel,offset,size,stride,msg", [
    (1 << 40, 0, (4,), (1,), "claims"),                    # storage claims more bytes than its member
    (2, 0, (4,), (1,), "claims"),                           # ... or fewer
    (4, 0, (5,), (1,), "past the end"),                     # the view reads past the storage
    (4, 3, (2,), (1,), "past the end"),                     # offset + size
    (4, 0, (2, 2), (2, 3), "past the end"),                 # strides
    (4, 5, (0,), (1,), "offset"),                           # empty view starting after the storage
    (4, 0, (1 << 40, 1 << 40), (0, 0), "too many elements"),
    (4, 0, (-1,), (1,), "negative"),
])
def test_storage_and_view_bounds_are_checked_before_allocating(tmp_path, numel, offset, size, stride, msg):
    data = np.arange(4, dtype=np.float32).tobytes()
    pkl = b"\x80\x02" + tensor_v2(numel, offset, size, stride) + b"."
    with pytest.raises((UnsafePickleError, SerializationError), match=msg):
        load_bytes(pt_zip(pkl, {"0": data}), tmp_path)


def test_missing_storage_member_and_bad_storage_keys(tmp_path):
    pkl = b"\x80\x02" + tensor_v2(4, 0, (4,), (1,)) + b"."
    with pytest.raises(SerializationError, match="no member"):
        load_bytes(pt_zip(pkl), tmp_path)
    pkl = b"\x80\x02" + tensor_v2(4, 0, (4,), (1,), key="../../etc/passwd") + b"."
    with pytest.raises(UnsafePickleError, match="plain name"):
        load_bytes(pt_zip(pkl), tmp_path)
    pkl = b"\x80\x02" + tensor_v2(4, 0, (4,), (1,), storage="QInt8Storage") + b"."
    with pytest.raises(UnsafePickleError, match="quantized"):
        load_bytes(pt_zip(pkl), tmp_path)


def test_zip_bombs_compressed_members_are_refused(tmp_path):
    pkl = b"\x80\x02" + tensor_v2(1 << 24, 0, (1,), (1,)) + b"."
    bomb = pt_zip(pkl, {"0": bytes(1 << 26)}, compress=zipfile.ZIP_DEFLATED)  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 1 << 20
    with pytest.raises(SerializationError, match="compressed"):
        load_bytes(bomb, tmp_path)


def test_overlapping_members_cannot_multiply_reads(tmp_path):
    # One storage member referenced under many central-directory names: each read counts.
    data = np.zeros(4096, np.float32).tobytes()
    raw = bytearray(pt_zip(b"\x80\x02" + tup(*[tensor_v2(4096, 0, (4096,), (1,), key=str(i)) for i in range(50)])
                           + b".", {"0": data}))
    z = zipfile.ZipFile(io.BytesIO(bytes(raw)))
    member = z.getinfo("archive/data/0")
    cd_entries = []
    for i in range(1, 50):  # central directory entries pointing at the same local header
        name = f"archive/data/{i}".encode()
        cd_entries.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, member.CRC,
                                      member.compress_size, member.file_size, len(name), 0, 0, 0, 0, 0,
                                      member.header_offset) + name)
    eocd_at = raw.rfind(b"PK\x05\x06")
    eocd = struct.unpack("<4s4H2LH", raw[eocd_at:eocd_at + 22])
    cd_start, cd_size, count = eocd[6], eocd[5], eocd[3]
    extra = b"".join(cd_entries)
    new = raw[:cd_start + cd_size] + extra + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count + 49,
                                                          count + 49, cd_size + len(extra), cd_start, 0)
    with pytest.raises(SerializationError, match="overlap"):
        load_bytes(bytes(new), tmp_path)


def test_quadratic_container_copies_hit_the_budget(tmp_path):
    # A 100k-item list built once, then set() of it 2000 times: 2e8 elements from a ~200 KB pickle.
    body = b"]q\x00(" + b"K\x01" * 100_000 + b"e" + glob("builtins", "set") + b"q\x01"
    body += b"]" + b"(" + (b"h\x01h\x00\x85R") * 2000 + b"e"
    with pytest.raises(UnsafePickleError, match="more than"):
        load_bytes(pt_zip(b"\x80\x02" + body + b"."), tmp_path)


# ----------------------------------------------------------------------------- broken archives
def test_legacy_non_zip_torch_format_is_refused(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafePickleError, match="legacy"):
        trainkit.load(tmp_path / "legacy.pt")


def test_archives_without_one_data_pkl(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(SerializationError, match="data.pkl"):
        load_bytes(buf.getvalue(), tmp_path)


@settings(max_examples=40, deadline=None)
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4))
def test_truncated_or_corrupted_torch_files_fail_cleanly(cut, flips):
    buf = io.BytesIO()
    torch.save({"w": torch.arange(40.0).reshape(5, 8), "b": [torch.ones(3, dtype=torch.int64), 2]}, buf)
    data = bytearray(buf.getvalue())
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    data = bytes(data[: max(1, int(cut * len(data)))]) if cut < 1 else bytes(data)
    try:
        trainkit.load(io.BytesIO(data))
    except (SerializationError, UnsafePickleError):
        pass  # refused with one of our messages; any other exception type fails the test


# ----------------------------------------------------------------------------- the CLI
DIGITS = """\
name: tiny
seed: 0
data: {dataset: digits, batch_size: 64}
model:
  layers:
    - flatten
    - linear: {out_features: 10}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1}
"""


def test_cli_eval_reads_a_torch_state_dict_and_refuses_a_hostile_one(tmp_path):
    (tmp_path / "c.yaml").write_text(DIGITS)
    tk(tmp_path, "train", "c.yaml", "--run-dir", "run", "--quiet", check=0)
    run = tmp_path / "run"
    best = weights(run, "best")
    torch.save({k: torch.from_numpy(v.copy()) for k, v in best.items()}, tmp_path / "w.pt")
    torch.save({"epoch": 1, "model_state_dict": {k: torch.from_numpy(v.copy()) for k, v in best.items()}},
               tmp_path / "ckpt.pth")
    ref = tk(tmp_path, "eval", run, "--json", check=0)
    for name in ("w.pt", "ckpt.pth"):
        got = tk(tmp_path, "eval", run, "--json", "--checkpoint", tmp_path / name, check=0)
        import json

        assert json.loads(got.stdout)["test"] == json.loads(ref.stdout)["test"]
    marker = tmp_path / "pwned"
    torch.save({k: Evil(marker) for k in best}, tmp_path / "evil.pt")
    r = tk(tmp_path, "eval", run, "--checkpoint", tmp_path / "evil.pt", check=2)
    assert "forbidden global" in r.stderr and "Traceback" not in r.stderr and not marker.exists()
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "w.pt").read_bytes()[:200])
    r = tk(tmp_path, "eval", run, "--checkpoint", tmp_path / "trunc.pt", check=2)
    assert "trunc.pt" in r.stderr and "Traceback" not in r.stderr
    wrong = {k: torch.zeros(3) for k in best}
    torch.save(wrong, tmp_path / "wrong.pt")
    r = tk(tmp_path, "eval", run, "--checkpoint", tmp_path / "wrong.pt", check=2)
    assert "Traceback" not in r.stderr


def test_bare_storages_and_type_objects_are_not_returned(tmp_path):
    torch.save(torch.ones(2).untyped_storage(), tmp_path / "storage.pt")
    with pytest.raises(UnsafePickleError, match="bare storage"):
        trainkit.load(tmp_path / "storage.pt")
    with pytest.raises(UnsafePickleError, match="bare"):
        load_bytes(pt_zip(b"\x80\x02" + glob("torch", "FloatTensor") + b"."), tmp_path)
    assert load_bytes(pt_zip(b"\x80\x02" + glob("torch", "float32") + b"."), tmp_path) is trainkit.float32
