"""Loading untrusted pickles (CIFAR's python batches): nothing runs, and no claimed size is trusted.

A pickle is a small program, so a hostile one can do more than call code: it
can claim sizes it does not hold. Three layers stop it:

1. :func:`_scan` reads the opcodes without building anything. Every length the
   pickle claims (bytes, strings, frames) must fit in what it holds, memo indices
   stay below the number of opcodes (a 10-byte pickle with ``LONG_BINPUT 2**27``
   would make the C unpickler zero a 2 GiB memo table), and out-of-band
   buffers and persistent ids are refused.
2. :class:`RestrictedUnpickler` answers ``find_class`` only for the names numpy's
   own pickles use, and never with numpy itself: ``numpy.ndarray`` is a token
   that cannot be called (``ndarray((300000, 3072))`` would allocate ~1 GB of
   garbage), ``numpy.dtype`` builds only plain numeric, bool and fixed-size string
   dtypes, and an array's state (shape, dtype, order, raw bytes) is checked
   here, so that ``prod(shape) * itemsize`` equals the bytes the pickle really
   holds, before an array exists. Numpy's C ``__setstate__`` never sees
   hostile state: with object dtype and a short list it reads past the list and
   crashes the process.
3. :func:`_finish` walks the result once: placeholders become arrays and dtypes,
   anything that is not a builtin container, scalar or array is refused, as are
   cycles and nesting deeper than 20.

Arrays come back as read-only views of the pickle's bytes (no copy).
"""
from __future__ import annotations

import io
import pickle
import pickletools

import numpy as np

from trainkit.errors import DataError

__all__ = ["RestrictedUnpickler", "load_pickle"]

_MAX_DEPTH = 20
_MAX_NDIM = 32
_DTYPE_KINDS = "biufcSU"  # bool, integers, floats, complex, fixed-size bytes and str: nothing holds objects
_PLAIN = (str, bytes, bytearray, int, float, complex, bool, type(None))


class _Refused(pickle.UnpicklingError):
    """The pickle asks for something refused on principle (code, object arrays, cycles)."""


class _Claim(pickle.UnpicklingError):
    """The pickle claims a size it does not hold."""


def _opcode_layouts() -> dict[int, tuple[str, int, int]]:
    """opcode byte -> (name, how its argument is laid out, size), from pickletools' table.

    Layouts: 0 a fixed number of bytes; 1 a little-endian length of ``size``
    bytes followed by that many bytes; 2 ``size`` newline-terminated lines.
    """
    out = {}
    for op in pickletools.opcodes:
        arg = op.arg
        if arg is None:
            layout = (0, 0)
        elif arg.n >= 0:
            layout = (0, arg.n)
        elif arg.n == pickletools.UP_TO_NEWLINE:
            layout = (2, 2 if op.name in ("GLOBAL", "INST") else 1)
        else:
            layout = (1, {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
                          pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}[arg.n])
        out[op.code.encode("latin1")[0]] = (op.name, *layout)
    return out


_LAYOUTS = _opcode_layouts()
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_SIGNED = {op.name for op in pickletools.opcodes
           if op.arg is not None and op.arg.n == pickletools.TAKEN_FROM_ARGUMENT4}
_REFUSED_OPS = {"NEXT_BUFFER", "READONLY_BUFFER", "PERSID", "BINPERSID"}


def _scan(data: bytes) -> None:
    """Check every opcode's claims before the C unpickler acts on them (see the module docstring).

    A linear pass over the bytes, building nothing (pickletools.genops does the
    same but decodes every argument, which costs a CIFAR batch 0.1 s).
    """
    i, end, count = 0, len(data), 0
    while True:
        if i >= end:
            raise _Claim("truncated: the pickle ends without its STOP opcode")
        layout = _LAYOUTS.get(data[i])
        if layout is None:
            raise _Claim(f"unknown opcode {data[i]:#04x} at byte {i}")
        name, kind, size = layout
        i += 1
        count += 1
        if name in _REFUSED_OPS:
            raise _Refused(f"{name} (out-of-band data or persistent ids) is not allowed")
        if kind == 2:  # text lines
            start = i
            for _ in range(size):
                nl = data.find(b"\n", i)
                if nl < 0:
                    raise _Claim(f"truncated: {name} at byte {start - 1} has no end of line")
                i = nl + 1
            if name == "PUT":
                try:
                    index = int(data[start:i - 1])
                except ValueError:
                    raise _Claim(f"PUT at byte {start - 1} has no valid memo index") from None
                _check_memo(index, count)
            continue
        if i + size > end:
            raise _Claim(f"truncated: {name} at byte {i - 1} needs {size} more bytes")
        value = int.from_bytes(data[i:i + size], "little", signed=name in _SIGNED)
        i += size
        if kind == 1:
            if not 0 <= value <= end - i:
                raise _Claim(f"{name} at byte {i - size - 1} claims {value:,} bytes but the pickle holds "
                             f"{end - i:,} more")
            i += value
        elif name in _MEMO_PUTS:
            _check_memo(value, count)
        elif name == "STOP":
            return


def _check_memo(index: int, count: int) -> None:
    # The pickler numbers memo entries 0, 1, 2, ...; a bigger index only serves to make the
    # unpickler allocate (and zero) a memo table of that size.
    if not 0 <= index <= count:
        raise _Claim(f"memo index {index:,} at opcode {count:,} (a pickle numbers them in order)")


class _Token:
    """``numpy.ndarray`` as a pickle sees it: a name ``_reconstruct`` checks, not a constructor."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        ok = args and isinstance(args[0], tuple) and len(args[0]) <= _MAX_NDIM and all(type(d) is int for d in args[0])
        shape = str(args[0]) if ok else "..."
        raise _Refused(f"numpy.ndarray({shape}, ...) called directly: it would allocate an array of the shape "
                       "the pickle claims, holding none of its data; only numpy's own array pickles are allowed")


_NDARRAY = _Token()


class _Callable:
    """An allowed global: callable, but its attributes cannot be set by BUILD."""

    __slots__ = ("_fn",)

    def __init__(self, fn):
        object.__setattr__(self, "_fn", fn)

    def __setattr__(self, key, value):
        raise _Refused("setting attributes of an allowed function")

    def __call__(self, *args):
        return self._fn(*args)


def _text(value, what: str, limit: int = 16) -> str:
    if isinstance(value, bytes):  # Python 2 pickles (the official CIFAR batches) carry bytes here
        value = value.decode("latin1")
    if not isinstance(value, str) or len(value) > limit:
        raise _Refused(f"{what} must be a short string")
    return value


class _DtypePlaceholder:
    """What ``numpy.dtype(name, align, copy)`` returns; BUILD's state is checked in ``__setstate__``."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise _Refused("unexpected dtype state")
        order = _text(state[1], "dtype byte order")
        subarray, names, fields, elsize, alignment = state[2:7]
        if order not in ("<", ">", "|", "=") or subarray is not None or names is not None or fields is not None:
            raise _Refused("only plain numeric and string dtypes are allowed (no fields or sub-arrays)")
        if len(state) == 9 and state[8] is not None:
            raise _Refused("dtype metadata is not allowed")
        if not all(isinstance(v, int) for v in (elsize, alignment, state[7])):
            raise _Refused("unexpected dtype state")
        if elsize not in (-1, self.dtype.itemsize):
            raise _Claim(f"dtype {self.dtype} has {self.dtype.itemsize}-byte items, its state claims {elsize}")
        if order in "<>" and self.dtype.itemsize > 1 and self.dtype.kind != "S":
            self.dtype = self.dtype.newbyteorder(order)


def _make_dtype(name, align=False, copy=True) -> _DtypePlaceholder:
    name = _text(name, "dtype name")
    if not isinstance(align, int) or not isinstance(copy, int):
        raise _Refused("unexpected dtype arguments")
    try:
        dt = np.dtype(name)
    except (TypeError, ValueError):
        raise _Refused(f"unknown dtype {name!r}") from None
    if dt.hasobject:
        raise _Refused("object arrays are not allowed (their items would be arbitrary pickled objects)")
    if dt.kind not in _DTYPE_KINDS or dt.fields is not None or dt.subdtype is not None or dt.itemsize == 0:
        raise _Refused(f"dtype {name!r} is not allowed (only plain numeric, bool and fixed-size string arrays)")
    return _DtypePlaceholder(dt)


def _shape(shape) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > _MAX_NDIM or not all(
            type(s) is int and s >= 0 for s in shape):
        raise _Refused(f"an array shape must be a tuple of at most {_MAX_NDIM} non-negative integers")
    return shape


def _array(raw, dtype, shape, fortran) -> np.ndarray:
    """A read-only array over ``raw`` once ``prod(shape) * itemsize`` is exactly ``len(raw)``."""
    if not isinstance(dtype, _DtypePlaceholder):
        raise _Refused("an array's dtype must come from numpy.dtype")
    dt, shape = dtype.dtype, _shape(shape)
    if isinstance(raw, str):  # numpy accepts latin-1 text for the raw bytes
        try:
            raw = raw.encode("latin1")
        except UnicodeEncodeError:
            raise _Refused("array data is text that is not latin-1") from None
    if not isinstance(raw, (bytes, bytearray)):
        raise _Refused(f"array data must be bytes, found {type(raw).__name__}")
    count = 1
    for s in shape:
        count *= s
    need = count * dt.itemsize
    if need != len(raw):
        raise _Claim(f"an array claims shape {shape} of {dt} ({need:,} bytes) but the pickle holds "
                     f"{len(raw):,} bytes for it")
    return np.frombuffer(raw, dtype=dt).reshape(shape, order="F" if fortran else "C")


class _ArrayPlaceholder:
    """What ``_reconstruct`` returns; BUILD hands it the array's state, checked by :func:`_array`."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if self.array is not None:
            raise _Refused("an array's state was set twice")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("unexpected array state")
        if len(state) == 5:
            if state[0] not in (0, 1):
                raise _Refused(f"unknown array state version {state[0]!r}")
            state = state[1:]
        shape, dtype, fortran, raw = state
        if fortran not in (0, 1):  # also True/False
            raise _Refused("an array's order flag must be a bool")
        self.array = _array(raw, dtype, shape, fortran)


def _reconstruct(subtype, shape, _dtype) -> _ArrayPlaceholder:
    # numpy always pickles an empty placeholder here and fills it in BUILD.
    if subtype is not _NDARRAY or shape != (0,):
        raise _Refused("unexpected array reconstruction arguments")
    return _ArrayPlaceholder()


def _frombuffer(buf, dtype, shape, order) -> np.ndarray:
    # Protocol 5's in-band form: (bytes or bytearray, dtype, shape, 'C' | 'F').
    if order not in ("C", "F"):
        raise _Refused("an array's order must be 'C' or 'F'")
    return _array(buf, dtype, shape, order == "F")


def _bytes(*args) -> bytes:
    # Protocols 0-2 write b"" as bytes(); with any argument bytes() could allocate (bytes(10**12)).
    if args:
        raise _Refused("bytes(...) is allowed only without arguments")
    return b""


def _bytearray(*args) -> bytearray:
    # Protocols 0-4 write a bytearray as bytearray(b"..."); bytearray(10**12) would allocate.
    if len(args) > 1 or (args and not isinstance(args[0], bytes)):
        raise _Refused("bytearray(...) is allowed only from bytes")
    return bytearray(*args)


def _container(kind):
    def build(items=()):
        # Protocols 0-3 write sets as set([...]): only from a list the pickle holds.
        if not isinstance(items, list):
            raise _Refused(f"{kind.__name__}(...) is allowed only from a list")
        return kind(items)
    return build


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    """The one use of ``_codecs.encode`` numpy pickles need: a latin-1 str back to bytes."""
    if not isinstance(obj, str) or not isinstance(encoding, str) or errors != "strict" \
            or encoding.replace("-", "").lower() != "latin1":
        raise _Refused("_codecs.encode is allowed only as str -> latin1 bytes")
    return obj.encode("latin1")


_ALLOWED = {
    # Protocols 2-4 rebuild arrays with _reconstruct, protocol 5 with _frombuffer; numpy 1.x names
    # the module numpy.core, numpy 2.x numpy._core.
    ("numpy.core.multiarray", "_reconstruct"): _Callable(_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _Callable(_reconstruct),
    ("numpy.core.numeric", "_frombuffer"): _Callable(_frombuffer),
    ("numpy._core.numeric", "_frombuffer"): _Callable(_frombuffer),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Callable(_make_dtype),
    ("_codecs", "encode"): _Callable(_latin1_encode),
}
for _module in ("builtins", "__builtin__"):  # Python 3 and Python 2 names of the same builtins
    _ALLOWED.update({(_module, "bytes"): _Callable(_bytes), (_module, "bytearray"): _Callable(_bytearray),
                     (_module, "set"): _Callable(_container(set)),
                     (_module, "frozenset"): _Callable(_container(frozenset))})


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds numpy arrays, builtin containers and scalars.

    ``find_class`` is the only way a pickle can reach code; it answers for the
    names above (with checked stand-ins, never numpy's own callables) and
    refuses everything else, so a ``__reduce__`` that names ``os.system``
    fails before anything is called. Use :func:`load_pickle`, which also scans
    the opcodes first and turns the placeholders into arrays.
    """

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name} is not allowed: only numpy arrays and "
                           "builtin containers are") from None

    def persistent_load(self, pid):
        raise _Refused("persistent ids are not allowed")


_IN_PROGRESS = object()


def _finish(obj, seen: dict, depth: int = 0):
    """Replace placeholders by arrays and dtypes; refuse other objects, cycles and deep nesting."""
    if isinstance(obj, _PLAIN):
        return obj
    key = id(obj)
    done = seen.get(key)
    if done is _IN_PROGRESS:
        raise _Refused("a container contains itself")
    if done is not None:
        return done
    if depth > _MAX_DEPTH:
        raise _Refused("nesting too deep")
    kind = type(obj)
    if kind is _ArrayPlaceholder:
        if obj.array is None:
            raise _Refused("an array without its state")
        out = obj.array
    elif kind is _DtypePlaceholder:
        out = obj.dtype
    elif kind is np.ndarray:  # from _frombuffer, already checked
        out = obj
    elif kind in (dict, list, tuple, set, frozenset):
        seen[key] = _IN_PROGRESS
        if kind is dict:
            out = {_finish(k, seen, depth + 1): _finish(v, seen, depth + 1) for k, v in obj.items()}
        else:
            # Long lists of ints (labels) are flat: only containers inside cost a call.
            items = [v if isinstance(v, _PLAIN) else _finish(v, seen, depth + 1) for v in obj]
            out = items if kind is list else kind(items)
    else:
        raise _Refused(f"unexpected {kind.__name__} object")
    seen[key] = out
    return out


def load_pickle(data: bytes, source: str) -> object:
    """Unpickle ``data`` safely; any failure is a DataError naming ``source``.

    Python 2 strings are read as bytes (the official CIFAR batches are Python 2
    pickles); callers normalise bytes keys. Arrays are read-only views of ``data``.
    """
    try:
        _scan(data)
        return _finish(RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load(), {})
    except _Claim as exc:
        raise DataError(f"{source}: {exc}") from None
    except _Refused as exc:
        raise DataError(f"{source}: unsafe pickle refused: {exc}") from None
    except pickle.UnpicklingError as exc:
        raise DataError(f"{source}: invalid pickle: {exc}") from None
    except MemoryError:
        raise DataError(f"{source}: pickle too large to load") from None
    except RecursionError:
        raise DataError(f"{source}: unsafe pickle refused: nesting too deep") from None
    except Exception as exc:  # any other parse failure of hostile bytes is a data problem
        raise DataError(f"{source}: not a valid pickle ({type(exc).__name__}: {exc})") from None
