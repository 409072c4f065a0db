"""Readers for untrusted data files: regular files only, tar archives, gzip, IDX, .npy and .npz.

Each reader assumes the file may be hostile and turns every way it can be bad
into a :class:`DataError` naming the file. The rule behind them: **every size a
file claims is checked against what the file can hold before anything of that
size is allocated.**

* data are read only from regular files (:func:`open_regular`): a FIFO, a
  directory, a device or a /proc or /sys pseudo-file is refused by its path,
  and opening never blocks (``O_NONBLOCK``), so a FIFO cannot hang a run;
* pickles go through :mod:`trainkit.data.pickles` (nothing runs, no claimed
  array size is trusted);
* tar members are read in place with ``extractfile`` (never extracted to
  disk); a member with an absolute or ``..`` name, a link, a device, a member
  larger than its format allows, or too many members stops the read;
* gzip streams are read only up to the size the format allows (plus one byte
  to notice a longer stream), so a gzip bomb stops early, and a size claimed
  inside one must fit in what its compressed bytes can inflate to;
* IDX headers (magic number, dimensions) are checked against the file size;
* .npy headers (dtype, shape, order) are parsed here, never by ``np.load``,
  and ``prod(shape) * itemsize`` must equal the bytes the file (or .npz
  member) holds; object dtypes are refused, so nothing is unpickled.
"""
from __future__ import annotations

import ast
import gzip
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator

import numpy as np

from trainkit.errors import DataError

from .pickles import RestrictedUnpickler, load_pickle

__all__ = ["RestrictedUnpickler", "load_pickle", "open_regular", "read_regular", "file_size", "iter_tar", "read_idx",
           "read_npy", "read_npz", "memmap_npy", "read_idx_zip", "extract_tar", "IDX_IMAGES", "IDX_LABELS"]

try:
    import fcntl
except ImportError:  # Windows: no FIFOs to guard against, and no O_NONBLOCK to clear
    fcntl = None

IDX_IMAGES = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS = 2049  # 0x00000801: unsigned bytes, 1 dimension

# The archive formats we read are all below 200 MB unpacked (CIFAR-100 python
# train: 155 MB); anything far beyond is not one of them.
MAX_ARCHIVE_BYTES = 1 << 30
MAX_ARCHIVE_MEMBERS = 1000
MAX_NPZ_BYTES = 8 << 30
MAX_NPZ_MEMBERS = 256
# Deflate cannot inflate by more than 1032:1 (zlib's technical notes); a gzip or
# zip member claiming more than this from its compressed size is lying.
DEFLATE_MAX_RATIO = 1032
_NPY_MAX_HEADER = 10_000  # numpy's own limit for np.load
_NPY_KINDS = "biuf"       # bool, integers, floats: what data sets hold
_PSEUDO_ROOTS = ("/proc/", "/sys/")


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _refuse_kind(path: Path, mode: int) -> DataError:
    return DataError(f"{path}: is {_file_kind(mode)}, not a regular file; data are read only from regular files")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular data file; DataError naming it otherwise.

    The path is checked with ``stat`` before it is opened (opening a device can
    have effects), then opened with ``O_NONBLOCK`` (a FIFO swapped in meanwhile
    cannot block) and checked again with ``fstat`` on what was opened. Files under
    /proc and /sys are refused: they report a size of 0 or 4096 whatever they hold.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise _refuse_kind(path, mode)
    real = os.path.realpath(path)
    if real.startswith(_PSEUDO_ROOTS):
        raise DataError(f"{path}: is a kernel pseudo-file ({real}), not a data file")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse_kind(path, st.st_mode)
        if fcntl is not None:  # a regular file: reads should block as usual (some FUSE file systems care)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_size(f: BinaryIO) -> int:
    """Size in bytes of an open file (what it holds now)."""
    return os.fstat(f.fileno()).st_size


def read_regular(path: str | os.PathLike, max_bytes: int, what: str = "this file") -> bytes:
    """All bytes of regular file ``path``, refused before reading if larger than ``max_bytes``."""
    with open_regular(path) as f:
        size = file_size(f)
        if size > max_bytes:
            raise DataError(f"{path}: {size:,} bytes, more than the {max_bytes:,} {what} can have")
        try:
            data = f.read(size + 1)
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) != size:
        raise DataError(f"{path}: changed size while being read ({size:,} bytes, then {len(data):,})")
    return data


def _safe_member_name(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts and "\\" not in name and name.strip() != ""


try:  # ISA-L's errors for corrupt gzip streams, when the accelerator is installed
    from isal.igzip_lib import IsalError as _IsalError
except ImportError:
    _IsalError = zlib.error


def _tar_stream(raw) -> tarfile.TarFile:
    """A streaming tar reader; gzip goes through ISA-L's igzip when installed.

    Decompression is most of the time it takes to load CIFAR from its archive:
    igzip inflates the 163 MB CIFAR-10 archive in 0.78 s where zlib takes 1.39 s
    (measured here), which brings a first load plus one data epoch under 2 s.
    """
    head = raw.read(2)
    raw.seek(0)
    if head == b"\x1f\x8b":
        try:
            from isal import igzip
        except ImportError:  # optional accelerator: stdlib zlib below
            pass
        else:
            return tarfile.open(fileobj=igzip.IGzipFile(fileobj=raw, mode="rb"), mode="r|", bufsize=1 << 20)
    return tarfile.open(fileobj=raw, mode="r|*", bufsize=1 << 20)


def _tar_members(path: Path, limits: Callable[[str], int | None], max_total: int):
    """``(name, member, tarfile)`` for each wanted member of archive ``path``, after the safety checks."""
    total = 0
    with open_regular(path) as raw, _tar_stream(raw) as tf:
        for count, member in enumerate(tf, 1):
            name = member.name
            if count > MAX_ARCHIVE_MEMBERS:
                raise DataError(f"{path}: more than {MAX_ARCHIVE_MEMBERS} members; not a data set archive")
            if not _safe_member_name(name):
                raise DataError(f"{path}: refused member {name!r}: absolute or '..' path")
            if member.issym() or member.islnk():
                raise DataError(f"{path}: refused member {name!r}: links are not allowed in data archives")
            if member.isdir():
                continue
            if not member.isfile():
                raise DataError(f"{path}: refused member {name!r}: not a regular file")
            total += member.size
            if total > max_total:
                raise DataError(f"{path}: unpacks to more than {max_total} bytes; not a data set archive")
            limit = limits(name[2:] if name.startswith("./") else name)
            if limit is None:
                continue
            if member.size > limit:
                raise DataError(f"{path}: member {name} is {member.size} bytes, more than the "
                                f"{limit} its format allows")
            yield name, member, tf


def iter_tar(path: Path, limits: Callable[[str], int | None],
             max_total: int = MAX_ARCHIVE_BYTES) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, bytes)`` for the members of tar archive ``path`` that ``limits`` wants.

    ``limits(name)`` returns the largest size allowed for a wanted member, or
    None to skip it. The archive is streamed once (gzip, bz2, xz or plain);
    unsafe members (absolute or ``..`` names, links, devices) and oversized
    members raise DataError, as does an archive unpacking to more than ``max_total``.
    """
    try:
        for name, member, tf in _tar_members(path, limits, max_total):
            f = tf.extractfile(member)
            data = f.read(member.size) if f is not None else b""
            if len(data) != member.size:
                raise DataError(f"{path}: member {name} is truncated")
            yield name, data
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, _IsalError, OSError, ValueError) as exc:
        raise DataError(f"{path}: truncated or not a valid tar archive ({exc})") from None


def extract_tar(path: Path, wanted: dict[str, int], dest: Path, max_total: int = MAX_ARCHIVE_BYTES) -> list[Path]:
    """Copy the members ``wanted`` names (archive name -> largest size allowed) into the folder ``dest``.

    Members are streamed to disk in 1 MiB pieces under their base names (never
    a path taken from the archive), each through a hidden temporary file renamed
    into place once complete; every check of :func:`iter_tar` applies. Returns
    the files written; a wanted member the archive lacks is a DataError.
    """
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for name, member, tf in _tar_members(path, lambda n: wanted.get(n), max_total):
            target = dest / PurePosixPath(name).name
            tmp = dest / f".{target.name}.part"
            f = tf.extractfile(member)
            got = 0
            try:
                with open(tmp, "wb") as out:
                    while f is not None:
                        chunk = f.read(1 << 20)
                        if not chunk:
                            break
                        got += len(chunk)
                        out.write(chunk)
                if got != member.size:
                    raise DataError(f"{path}: member {name} is truncated")
                os.replace(tmp, target)
            finally:
                if tmp.exists():
                    tmp.unlink()
            written.append(target)
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, _IsalError, ValueError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: truncated or not a valid tar archive ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot extract into {dest} ({exc.strerror or exc})") from None
    got = {p.name for p in written}
    missing = sorted(n for n in wanted if PurePosixPath(n).name not in got)
    if missing:
        raise DataError(f"{path}: no member {missing[0]} (truncated, or not the expected archive?)")
    return written


def _inflate_bound(compressed: int) -> int:
    """Most bytes ``compressed`` bytes of deflate data can inflate to."""
    return compressed * DEFLATE_MAX_RATIO


#: Largest sample an IDX file may claim (bytes): far above any image set, far below numpy's limits.
MAX_IDX_ITEM = 1 << 28


def read_idx(path: Path, magic: int, max_items: int, item_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an IDX file (optionally .gz) of unsigned bytes and return its array.

    Args:
        path: the file.
        magic: IDX_IMAGES (2051) or IDX_LABELS (2049).
        max_items: most samples allowed (first dimension).
        item_shape: required shape of one sample, e.g. (28, 28); None: any.

    The header's dimensions must fit the format and the file: a plain file must
    hold exactly the bytes they announce, a .gz file's compressed size must be
    able to inflate to them. Only ``header + data + 1`` bytes are ever
    decompressed, so a gzip bomb stops.
    """
    path = Path(path)
    try:
        with open_regular(path) as raw:
            return _read_idx_from(raw, file_size(raw), path.suffix == ".gz", str(path), magic, max_items, item_shape)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt ({exc})") from None


def read_idx_zip(path: Path, member: str, magic: int, max_items: int,
                 item_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read IDX member ``member`` (optionally .gz) of zip archive ``path`` in place, as :func:`read_idx`.

    The member's size as the zip claims it must fit what its compressed bytes
    can inflate to before it is opened (EMNIST ships its IDX files this way).
    """
    source = f"{path}:{member}"
    try:
        with open_regular(path) as raw, zipfile.ZipFile(raw) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise DataError(f"{path}: no member {member} (truncated, or not the expected archive?)") from None
            if info.compress_type == zipfile.ZIP_STORED:
                fits = info.file_size == info.compress_size
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                fits = info.file_size <= _inflate_bound(info.compress_size) + 64
            else:
                raise DataError(f"{source}: compression method {info.compress_type} is not supported")
            if not fits:
                raise DataError(f"{source}: claims {info.file_size:,} bytes but holds {info.compress_size:,} "
                                "compressed bytes, which cannot inflate to that")
            with zf.open(info) as f:
                return _read_idx_from(f, info.file_size, member.endswith(".gz"), source, magic, max_items, item_shape)
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, zlib.error,
            NotImplementedError, RuntimeError) as exc:
        raise DataError(f"{path}: not a valid zip archive, or {member} is corrupt ({exc})") from None


def _read_idx_from(raw, on_disk: int, gz: bool, path: str, magic: int, max_items: int,
                   item_shape: tuple[int, ...] | None) -> np.ndarray:
    """The IDX array in stream ``raw`` of ``on_disk`` bytes (gzip-compressed when ``gz``); ``path`` names it."""
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    f = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
    header = f.read(header_len)
    if len(header) < header_len:
        raise DataError(f"{path}: file too short for an IDX header")
    (got,) = struct.unpack(">I", header[:4])
    if got != magic:
        raise DataError(f"{path}: IDX magic number {got}, expected {magic} "
                        f"({'images' if magic == IDX_IMAGES else 'labels'})")
    dims = struct.unpack(">" + "I" * ndim, header[4:])
    if dims[0] > max_items or (item_shape is not None and tuple(dims[1:]) != tuple(item_shape)):
        raise DataError(f"{path}: IDX dimensions {dims} do not fit the format "
                        f"(at most {max_items} items of {item_shape})")
    item = 1
    for d in dims[1:]:
        item *= d
    size = dims[0] * item
    if not gz and size != on_disk - header_len:
        held = on_disk - header_len
        raise DataError(f"{path}: header says {dims} ({size:,} bytes of data) but the file is "
                        f"{'shorter' if held < size else 'longer'}: it holds {held:,} bytes after the header")
    if gz and size + header_len > _inflate_bound(on_disk):
        raise DataError(f"{path}: header says {dims} ({size:,} bytes of data) but the file is shorter: "
                        f"{on_disk:,} compressed bytes inflate to at most {_inflate_bound(on_disk):,}")
    if item > MAX_IDX_ITEM:
        # even with 0 items, numpy cannot shape an array whose samples exceed its address space
        raise DataError(f"{path}: IDX dimensions {dims} claim {item:,} bytes per sample "
                        f"(at most {MAX_IDX_ITEM:,})")
    data = f.read(size + 1)
    if len(data) != size:
        what = "shorter" if len(data) < size else "longer"
        raise DataError(f"{path}: header says {dims} ({size:,} bytes of data) but the file is {what}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _npy_header(f: BinaryIO, source: str, kinds: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Parse a .npy header from ``f``: (dtype, shape, fortran_order, header length in bytes)."""
    magic = f.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise DataError(f"{source}: not a .npy array (no \\x93NUMPY magic)")
    major = magic[6]
    if major not in (1, 2, 3):
        raise DataError(f"{source}: unknown .npy format version {major}.{magic[7]}")
    width = 2 if major == 1 else 4
    raw_len = f.read(width)
    if len(raw_len) < width:
        raise DataError(f"{source}: truncated .npy header")
    hlen = int.from_bytes(raw_len, "little")
    if hlen > _NPY_MAX_HEADER:
        raise DataError(f"{source}: .npy header of {hlen:,} bytes (numpy writes at most {_NPY_MAX_HEADER:,})")
    text = f.read(hlen)
    if len(text) < hlen:
        raise DataError(f"{source}: truncated .npy header")
    try:
        header = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin1"))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise DataError(f"{source}: unreadable .npy header") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise DataError(f"{source}: a .npy header must hold exactly descr, fortran_order and shape")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str):
        raise DataError(f"{source}: structured dtype {descr!r} is not supported (plain numeric arrays only)")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise DataError(f"{source}: unknown dtype {descr!r}") from None
    if dtype.hasobject:
        raise DataError(f"{source}: object arrays are refused (loading them would unpickle code)")
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize == 0:
        raise DataError(f"{source}: dtype {descr!r} is not supported (numeric arrays only)")
    if not isinstance(fortran, bool):
        raise DataError(f"{source}: fortran_order must be True or False, not {fortran!r}")
    if not isinstance(shape, tuple) or len(shape) > 32 or not all(type(s) is int and s >= 0 for s in shape):
        raise DataError(f"{source}: shape {shape!r} is not a tuple of non-negative integers")
    return dtype, shape, fortran, 8 + width + hlen


def _read_npy_from(f: BinaryIO, held: int, source: str, kinds: str) -> np.ndarray:
    """The array of a .npy stream ``f`` of ``held`` bytes, once its header's claim fits ``held``."""
    dtype, shape, fortran, hlen = _npy_header(f, source, kinds)
    count = 1
    for s in shape:
        count *= s
    need = count * dtype.itemsize
    if need != held - hlen:
        raise DataError(f"{source}: header claims shape {shape} of {dtype} ({need:,} bytes) but holds "
                        f"{max(held - hlen, 0):,} bytes of data")
    # Allocated only now that the size is the file's own; filled in place (writable, one copy).
    buf = np.empty(need, dtype=np.uint8)
    view, got = memoryview(buf), 0
    while got < need:
        n = f.readinto(view[got:got + (16 << 20)])
        if not n:
            raise DataError(f"{source}: truncated: {got:,} of {need:,} bytes of data")
        got += n
    return buf.view(dtype).reshape(shape, order="F" if fortran else "C")


def read_npy(path: str | os.PathLike, kinds: str = _NPY_KINDS) -> np.ndarray:
    """Read a .npy file without ``np.load``: header checked against the file's size, no pickles.

    ``kinds`` are the allowed dtype kinds (default bool, integers and floats).
    """
    try:
        with open_regular(path) as f:
            return _read_npy_from(f, file_size(f), str(path), kinds)
    except DataError:
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not a valid .npy file ({exc})") from None


def memmap_npy(path: str | os.PathLike, kinds: str = _NPY_KINDS) -> np.ndarray:
    """A read-only memory map of a .npy file, its header checked as :func:`read_npy` checks it.

    Nothing of the claimed size is allocated: the header must claim exactly the
    bytes the file holds, and the pages are read from disk (or the page cache)
    only when indexed. The map is made from the file that was checked (no
    second open by name).
    """
    try:
        with open_regular(path) as f:
            held = file_size(f)
            dtype, shape, fortran, hlen = _npy_header(f, str(path), kinds)
            count = 1
            for s in shape:
                count *= s
            if count * dtype.itemsize != held - hlen:
                raise DataError(f"{path}: header claims shape {shape} of {dtype} ({count * dtype.itemsize:,} "
                                f"bytes) but holds {max(held - hlen, 0):,} bytes of data")
            if count == 0:  # mmap cannot map nothing
                return np.empty(shape, dtype=dtype)
            return np.memmap(f, dtype=dtype, mode="r", offset=hlen, shape=shape, order="F" if fortran else "C")
    except DataError:
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not a valid .npy file ({exc})") from None


def read_npz(path: str | os.PathLike, kinds: str = _NPY_KINDS) -> dict[str, np.ndarray]:
    """All arrays of an .npz file (a zip of .npy members), each checked like :func:`read_npy`.

    Before a member is read, its size as the zip claims it must fit what its
    compressed bytes can hold (stored: equal; deflated: at most 1032x), and all
    members together at most ``MAX_NPZ_BYTES``; then its .npy header must
    claim exactly that size.
    """
    try:
        with open_regular(path) as raw, zipfile.ZipFile(raw) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) > MAX_NPZ_MEMBERS:
                raise DataError(f"{path}: {len(infos)} members; an .npz of data arrays has at most {MAX_NPZ_MEMBERS}")
            total = 0
            for info in infos:
                where = f"{path}:{info.filename}"
                if not info.filename.endswith(".npy"):
                    raise DataError(f"{where}: an .npz holds only .npy members")
                if info.compress_type == zipfile.ZIP_STORED:
                    fits = info.file_size == info.compress_size
                elif info.compress_type == zipfile.ZIP_DEFLATED:
                    fits = info.file_size <= _inflate_bound(info.compress_size) + 64
                else:
                    raise DataError(f"{where}: compression method {info.compress_type} is not one numpy writes")
                if not fits:
                    raise DataError(f"{where}: claims {info.file_size:,} bytes but holds {info.compress_size:,} "
                                    "compressed bytes, which cannot inflate to that")
                total += info.file_size
                if total > MAX_NPZ_BYTES:
                    raise DataError(f"{path}: unpacks to more than {MAX_NPZ_BYTES:,} bytes")
            out = {}
            for info in infos:
                with zf.open(info) as member:
                    out[info.filename[:-4]] = _read_npy_from(member, info.file_size, f"{path}:{info.filename}", kinds)
            return out
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError,
            NotImplementedError, RuntimeError, zlib.error) as exc:
        raise DataError(f"{path}: not a valid .npz file ({exc})") from None
