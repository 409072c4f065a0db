"""Reading PyTorch ``.pt``/``.pth`` files (the zip layout of PyTorch >= 1.6) without PyTorch and without pickle.

Layout: one top folder ``<name>/`` holding ``data.pkl`` (a protocol-2 pickle of
the object), ``data/<key>`` (one raw little-endian storage per key),
``byteorder`` and ``version``. The pickle refers to storages by persistent id
``("storage", <storage type>, key, location, numel)`` and rebuilds tensors with
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``.

What is checked, before any allocation:

* the archive: a readable zip, members stored (not compressed: PyTorch never
  compresses, and compression is how zip bombs work), no encryption, every
  member no larger than the file, and the bytes read in total no more than
  the file's size;
* the pickle: interpreted by :mod:`.unpickler` with the table below, which is
  exactly the set of globals PyTorch's ``weights_only=True`` admits; the ones
  trainkit can represent map to trainkit objects, the rest raise a clear
  "not supported" error;
* each storage: ``numel * itemsize`` equals its member's size;
* each tensor: sizes and strides non-negative, and the furthest element it
  addresses inside its storage. Tensors are views of their storage, so tensors
  that shared storage in PyTorch share memory here too.
"""
from __future__ import annotations

import io
import math
import re
import zipfile
from collections import Counter, OrderedDict
from typing import Any, Callable

import numpy as np

from trainkit.autograd import dtypes as _dt
from trainkit.autograd.device import cpu_only_error, device
from trainkit.autograd.size import Size
from trainkit.autograd.tensor import Tensor

from .errors import SerializationError, UnsafePickleError
from .unpickler import Budget, Factory, Unpickler

__all__ = ["is_torch_zip", "load_torch_zip"]

ZIP_MAGIC = b"PK\x03\x04"
_KEY_RE = re.compile(r"^[A-Za-z0-9_.]{1,128}$")

# Legacy storage class name -> element dtype ("bfloat16" is widened to float32 on load).
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "ByteStorage": "uint8", "CharStorage": "int8", "ShortStorage": "int16", "IntStorage": "int32",
    "LongStorage": "int64", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
_UNSUPPORTED_STORAGES = ("QInt32Storage", "QInt8Storage", "QUInt2x4Storage", "QUInt4x2Storage", "QUInt8Storage")
_TENSOR_CLASSES = ("BFloat16Tensor", "BoolTensor", "ByteTensor", "CharTensor", "DoubleTensor", "FloatTensor",
                   "HalfTensor", "IntTensor", "LongTensor", "ShortTensor")
_SPARSE_CLASSES = ("BFloat16Tensor", "ByteTensor", "CharTensor", "DoubleTensor", "FloatTensor", "HalfTensor",
                   "IntTensor", "LongTensor", "ShortTensor")
# torch dtype names PyTorch admits; those numpy has map to trainkit dtypes, the rest are refused when used.
_TORCH_DTYPES = ("bfloat16", "bits16", "bits1x8", "bits2x4", "bits4x2", "bits8", "bool", "complex128", "complex32",
                 "complex64", "float16", "float32", "float4_e2m1fn_x2", "float64", "float8_e4m3fn",
                 "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu", "qint32", "qint8",
                 "quint2x4", "quint4x2", "quint8") + tuple(f"int{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64)) \
    + tuple(f"uint{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64))
_NUMPY_DTYPES = ("bool", "float16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32",
                 "int64", "uint8", "uint16", "uint32", "uint64")
_QSCHEMES = ("per_channel_affine", "per_channel_affine_float_qparams", "per_channel_symmetric",
             "per_tensor_affine", "per_tensor_symmetric")
_UNSUPPORTED_REBUILDS = {
    "_rebuild_qtensor": "quantized tensors", "_rebuild_sparse_tensor": "sparse tensors",
    "_rebuild_meta_tensor_no_storage": "meta tensors", "_rebuild_nested_tensor": "nested tensors",
    "_rebuild_wrapper_subclass": "tensor subclasses", "_rebuild_device_tensor_from_numpy": "device tensors",
    "_rebuild_device_tensor_from_cpu_tensor": "device tensors",
}


def is_torch_zip(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a zip archive (PyTorch's format since 1.6)."""
    return head.startswith(ZIP_MAGIC)


class _Marker:
    """A PyTorch name that is admitted but only meaningful as an argument (a storage type, a tensor class...)."""

    __slots__ = ("name", "kind", "dtype")

    def __init__(self, name: str, kind: str, dtype: str | None = None):
        self.name, self.kind, self.dtype = name, kind, dtype

    def __repr__(self) -> str:
        return f"<torch {self.kind} {self.name}>"


class _Storage:
    """A storage as the pickle sees it: its key, element dtype, element count and location."""

    __slots__ = ("key", "dtype", "numel", "location", "_reader")

    def __init__(self, key: str, dtype: str, numel: int, location: str, reader: "_Archive"):
        self.key, self.dtype, self.numel, self.location, self._reader = key, dtype, numel, location, reader

    # What a ``map_location`` callable may do with the storage it is handed.
    def cpu(self) -> "_Storage":
        return self

    def cuda(self, *args, **kwargs):
        raise cpu_only_error("cuda")

    def nbytes(self) -> int:
        return self.numel * _itemsize(self.dtype)


def _itemsize(name: str) -> int:
    return 2 if name == "bfloat16" else np.dtype(name).itemsize


class _Archive:
    """The zip file, its member sizes, and the storages read from it (each once)."""

    def __init__(self, data: bytes, source: str):
        self.source = source
        self.size = len(data)
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
                IndexError, KeyError, UnicodeDecodeError) as exc:
            raise SerializationError(f"{source}: not a readable PyTorch zip archive ({exc}); the file is truncated "
                                     "or corrupt") from None
        self.members = {info.filename: info for info in infos}
        pkls = [n for n in self.members if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise SerializationError(f"{source}: not a PyTorch checkpoint: expected one '<name>/data.pkl' in the "
                                     f"zip archive, found {len(pkls)}")
        self.prefix = pkls[0][: -len("data.pkl")]
        self.read_total = 0
        self._raw: dict[str, bytearray] = {}
        self._views: dict[tuple[str, str], np.ndarray] = {}
        self.big_endian = False

    def read(self, name: str) -> bytearray:
        """One member's bytes, after checking it is stored plainly and fits the file."""
        info = self.members.get(self.prefix + name)
        if info is None:
            raise SerializationError(f"{self.source}: the archive has no member {self.prefix + name!r}")
        if info.flag_bits & 0x1:
            raise SerializationError(f"{self.source}: member {info.filename!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            raise SerializationError(f"{self.source}: member {info.filename!r} is compressed; PyTorch stores "
                                     "members uncompressed, and trainkit refuses compressed ones (zip bombs)")
        if info.file_size != info.compress_size or info.file_size > self.size:
            raise SerializationError(f"{self.source}: member {info.filename!r} claims {info.file_size} bytes, "
                                     f"more than the whole file ({self.size} bytes)")
        self.read_total += info.file_size
        if self.read_total > self.size:
            raise SerializationError(f"{self.source}: members overlap: reading them would take more bytes than "
                                     f"the file holds ({self.size}); the archive is malformed or hostile")
        try:
            with self.zip.open(info) as f:
                data = bytearray(f.read(info.file_size + 1))
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise SerializationError(f"{self.source}: member {info.filename!r} cannot be read ({exc}); the file "
                                     "is truncated or corrupt") from None
        if len(data) != info.file_size:
            raise SerializationError(f"{self.source}: member {info.filename!r} has {len(data)} bytes, its header "
                                     f"says {info.file_size}")
        return data

    def storage_array(self, storage: _Storage, dtype_name: str) -> np.ndarray:
        """The storage's bytes as a flat writable array of ``dtype_name`` (one array per storage and dtype)."""
        cache_key = (storage.key, dtype_name)
        if cache_key in self._views:
            return self._views[cache_key]
        raw = self._raw.get(storage.key)
        if raw is None:
            raw = self._raw[storage.key] = self.read(f"data/{storage.key}")
        expected = storage.numel * _itemsize(storage.dtype)
        if len(raw) != expected:
            raise SerializationError(f"{self.source}: storage {storage.key!r} claims {storage.numel} x "
                                     f"{storage.dtype} = {expected} bytes, but its member holds {len(raw)}")
        itemsize = _itemsize(dtype_name)
        count = len(raw) // itemsize
        order = ">" if self.big_endian else "<"
        if dtype_name == "bfloat16":
            bits = np.frombuffer(raw, dtype=order + "u2", count=count).astype(np.uint32)
            arr = (bits << 16).view(np.float32)  # bfloat16 is the top half of a float32: widening is exact
        elif dtype_name == "bool":
            arr = np.frombuffer(raw, dtype=np.uint8, count=count) != 0  # canonical 0/1 bools
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(dtype_name).newbyteorder(order), count=count)
            if self.big_endian and arr.dtype.itemsize > 1:
                arr = arr.astype(np.dtype(dtype_name))
        self._views[cache_key] = arr
        return arr


class _Loader:
    """One ``load``: the archive, the map_location rule and the globals table bound to them."""

    def __init__(self, archive: _Archive, map_location: Any):
        self.archive = archive
        self.source = archive.source
        self.map_location = map_location
        # Element budget for containers the pickle asks factories to copy: proportional to the file.
        self.budget = Budget(max(1 << 20, 4 * archive.size), self.source)

    def fail(self, message: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self.source}: {message}")

    # ------------------------------------------------------------ persistent ids
    def persistent_load(self, pid: tuple) -> _Storage:
        """A storage reference from its persistent id, checked (the bytes are read when a tensor uses it)."""
        if len(pid) != 5:
            raise self.fail(f"a storage persistent id has {len(pid)} fields, expected 5")
        _, stype, key, location, numel = pid
        if not isinstance(stype, _Marker) or stype.kind != "storage type":
            raise self.fail(f"a storage persistent id names {stype!r}, not a storage type")
        if stype.dtype is None:
            raise self.fail(f"{stype.name} storages (quantized) are not supported by trainkit")
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise self.fail(f"storage key {key!r} is not a plain name")
        if not isinstance(location, str) or len(location) > 64:
            raise self.fail(f"storage location {location!r} is not a device string")
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise self.fail(f"storage {key!r} has element count {numel!r}")
        storage = _Storage(key, stype.dtype, numel, location, self.archive)
        return self._relocate(storage)

    def _relocate(self, storage: _Storage) -> _Storage:
        """Apply ``map_location``: everything lands on the CPU; mapping explicitly to another device fails."""
        ml = self.map_location
        if ml is None:
            return storage  # PyTorch would need the saving device; trainkit reads every storage onto the CPU
        if callable(ml) and not isinstance(ml, (str, device)):
            out = ml(storage, storage.location)
            if out is None:
                return storage
            if not isinstance(out, _Storage):
                raise TypeError(f"map_location callable must return the storage it was given, got "
                                f"{type(out).__name__}")
            return out
        target = ml.get(storage.location, storage.location) if isinstance(ml, dict) else ml
        if str(target).split(":")[0] != "cpu":
            raise cpu_only_error(target)
        return storage

    # ------------------------------------------------------------------ rebuilds
    def tensor_from(self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any,
                    dtype_name: str | None) -> Tensor:
        """A Tensor viewing ``storage`` after checking every argument and the furthest element addressed."""
        if not isinstance(storage, _Storage):
            raise self.fail(f"a tensor's storage is {type(storage).__name__}, not a storage")
        elem = dtype_name or storage.dtype
        if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
            raise self.fail("a tensor's size and stride must be tuples of the same length")
        for v in (offset, *size, *stride):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise self.fail(f"a tensor has a negative or non-integer offset/size/stride ({v!r})")
        if len(size) > 64:
            raise self.fail(f"a tensor has {len(size)} dimensions (numpy allows 64)")
        self.budget.charge(len(size), "a tensor's shape")
        flat = self.archive.storage_array(storage, elem)
        if math.prod(size) > 0:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= flat.size:
                raise self.fail(f"a tensor of size {list(size)}, stride {list(stride)} at offset {offset} reaches "
                                f"element {last}, past the end of storage {storage.key!r} ({flat.size} elements)")
        elif offset > flat.size:
            raise self.fail(f"a tensor's offset {offset} is past the end of storage {storage.key!r}")
        if math.prod(size) >= 1 << 62:
            raise self.fail(f"a tensor of size {list(size)} has too many elements to address")
        item = flat.itemsize
        arr = np.lib.stride_tricks.as_strided(flat[offset:] if flat.size else flat, shape=size,
                                              strides=tuple(s * item for s in stride))
        if not isinstance(requires_grad, bool):
            raise self.fail(f"requires_grad is {requires_grad!r}, not a bool")
        t = Tensor(arr)
        if requires_grad:
            if arr.dtype.kind not in "fc":
                raise self.fail(f"a {arr.dtype} tensor is marked requires_grad")
            t.requires_grad_(True)
        return t

    def _check_hooks(self, hooks: Any, metadata: Any = None) -> None:
        if not (isinstance(hooks, dict) and not hooks):
            raise self.fail("tensors with backward hooks are not supported (hooks are code)")
        if metadata not in (None, {}) and not (isinstance(metadata, dict) and not metadata):
            raise self.fail("tensors with extra metadata (conjugate/negative bits...) are not supported by trainkit")

    def rebuild_v1(self, storage, storage_offset, size, stride):
        return self.tensor_from(storage, storage_offset, size, stride, False, None)

    def rebuild_v2(self, storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
        self._check_hooks(backward_hooks, metadata)
        return self.tensor_from(storage, storage_offset, size, stride, requires_grad, None)

    def rebuild_v3(self, storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                   metadata=None):
        self._check_hooks(backward_hooks, metadata)
        if not isinstance(dtype, _dt.dtype):
            raise self.fail(f"tensor dtype {dtype!r} is not supported by trainkit")
        return self.tensor_from(storage, storage_offset, size, stride, requires_grad, dtype.numpy_dtype.name)

    def rebuild_parameter(self, data, requires_grad, backward_hooks, state=None):
        from trainkit.nn.parameter import Parameter

        self._check_hooks(backward_hooks)
        if state:
            raise self.fail("Parameters with extra Python attributes are not supported by trainkit")
        if not isinstance(data, Tensor) or not isinstance(requires_grad, bool):
            raise self.fail("a Parameter must wrap a tensor")
        if requires_grad and data._array.dtype.kind not in "fc":
            raise self.fail(f"a {data._array.dtype} Parameter is marked requires_grad")
        return Parameter(data, requires_grad=requires_grad)

    def rebuild_from_type_v2(self, func, new_type, args, state):
        # PyTorch's path for tensors carrying Python attributes: func rebuilds, new_type is the class.
        if not (isinstance(func, Factory) and func.name.startswith("torch._utils._rebuild_tensor")):
            raise self.fail(f"_rebuild_from_type_v2 with {func!r} is not supported")
        if not isinstance(new_type, (_Marker, Factory)) or getattr(new_type, "name", "") not in (
                "torch.Tensor", "torch.nn.parameter.Parameter"):
            raise self.fail(f"tensor subclass {new_type!r} is not supported by trainkit")
        if state:
            raise self.fail("tensors with extra Python attributes are not supported by trainkit")
        if type(args) is not tuple:
            raise self.fail("_rebuild_from_type_v2 arguments must be a tuple")
        t = func.fn(*args)
        if new_type.name == "torch.nn.parameter.Parameter":
            from trainkit.nn.parameter import Parameter

            return Parameter(t, requires_grad=t.requires_grad)
        return t

    # -------------------------------------------------------------- plain values
    def make_set(self, items=()):
        if not isinstance(items, (list, tuple, set)):
            raise self.fail("set() needs a list")
        self.budget.charge(len(items), "set()")
        return set(items)

    def make_counter(self, items=()):
        if not isinstance(items, (dict, list, tuple)):
            raise self.fail("Counter() needs a mapping or list")
        self.budget.charge(len(items), "Counter()")
        return Counter(items)

    def make_odict(self, items=()):
        if items != () and not isinstance(items, (list, tuple, dict)):
            raise self.fail("OrderedDict() needs a list of pairs")
        self.budget.charge(len(items), "OrderedDict()")
        return OrderedDict(items)

    def make_bytearray(self, data=b"", encoding=None):
        # bytearray(<int>) would allocate that many bytes: only copies of data are allowed.
        if isinstance(data, str) and encoding in ("latin1", "latin-1"):
            data = data.encode("latin-1")
        if not isinstance(data, (bytes, bytearray)):
            raise self.fail("bytearray() is only allowed on bytes")
        self.budget.charge(len(data), "bytearray()")
        return bytearray(data)

    def encode(self, text, encoding="utf-8", errors="strict"):
        # Protocol 2 stores bytes as _codecs.encode(<latin-1 str>, "latin1"); other codecs are refused.
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise self.fail(f"_codecs.encode is only allowed as PyTorch writes bytes (latin1), got {encoding!r}")
        self.budget.charge(len(text), "bytes")
        return text.encode("latin-1")

    def make_complex(self, real=0.0, imag=0.0):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (real, imag)):
            raise self.fail("complex() needs two numbers")
        return complex(real, imag)

    def make_size(self, sizes=()):
        if not isinstance(sizes, (tuple, list)):
            raise self.fail("torch.Size() needs a tuple")
        self.budget.charge(len(sizes), "torch.Size()")
        return Size(sizes)

    def make_device(self, kind, index=None):
        if not isinstance(kind, str) or (index is not None and not isinstance(index, int)):
            raise self.fail("torch.device() needs a string and an optional index")
        return device(kind, index)

    # --------------------------------------------------------------------- table
    def table(self) -> dict[str, Any]:
        """``"module.name" -> object`` for exactly the globals PyTorch's weights_only loader admits."""
        t: dict[str, Any] = {}

        def factory(name: str, fn: Callable, newobj: bool = False) -> None:
            t[name] = Factory(name, fn, newobj)

        def unsupported(name: str, what: str) -> None:
            def refuse(*args, **kwargs):
                raise self.fail(f"{name}: {what} are admitted by PyTorch but not supported by trainkit")
            t[name] = Factory(name, refuse, newobj=True)

        factory("collections.OrderedDict", self.make_odict, newobj=True)
        factory("collections.Counter", self.make_counter, newobj=True)
        factory("builtins.set", self.make_set, newobj=True)
        factory("builtins.bytearray", self.make_bytearray)
        factory("builtins.complex", self.make_complex)
        factory("_codecs.encode", self.encode)
        factory("torch.Size", self.make_size)
        factory("torch.device", self.make_device)
        factory("torch._utils._rebuild_tensor", self.rebuild_v1)
        factory("torch._utils._rebuild_tensor_v2", self.rebuild_v2)
        factory("torch._utils._rebuild_tensor_v3", self.rebuild_v3)
        factory("torch._utils._rebuild_parameter", self.rebuild_parameter)
        factory("torch._utils._rebuild_parameter_with_state", self.rebuild_parameter)
        factory("torch._tensor._rebuild_from_type_v2", self.rebuild_from_type_v2)
        for fn, what in _UNSUPPORTED_REBUILDS.items():
            unsupported(f"torch._utils.{fn}", what)
        unsupported("torch.nn.parameter.Parameter", "Parameters built by NEWOBJ (legacy pickles)")
        factory("torch.serialization._get_layout", lambda name: _Marker(str(name), "layout"))
        t["torch.Tensor"] = _Marker("torch.Tensor", "tensor class")
        for cls in _TENSOR_CLASSES:
            t[f"torch.{cls}"] = _Marker(f"torch.{cls}", "tensor class")
            t[f"torch.cuda.{cls}"] = _Marker(f"torch.cuda.{cls}", "tensor class")
        for cls in _SPARSE_CLASSES:
            t[f"torch.sparse.{cls}"] = _Marker(f"torch.sparse.{cls}", "sparse tensor class")
            t[f"torch.cuda.sparse.{cls}"] = _Marker(f"torch.cuda.sparse.{cls}", "sparse tensor class")
        for cls, dtype_name in _STORAGE_DTYPES.items():
            t[f"torch.{cls}"] = _Marker(f"torch.{cls}", "storage type", dtype_name)
            t[f"torch.cuda.{cls}"] = _Marker(f"torch.cuda.{cls}", "storage type", dtype_name)
        for cls in _UNSUPPORTED_STORAGES:
            t[f"torch.{cls}"] = _Marker(f"torch.{cls}", "storage type", None)
        t["torch.storage.UntypedStorage"] = _Marker("torch.storage.UntypedStorage", "storage type", "uint8")
        t["torch.storage.TypedStorage"] = _Marker("torch.storage.TypedStorage", "storage type", None)
        for name in _TORCH_DTYPES:
            t[f"torch.{name}"] = (_dt.from_numpy_dtype(np.dtype(name)) if name in _NUMPY_DTYPES
                                  else _Marker(f"torch.{name}", "dtype"))
        for name in _QSCHEMES:
            t[f"torch.{name}"] = _Marker(f"torch.{name}", "quantization scheme")
        return t


def load_torch_zip(data: bytes, source: str, map_location: Any = None) -> Any:
    """The object saved in a PyTorch zip checkpoint, with trainkit Tensors/Parameters in place of torch's.

    Raises:
        UnsafePickleError: the pickle uses a global or instruction PyTorch's
            ``weights_only=True`` would refuse, or something trainkit cannot represent.
        SerializationError: the archive is truncated, corrupt, compressed or inconsistent.
    """
    archive = _Archive(data, source)
    if archive.prefix + "byteorder" in archive.members:
        order = bytes(archive.read("byteorder")).decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise SerializationError(f"{source}: byteorder record is {order!r}, expected 'little' or 'big'")
        archive.big_endian = order == "big"
    pickle_bytes = bytes(archive.read("data.pkl"))
    loader = _Loader(archive, map_location)
    obj = Unpickler(pickle_bytes, loader.table(), loader.persistent_load, source).load()
    _refuse_internal_values(obj, source)
    return obj


def _refuse_internal_values(obj: Any, source: str) -> None:
    """Refuse results that still hold a bare storage, tensor class, layout or callable (nothing user-facing)."""
    seen: set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, (_Storage, _Marker, Factory)):
            what = "storage" if isinstance(item, _Storage) else repr(item)
            raise UnsafePickleError(f"{source}: the file holds a bare {what} outside any tensor, which trainkit "
                                    "cannot represent")
        if isinstance(item, (dict, list, tuple, set, frozenset)) and id(item) not in seen:
            seen.add(id(item))  # shared sub-objects are visited once: linear in the pickle's size
            if isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
                stack.extend(getattr(item, "__dict__", {}).values())  # an OrderedDict's _metadata
            else:
                stack.extend(item)
