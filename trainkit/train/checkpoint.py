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
:class:`~trainkit.utils.atomic.StorageError`; the previous checkpoint is intact.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import stat
import struct
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from trainkit.errors import CheckpointError
from trainkit.serialization.safetensors_file import (  # noqa: F401  (re-exported: the checkpoint API)
    DTYPES as _DTYPES, MAX_HEADER_BYTES, _parse_safetensors, _read_safetensors_bytes, read_safetensors,
    require_regular_file as _require_regular_file, validate_safetensors,
)
from trainkit.utils.atomic import StorageError, fsync_dir, json_default

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
    "recover_checkpoint",
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

#: Largest state.json / manifest.json accepted.
_MAX_JSON_BYTES = 64 * 1024 * 1024

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


def _manifest_problem(manifest: dict) -> str | None:
    """What is malformed in a manifest's fields (a leftover ``.tmp-*`` may hold anything), or None."""
    created = manifest.get("created_ns")
    if not (isinstance(created, int) and not isinstance(created, bool) and 0 <= created < 2 ** 63):
        return f"created_ns must be a timestamp in nanoseconds, found {str(created)[:40]!r}"
    version = manifest.get("version")
    if not (isinstance(version, int) and not isinstance(version, bool) and version == 1):
        return f"unsupported version {str(version)[:40]!r} (this trainkit reads version 1)"
    for name, entry in manifest["files"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("size"), int) and not isinstance(entry["size"], bool)
                and entry["size"] >= 0 and isinstance(entry.get("sha256"), str)
                and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
            return f"entry {str(name)[:60]!r} must be {{size: bytes, sha256: 64 hex digits}}"
    return None


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
    why = _manifest_problem(manifest)
    if why:
        raise CheckpointError(f"{path / MANIFEST}: {why}")
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
    for attempt in range(_SWAP_RETRIES):
        before = _identity(directory)
        try:
            if before is None:
                found = _newest_complete_leftover(directory)
                if found is None:
                    raise CheckpointError(f"{directory}: no checkpoint found")
                _, model, state, state_json = found[2]
            else:
                _, model, state, state_json = _load_dir(directory)
            return model, state, state_json
        except CheckpointError:
            # A reader (eval) racing the writer's swap: the folder it started on was renamed away.
            if attempt + 1 < _SWAP_RETRIES and _identity(directory) != before:
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover


#: How often a read is retried when the checkpoint it read was swapped meanwhile.
_SWAP_RETRIES = 5


def _identity(directory: Path):
    try:
        st = directory.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


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


def recover_checkpoint(directory: str | os.PathLike) -> None:
    """Put the last good checkpoint back at ``directory`` after a kill mid-swap and remove
    ``.tmp-*``/``.old-*`` debris (what the next save does first; a resumed run that only
    finishes its report saves nothing, so it calls this).

    Raises:
        StorageError: the folder cannot be written.
    """
    directory = Path(directory)
    try:
        _recover(directory)
    except OSError as exc:
        raise StorageError(directory, exc, action="restore checkpoint") from exc


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
