"""Checkpoints: safetensors + JSON, swapped in whole, validated before anything is parsed.

A checkpoint is a directory (``checkpoints/last``, ``checkpoints/best``) holding

* ``model.safetensors`` - the weights, PyTorch key names, header metadata
  ``format=pt`` so ``safetensors.torch.load_file`` + ``load_state_dict`` work;
* ``state.safetensors`` - optimizer/scheduler buffers and any other arrays;
* ``state.json`` - everything else (epoch, step, RNG states, best metric, ...);
* ``manifest.json`` - written last: size and sha256 of the three files above.

**Crash safety.** :func:`save_checkpoint` writes all four files into a fresh
sibling ``<name>.tmp-XXXX`` (each fsynced, then the folder), and only then swaps:
``rename(dir -> <name>.old-XXXX)``, ``rename(tmp -> dir)``, fsync the parent,
remove the old one. ``dir`` therefore only ever names a complete checkpoint.
A SIGKILL between the two renames leaves no ``dir`` but a complete ``.old``
and a complete ``.tmp``; :func:`load_checkpoint` then takes the newest
complete leftover (manifest present and every hash matching), and the next
:func:`save_checkpoint` renames it back into place before writing. So a kill at
any instant leaves a loadable last-good checkpoint, never a half-new/half-old
one. One process saves to a given checkpoint directory at a time.

**Hostile files.** Nothing is ever unpickled. Each ``.safetensors`` file is
checked by :func:`validate_safetensors` - size, header length (capped at
16 MiB), UTF-8 JSON object, known dtypes, non-negative shapes, offsets inside
the data, consistent with dtype x shape, contiguous without overlaps - before
the ``safetensors`` package parses it; then its sha256 is checked against the
manifest. Every problem is a :class:`~trainkit.errors.CheckpointError` naming
the file and what is wrong.

Write failures (disk full, permission denied) raise
:class:`~trainkit.train.atomic.StorageError`; the previous checkpoint is intact.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import secrets
import shutil
import stat
import struct
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from trainkit.errors import CheckpointError
from trainkit.train.atomic import StorageError, fsync_dir, json_default

__all__ = [
    "MODEL_FILE",
    "STATE_FILE",
    "STATE_JSON",
    "MANIFEST",
    "MAX_HEADER_BYTES",
    "save_checkpoint",
    "load_checkpoint",
    "load_model_weights",
    "find_checkpoint",
    "read_safetensors",
    "validate_safetensors",
    "check_state_fits",
]

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
STATE_JSON = "state.json"
MANIFEST = "manifest.json"
_PAYLOAD = (MODEL_FILE, STATE_FILE, STATE_JSON)
_FORMAT = "trainkit-checkpoint"

#: Largest safetensors JSON header accepted; real headers are a few KiB.
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Largest state.json / manifest.json accepted.
_MAX_JSON_BYTES = 64 * 1024 * 1024

# safetensors dtype name -> numpy dtype (exactly what safetensors.numpy can load).
_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16), "I16": np.dtype(np.int16), "F16": np.dtype(np.float16),
    "U32": np.dtype(np.uint32), "I32": np.dtype(np.int32), "F32": np.dtype(np.float32),
    "U64": np.dtype(np.uint64), "I64": np.dtype(np.int64), "F64": np.dtype(np.float64),
    "C64": np.dtype(np.complex64),
}


# ----------------------------------------------------------------------------- reading
def _sniff(head: bytes) -> str:
    """A hint about what a non-safetensors file probably is."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return " (it looks like a Python pickle; trainkit never unpickles files)"
    if head.startswith(b"PK\x03\x04"):
        return " (it looks like a zip/PyTorch .pt file; export the weights with safetensors)"
    return ""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate key(s) {dup}")
    return dict(pairs)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def validate_safetensors(header_bytes: bytes, data_len: int, source: str) -> dict[str, dict]:
    """Check a safetensors JSON header against the data section's length.

    Args:
        header_bytes: the JSON header (the bytes after the 8-byte length).
        data_len: number of bytes after the header.
        source: file name used in error messages.

    Returns:
        ``{tensor name: {"dtype", "shape", "data_offsets"}}`` (no ``__metadata__``).

    Raises:
        CheckpointError: anything that is not a well-formed, self-consistent header.
    """
    def bad(msg: str) -> CheckpointError:
        return CheckpointError(f"{source}: not a valid safetensors file: {msg}")

    try:
        text = header_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise bad(f"header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise bad(f"header is a JSON {type(header).__name__}, expected an object")
    meta = header.pop("__metadata__", None)
    if meta is not None and not (
        isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())
    ):
        raise bad("__metadata__ must map strings to strings")
    spans = []
    for name, entry in header.items():
        where = f"tensor {name!r}"
        if not isinstance(entry, dict):
            raise bad(f"{where}: entry is not an object")
        missing = {"dtype", "shape", "data_offsets"} - entry.keys()
        if missing:
            raise bad(f"{where}: missing {sorted(missing)}")
        dtype = entry["dtype"]
        if dtype not in _DTYPES:
            raise bad(f"{where}: unsupported dtype {dtype!r} (known: {', '.join(_DTYPES)})")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise bad(f"{where}: shape {shape!r} is not a list of non-negative integers")
        offs = entry["data_offsets"]
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_int(o) for o in offs)):
            raise bad(f"{where}: data_offsets {offs!r} is not a pair of integers")
        begin, end = offs
        if not 0 <= begin <= end:
            raise bad(f"{where}: data_offsets {offs} are not increasing non-negative")
        if end > data_len:
            raise bad(
                f"{where}: data_offsets {offs} reach past the end of the data "
                f"({data_len} bytes; the file is truncated or the header is wrong)"
            )
        nbytes = math.prod(shape) * _DTYPES[dtype].itemsize
        if end - begin != nbytes:
            raise bad(
                f"{where}: data_offsets {offs} span {end - begin} bytes but "
                f"{dtype} x {shape} needs {nbytes}"
            )
        spans.append((begin, end, name))
    # The data must be covered exactly once: no overlaps (aliasing) and no hidden gaps.
    pos = 0
    for begin, end, name in sorted(spans):
        if begin < pos:
            raise bad(f"tensor {name!r}: data_offsets [{begin}, {end}] overlap another tensor")
        if begin > pos:
            raise bad(f"tensor {name!r}: gap of {begin - pos} unused bytes before its data")
        pos = end
    if pos != data_len:
        raise bad(f"{data_len - pos} trailing bytes after the last tensor")
    return header


def _read_safetensors_bytes(path: Path) -> bytes:
    """Read a safetensors file, validating its header before reading the data."""
    src = str(path)
    try:
        _require_regular_file(path)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if size < 8:
                raise CheckpointError(
                    f"{src}: not a valid safetensors file: only {size} bytes{_sniff(head)}"
                )
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise CheckpointError(
                    f"{src}: not a valid safetensors file: header length {n} bytes exceeds "
                    f"the {MAX_HEADER_BYTES // (1024 * 1024)} MiB limit{_sniff(head)}"
                )
            if n > size - 8:
                raise CheckpointError(
                    f"{src}: not a valid safetensors file: header length {n} is larger than "
                    f"the rest of the file ({size - 8} bytes){_sniff(head)}"
                )
            header_bytes = f.read(n)
            validate_safetensors(header_bytes, size - 8 - n, src)
            rest = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"{src}: file is missing") from None
    except IsADirectoryError:
        raise CheckpointError(f"{src}: is a directory, expected a .safetensors file") from None
    except OSError as exc:
        raise CheckpointError(f"{src}: cannot read: {exc.strerror or exc}") from None
    if len(rest) != size - 8 - n:
        raise CheckpointError(f"{src}: file changed size while being read")
    return head + header_bytes + rest


def _parse_safetensors(data: bytes, src: str) -> dict[str, np.ndarray]:
    """Hand already-validated bytes to the safetensors package; return writable arrays."""
    import safetensors.numpy

    try:
        arrays = safetensors.numpy.load(data)
    except Exception as exc:  # the library's own checks; our validation should pre-empt them
        raise CheckpointError(f"{src}: not a valid safetensors file: {exc}") from None
    # frombuffer views are read-only; optimizers update buffers in place.
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one ``.safetensors`` file safely (validated first) into writable arrays.

    Raises:
        CheckpointError: missing, unreadable, malformed or hostile file.
    """
    path = Path(path)
    return _parse_safetensors(_read_safetensors_bytes(path), str(path))


def _require_regular_file(path: Path) -> None:
    """Refuse FIFOs, devices and directories: reading them could block or never end."""
    mode = os.stat(path).st_mode  # follows symlinks, like open() would
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: not a regular file (a device, FIFO or socket)")


def _read_json_file(path: Path, what: str) -> Any:
    try:
        _require_regular_file(path)
        size = path.stat().st_size
        if size > _MAX_JSON_BYTES:
            raise CheckpointError(f"{path}: {what} is {size} bytes, over the 64 MiB limit")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: file is missing (an incomplete checkpoint, or not a trainkit checkpoint)"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return raw, json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: {what} is not valid UTF-8 JSON ({exc})") from None


def _check_manifest(path: Path, name: str, data: bytes, manifest: dict) -> None:
    entry = manifest["files"].get(name)
    if not isinstance(entry, dict):
        raise CheckpointError(f"{path / name}: not listed in {MANIFEST}")
    if entry.get("size") != len(data) or entry.get("sha256") != hashlib.sha256(data).hexdigest():
        raise CheckpointError(
            f"{path / name}: does not match {MANIFEST} (size or sha256 differs); "
            "the file was modified or corrupted after the checkpoint was saved"
        )


def _load_dir(path: Path) -> tuple[dict, dict, dict, dict]:
    """Load and fully verify one checkpoint directory; returns (manifest, model, state, json)."""
    if not path.is_dir():
        raise CheckpointError(f"{path}: no checkpoint here (not a directory)")
    _, manifest = _read_json_file(path / MANIFEST, MANIFEST)
    if not (
        isinstance(manifest, dict)
        and manifest.get("format") == _FORMAT
        and isinstance(manifest.get("files"), dict)
    ):
        raise CheckpointError(f"{path / MANIFEST}: not a trainkit checkpoint manifest")
    tensors = []
    for name in (MODEL_FILE, STATE_FILE):
        data = _read_safetensors_bytes(path / name)
        _check_manifest(path, name, data, manifest)
        tensors.append(_parse_safetensors(data, str(path / name)))
    raw, state_json = _read_json_file(path / STATE_JSON, STATE_JSON)
    _check_manifest(path, STATE_JSON, raw, manifest)
    if not isinstance(state_json, dict):
        raise CheckpointError(f"{path / STATE_JSON}: expected a JSON object")
    return manifest, tensors[0], tensors[1], state_json


def _leftovers(directory: Path) -> list[Path]:
    """Sibling ``<name>.tmp-*`` / ``<name>.old-*`` folders of a checkpoint directory."""
    parent, name = directory.parent, directory.name
    if not parent.is_dir():
        return []
    return sorted(
        p for p in parent.iterdir()
        if p.name.startswith((f"{name}.tmp-", f"{name}.old-")) and p.is_dir()
    )


def _newest_complete_leftover(directory: Path):
    best = None
    for cand in _leftovers(directory):
        try:
            loaded = _load_dir(cand)
        except CheckpointError:
            continue  # incomplete: killed while writing it or while deleting it
        stamp = loaded[0].get("created_ns", 0)
        if best is None or stamp > best[0]:
            best = (stamp, cand, loaded)
    return best


def find_checkpoint(directory: str | os.PathLike) -> Path:
    """The folder holding the last good checkpoint for ``directory`` (read-only).

    That is ``directory`` itself when it exists; otherwise, after a kill
    mid-swap, the newest complete ``<name>.tmp-*``/``<name>.old-*`` sibling.

    Raises:
        CheckpointError: there is no checkpoint.
    """
    directory = Path(directory)
    if directory.exists():
        return directory
    found = _newest_complete_leftover(directory)
    if found is None:
        raise CheckpointError(f"{directory}: no checkpoint found")
    return found[1]


def load_checkpoint(
    directory: str | os.PathLike,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Load a checkpoint saved by :func:`save_checkpoint`.

    Returns:
        ``(model_state, state_arrays, state_json)``; arrays are writable copies.

    Raises:
        CheckpointError: missing, incomplete, corrupt or hostile checkpoint.
    """
    directory = Path(directory)
    if not directory.exists():
        found = _newest_complete_leftover(directory)
        if found is None:
            raise CheckpointError(f"{directory}: no checkpoint found")
        _, model, state, state_json = found[2]
        return model, state, state_json
    _, model, state, state_json = _load_dir(directory)
    return model, state, state_json


def load_model_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Model weights from a checkpoint directory, a ``.safetensors`` file, or a state dict saved by
    ``torch.save`` (``.pt``/``.pth``, read without unpickling) or ``trainkit.save``."""
    path = Path(path)
    if path.is_file():
        from trainkit.serialization import load_weights_file

        weights = load_weights_file(path)
        return weights if weights is not None else read_safetensors(path)
    return load_checkpoint(path)[0]


# ----------------------------------------------------------------------------- writing
def _as_tensors(arrays: Mapping[str, Any] | None, what: str) -> dict[str, np.ndarray]:
    out = {}
    for key, value in (arrays or {}).items():
        if not isinstance(key, str) or key == "__metadata__":
            raise ValueError(f"{what}: invalid tensor name {key!r}")
        # safetensors needs dense C-order memory; not ascontiguousarray, which makes 0-d arrays 1-d.
        arr = np.asarray(value)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")
        if arr.dtype not in _DTYPES.values():
            raise TypeError(f"{what}: tensor {key!r} has unsupported dtype {arr.dtype}")
        out[key] = arr
    return out


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fresh_sibling(directory: Path, kind: str) -> Path:
    while True:
        cand = directory.parent / f"{directory.name}.{kind}-{secrets.token_hex(4)}"
        if not cand.exists():
            return cand


def _recover(directory: Path) -> None:
    """Before saving: put the last good checkpoint back at ``directory``, drop leftovers."""
    if not directory.exists():
        found = _newest_complete_leftover(directory)
        if found is not None:
            os.rename(found[1], directory)
            fsync_dir(directory.parent)
    for p in _leftovers(directory):
        shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(
    directory: str | os.PathLike,
    model_state: Mapping[str, Any],
    state_arrays: Mapping[str, Any] | None = None,
    state_json: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint to ``directory``, replacing any previous one atomically.

    Args:
        directory: the checkpoint folder, e.g. ``run/checkpoints/last``.
        model_state: weight name (PyTorch key names) -> ndarray.
        state_arrays: other arrays (optimizer/scheduler buffers) -> ndarray.
        state_json: JSON-serialisable dict (epoch, step, RNG states, ...).

    Returns:
        ``directory`` as a Path.

    Raises:
        StorageError: an ``OSError`` while writing; the previous checkpoint is intact.
        TypeError / ValueError: unsupported dtype, bad name, non-JSON state (bugs).
    """
    import safetensors.numpy

    directory = Path(directory)
    model = _as_tensors(model_state, "model_state")
    state = _as_tensors(state_arrays, "state_arrays")
    # Serialise everything before touching the disk so a bug cannot leave debris.
    payload = {
        MODEL_FILE: safetensors.numpy.save(model, metadata={"format": "pt"}),
        STATE_FILE: safetensors.numpy.save(state, metadata={"format": "pt"}),
        STATE_JSON: (json.dumps(dict(state_json or {}), indent=2, default=json_default) + "\n").encode("utf-8"),
    }
    manifest = {
        "format": _FORMAT,
        "version": 1,
        "created_ns": time.time_ns(),
        "files": {
            name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in payload.items()
        },
    }
    tmp = old = None
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        _recover(directory)
        tmp = _fresh_sibling(directory, "tmp")
        os.mkdir(tmp)
        for name, data in payload.items():
            _write_file(tmp / name, data)
        # The manifest goes last: its presence (with matching hashes) means "complete".
        _write_file(tmp / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
        fsync_dir(tmp)
        if directory.exists():
            old = _fresh_sibling(directory, "old")
            os.rename(directory, old)
        os.rename(tmp, directory)
        tmp = None
        fsync_dir(directory.parent)
    except Exception as exc:
        # Not BaseException: a SIGKILL-like abort must be survivable without this cleanup,
        # and the tests simulate exactly that.
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise StorageError(directory, exc, action="save checkpoint") from exc
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return directory


# ----------------------------------------------------------------------------- fitting
def _spec(value: Any) -> tuple[tuple[int, ...], np.dtype | None]:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return tuple(value.shape), np.dtype(value.dtype)
    shape, dtype = value
    return tuple(shape), (None if dtype is None else np.dtype(dtype))


def check_state_fits(
    model_state: Mapping[str, np.ndarray],
    expected: Mapping[str, Any],
    source: str | os.PathLike | None = None,
) -> None:
    """Check checkpoint weights against the model's parameters, reporting all problems at once.

    Args:
        model_state: name -> array, as loaded from the checkpoint.
        expected: name -> ``(shape, dtype)`` (dtype may be None to skip the check)
            or any array-like with ``.shape`` and ``.dtype`` (e.g. the model's arrays).
        source: the checkpoint path, for the message.

    Raises:
        CheckpointError: listing missing keys, unexpected keys, shape and dtype mismatches.
    """
    problems: list[str] = []

    def listing(label: str, items: list[str]) -> None:
        if items:
            shown = ", ".join(items[:20]) + (f", ... and {len(items) - 20} more" if len(items) > 20 else "")
            problems.append(f"  {label} ({len(items)}): {shown}")

    missing = [f"{k} {_spec(v)[0]}" for k, v in expected.items() if k not in model_state]
    unexpected = [f"{k} {tuple(v.shape)}" for k, v in model_state.items() if k not in expected]
    shapes, dtypes = [], []
    for k, v in expected.items():
        if k in model_state:
            shape, dtype = _spec(v)
            got = model_state[k]
            if tuple(got.shape) != shape:
                shapes.append(f"{k}: checkpoint {tuple(got.shape)} vs model {shape}")
            elif dtype is not None and got.dtype != dtype:
                dtypes.append(f"{k}: checkpoint {got.dtype} vs model {dtype}")
    listing("missing from the checkpoint", missing)
    listing("unexpected in the checkpoint", unexpected)
    listing("shape mismatch", shapes)
    listing("dtype mismatch", dtypes)
    if problems:
        where = f"{source}" if source is not None else "checkpoint"
        raise CheckpointError(
            f"{where}: the checkpoint's tensors do not fit the model built from the config:\n"
            + "\n".join(problems)
        )
