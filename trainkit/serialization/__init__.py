"""``trainkit.save`` / ``trainkit.load``: PyTorch's API, with nothing ever unpickled.

``save(obj, f)`` writes tensors, state dicts, optimizer state dicts and nested
dicts/lists/tuples of tensors and plain values to one safetensors file with
the nesting as JSON in its header (see :mod:`.native` for the format and why);
a path is replaced atomically (temporary file, fsync, rename).

``load(f)`` reads

* files written by ``trainkit.save`` (and any other ``.safetensors`` file,
  returned as a state dict of tensors);
* PyTorch's own ``.pt``/``.pth`` files (the zip format of PyTorch >= 1.6),
  through a restricted interpreter of their pickle that admits exactly what
  ``torch.load(weights_only=True)`` admits and refuses anything else with an
  :class:`UnsafePickleError` (a ``pickle.UnpicklingError``) naming the
  forbidden global; nothing in the file is ever run (see :mod:`.torch_pt`).

Bare pickles and PyTorch's legacy (pre-1.6, non-zip) format are refused.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from .errors import SerializationError, UnsafePickleError
from .globals_allowlist import add_safe_globals, clear_safe_globals, get_safe_globals, safe_globals

__all__ = ["save", "load", "SerializationError", "UnsafePickleError", "add_safe_globals", "clear_safe_globals",
           "get_safe_globals", "safe_globals"]

_TAR_MAGIC_OFFSET = 257


def save(obj: Any, f, pickle_module: Any = None, pickle_protocol: Any = None,
         _use_new_zipfile_serialization: bool = True, _disable_byteorder_record: bool = False) -> None:
    """Save ``obj`` to a path or a writable binary file object, as ``torch.save`` does.

    ``obj`` may hold Tensors and Parameters (dtypes bool, (u)int8..64, float16/32/64,
    complex64), numpy arrays and scalars, dict/OrderedDict (any hashable plain
    keys), list, tuple, set, int, float (also nan/inf), bool, str, bytes, None,
    ``Size``, ``dtype`` and ``device``, whole ``nn.Module`` objects (their class
    by name and their attributes; shared submodules and tied weights stay
    shared) and classes/functions by name. Anything else raises TypeError: there
    is no pickling. Loading a module needs its class allowlisted unless it is
    one of trainkit's own layers (:func:`add_safe_globals`, :func:`safe_globals`). ``pickle_module``/``pickle_protocol`` and the underscore flags
    are accepted for PyTorch compatibility and ignored.

    The file is for ``trainkit.load`` (or any safetensors reader); PyTorch's
    ``torch.load`` cannot read it.
    """
    from .native import encode

    data = encode(obj)
    if isinstance(f, (str, os.PathLike)):
        from trainkit.utils.atomic import atomic_write_bytes

        atomic_write_bytes(Path(f), data)
    elif hasattr(f, "write"):
        f.write(data)
    else:
        raise TypeError(f"save() expects a path or a writable file object, got {type(f).__name__}")


def _check_map_location(map_location: Any) -> None:
    from trainkit.autograd.device import check_cpu, device

    if map_location is None or callable(map_location) and not isinstance(map_location, (str, device)):
        return
    if isinstance(map_location, dict):
        for target in map_location.values():
            check_cpu(target)
        return
    check_cpu(map_location)


def _looks_like_safetensors(head: bytes) -> bool:
    """An 8-byte header length, then a JSON object. Checked before the pickle sniff: a header length
    such as 0x0280 starts with the bytes of a pickle's PROTO 2. (A pickle taken for safetensors is
    refused by the header validation; nothing is unpickled either way.)"""
    return len(head) >= 9 and head[8:9] == b"{"


def _read_source(f) -> tuple[bytes, str]:
    if isinstance(f, (str, os.PathLike)):
        path = Path(f)
        try:
            mode = os.stat(path).st_mode
            if stat.S_ISDIR(mode):
                raise SerializationError(f"{path}: is a directory, expected a file saved by trainkit.save or "
                                         "torch.save")
            if not stat.S_ISREG(mode):
                raise SerializationError(f"{path}: not a regular file (a device, FIFO or socket)")
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise SerializationError(f"{path}: no such file") from None
        except OSError as exc:
            raise SerializationError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if hasattr(f, "read"):
        data = f.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("load() needs a binary file object (opened with 'rb')")
        return bytes(data), getattr(f, "name", None) or "<file object>"
    raise TypeError(f"load() expects a path or a readable file object, got {type(f).__name__}")


def load(f, map_location: Any = None, pickle_module: Any = None, *, weights_only: bool | None = None,
         mmap: bool | None = None, **pickle_load_args: Any) -> Any:
    """Load an object saved by ``trainkit.save`` or by PyTorch's ``torch.save``, as ``torch.load`` does.

    Args:
        f: a path or a readable binary file object.
        map_location: ``None``, ``"cpu"``, ``device("cpu")``, a dict of
            location -> location, or a callable ``(storage, location)``, as in
            PyTorch. Every tensor is loaded onto the CPU (the only device);
            mapping to another device raises RuntimeError.
        pickle_module, weights_only, mmap, pickle_load_args: accepted for
            PyTorch compatibility. Loading is always weights-only: trainkit
            never runs code from a file, whatever ``weights_only`` says.

    Returns:
        The saved object, with trainkit ``Tensor``/``nn.Parameter`` in place of torch's.

    Raises:
        UnsafePickleError: a ``.pt`` pickle names a forbidden global or
            instruction, or the file is a bare/legacy pickle (a ``pickle.UnpicklingError``).
        SerializationError: the file is missing, truncated, corrupt or of an unknown kind
            (a ``RuntimeError``; both are ``trainkit.errors.CheckpointError``).
    """
    _check_map_location(map_location)
    data, source = _read_source(f)
    from .torch_pt import is_torch_zip, load_torch_zip

    if is_torch_zip(data[:4]):
        return load_torch_zip(data, source, map_location)
    if _looks_like_safetensors(data):
        from .native import decode

        return decode(data, source)
    if data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5:
        raise UnsafePickleError(f"{source}: a bare pickle (or PyTorch's legacy pre-1.6 format): trainkit only reads "
                                "PyTorch's zip format, whose pickle it interprets without running it. Re-save "
                                "the object with torch.save from PyTorch >= 1.6")
    if data[_TAR_MAGIC_OFFSET:_TAR_MAGIC_OFFSET + 5] == b"ustar":
        raise SerializationError(f"{source}: PyTorch's legacy tar format is not supported; re-save the object "
                                 "with torch.save from PyTorch >= 1.6")
    raise SerializationError(f"{source}: not a file written by trainkit.save, torch.save or safetensors "
                             f"({len(data)} bytes)")


_NESTED_STATE_KEYS = ("state_dict", "model_state_dict", "model")


def _sniff_kind(path: Path) -> str:
    """'torch' (zip), 'pickle', 'trainkit' (trainkit.save) or 'other', from the file's first bytes."""
    import json
    import struct

    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if head.startswith(b"PK\x03\x04"):
                return "torch"
            if len(head) == 8 and fh.read(1) == b"{":
                (n,) = struct.unpack("<Q", head)
                if n <= 16 * 1024 * 1024:
                    header = json.loads(b"{" + fh.read(n - 1))
                    if isinstance(header, dict) and "trainkit.save" in (header.get("__metadata__") or {}):
                        return "trainkit"
                return "other"
            if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
                return "pickle"
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        pass
    return "other"


def load_weights_file(path: str | os.PathLike):
    """Model weights (name -> ndarray) from a PyTorch ``.pt``/``.pth`` or ``trainkit.save`` file, for the CLI.

    Returns None for any other file (e.g. a plain ``.safetensors`` file, which
    the checkpoint reader handles). The file must hold a state dict, or a dict
    with one under ``state_dict``, ``model_state_dict`` or ``model`` (the usual
    training-checkpoint layouts).

    Raises:
        UnsafePickleError / SerializationError: as :func:`load` (the CLI exits with code 2).
    """
    import numpy as np

    from trainkit.autograd.tensor import Tensor

    path = Path(path)
    if _sniff_kind(path) == "other":
        return None
    obj = load(path, map_location="cpu")

    def as_state(candidate):
        if isinstance(candidate, dict) and candidate and all(
                isinstance(k, str) and isinstance(v, (Tensor, np.ndarray)) for k, v in candidate.items()):
            return {k: (v._array if isinstance(v, Tensor) else v) for k, v in candidate.items()}
        return None

    state = as_state(obj)
    if state is None and isinstance(obj, dict):
        for key in _NESTED_STATE_KEYS:
            state = as_state(obj.get(key))
            if state is not None:
                break
    if state is None:
        shown = ", ".join(repr(k) for k in list(obj)[:10]) if isinstance(obj, dict) else type(obj).__name__
        raise SerializationError(f"{path}: holds no state dict (a dict of name -> tensor, possibly under "
                                 f"{', '.join(_NESTED_STATE_KEYS)}); found {shown}")
    return state
