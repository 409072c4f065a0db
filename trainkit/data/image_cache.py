"""Image files decoded once into a uint8 array on disk, memory-mapped by every later epoch and run.

:func:`decode_files` turns a list of image files into one uint8 (N, C, H, W)
array (:func:`~trainkit.data.images.decode_image` on each). The array is
written as a plain ``.npy`` file under ``<data cache>/.decoded/`` (the data
cache folder: ``$TRAINKIT_DATA``, else ``~/.cache/trainkit/datasets``), in a
folder named after a key of the files' paths, sizes and modification times and
of the decoding (mode, size, resize policy). A later call with the same files
memory-maps that array instead of opening a single image: epochs gather their
batches from the map (one fancy-index per batch, from the page cache), and a
second run starts without decoding anything. Touching, replacing, adding or
removing an image changes the key, and the next read decodes again (and
removes the superseded copy of that folder).

The copy is built in a hidden temporary folder and renamed into place with
``index.json`` written last, so a killed run never leaves a copy that looks
complete; a copy that does not pass the checks when read (header, sizes,
key) is rebuilt. Files that fail to decode are recorded in the index with
their reason, so a folder with a bad file fails (or skips it) at once on the
next run too. Before the array is allocated, its size is checked against the
free space of the cache folder. ``TRAINKIT_NO_DATA_CACHE=1`` (or
``cache=False``) decodes into memory instead, as does a cache folder that
cannot be written (with a warning).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from trainkit.errors import DataError

from .download import default_root
from .images import BadImage, DataWarning, ImageSpec, decode_image
from .readers import memmap_npy, read_regular

__all__ = ["DecodedImages", "decode_files", "cache_key", "CACHE_VERSION"]

#: Bumped when the decoding changes, so older copies are not reused.
CACHE_VERSION = 1
_INDEX_MAX_BYTES = 512 << 20
_CHUNK = 256  # files decoded per round (bounds the decoded arrays held at once)


@dataclass
class DecodedImages:
    """The pixels of the files that decoded, and why the others did not.

    Attributes:
        pixels: uint8 (n_good, C, H, W), a read-only memory map when it comes from the cache.
        good: indices (into the file list) of the rows of ``pixels``, ascending.
        bad: ``(file index, reason)`` of each file that did not decode.
        cached: True when the pixels were read from an existing copy (nothing decoded).
        folder: the cache folder holding the copy, None without one.
    """

    pixels: np.ndarray
    good: np.ndarray
    bad: list[tuple[int, str]] = field(default_factory=list)
    cached: bool = False
    folder: Path | None = None


def _stat_key(paths: Sequence[Path]) -> tuple[list, dict[int, str]]:
    entries, unreadable = [], {}
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError as exc:
            unreadable[i] = f"cannot be read ({exc.strerror or exc})"
            entries.append([str(p), -1, -1])
            continue
        entries.append([str(p), st.st_size, st.st_mtime_ns])
    return entries, unreadable


def cache_key(paths: Sequence[Path], spec: ImageSpec) -> str:
    """The key a copy of ``paths`` decoded under ``spec`` is stored under (paths, sizes, mtimes, spec)."""
    entries, _ = _stat_key([Path(os.path.abspath(p)) for p in paths])
    return _digest(entries, spec)


def _digest(entries: list, spec: ImageSpec) -> str:
    text = json.dumps({"v": CACHE_VERSION, "spec": [spec.mode, list(spec.size), spec.fit, spec.transpose],
                       "files": entries}, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _use_cache(cache: bool) -> bool:
    return cache and not os.environ.get("TRAINKIT_NO_DATA_CACHE")


def decode_files(paths: Sequence[str | os.PathLike], spec: ImageSpec, *, source: str, cache: bool = True,
                 cache_root: str | os.PathLike | None = None, progress: bool = True) -> DecodedImages:
    """Decode ``paths`` under ``spec``, or map the copy a previous call left.

    Args:
        paths: the image files, in sample order.
        spec: mode, size and resize policy of the samples.
        source: what the files are (the image folder), for the copy's name and messages.
        cache: keep a decoded copy on disk (False: decode into memory every time).
        cache_root: the data cache folder (default: $TRAINKIT_DATA, else ~/.cache/trainkit/datasets).
        progress: a progress bar on a terminal while decoding.
    """
    paths = [Path(os.path.abspath(p)) for p in paths]
    entries, unreadable = _stat_key(paths)
    key = _digest(entries, spec)
    if not _use_cache(cache):
        return _decode(paths, spec, unreadable, None, progress)
    base = default_root(cache_root) / ".decoded"
    family = hashlib.sha256(f"{source}|{spec}".encode("utf-8", "surrogatepass")).hexdigest()[:12]
    folder = base / f"images-{family}-{key[:20]}"
    found = _read_copy(folder, key, len(paths), spec)
    if found is not None:
        return found
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".images-{family}-", suffix=".tmp", dir=base))
    except OSError as exc:
        warnings.warn(f"cannot write the decoded-image cache under {base} ({exc.strerror or exc}); the images "
                      "of " + source + " are decoded into memory on every run", DataWarning, stacklevel=2)
        return _decode(paths, spec, unreadable, None, progress)
    try:
        result = _decode(paths, spec, unreadable, tmp, progress)
        _write_index(tmp, key, spec, len(paths), result)
        try:
            os.rename(tmp, folder)
        except OSError:
            # Another process finished the same copy first: use it.
            shutil.rmtree(tmp, ignore_errors=True)
            found = _read_copy(folder, key, len(paths), spec)
            if found is not None:
                return found
            raise
        _remove_superseded(base, family, folder)
        result.folder = folder
        result.pixels = memmap_npy(folder / "pixels.npy", "u")
        return result
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_superseded(base: Path, family: str, keep: Path) -> None:
    """Older copies of the same folder (same source and spec, other files) are of no further use."""
    for other in base.glob(f"images-{family}-*"):
        if other != keep and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


def _read_copy(folder: Path, key: str, n: int, spec: ImageSpec) -> DecodedImages | None:
    """The copy in ``folder`` if it is complete and matches; None otherwise (then it is rebuilt)."""
    index_path = folder / "index.json"
    if not index_path.is_file():
        return None
    try:
        index = json.loads(read_regular(index_path, _INDEX_MAX_BYTES, "an image cache index"))
        if (not isinstance(index, dict) or index.get("version") != CACHE_VERSION or index.get("key") != key
                or index.get("n") != n):
            raise ValueError("stale index")
        bad = [(int(i), str(r)) for i, r in index["bad"]]
        bad_set = {i for i, _ in bad}
        if any(not 0 <= i < n for i in bad_set) or len(bad_set) != len(bad):
            raise ValueError("bad index entries")
        good = np.array([i for i in range(n) if i not in bad_set], dtype=np.int64)
        pixels = memmap_npy(folder / "pixels.npy", "u")
        if pixels.dtype != np.uint8 or pixels.shape != (len(good),) + spec.shape:
            raise ValueError("pixels do not match the index")
    except (DataError, ValueError, TypeError, KeyError, UnicodeDecodeError):
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return DecodedImages(pixels, good, bad, cached=True, folder=folder)


def _check_space(folder: Path | None, need: int, n: int, spec: ImageSpec) -> None:
    what = f"{n:,} images of {'x'.join(map(str, spec.shape))}"
    if folder is not None:
        free = shutil.disk_usage(folder).free
        if need > free:
            raise DataError(f"decoding {what} takes {need / 2**30:.2f} GiB in the cache folder {folder.parent}, "
                            f"which has {free / 2**30:.2f} GiB free; point TRAINKIT_DATA at a larger disk or use "
                            "smaller images (data.image_size)")
        return
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > total:
        raise DataError(f"decoding {what} takes {need / 2**30:.2f} GiB, more than this machine's "
                        f"{total / 2**30:.2f} GiB of memory; keep the decoded-image cache on (it maps the array "
                        "from disk) or use smaller images (data.image_size)")


def _progress(total: int, enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    progress = Progress(TextColumn("[bold]decoding images"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=console, transient=True,
                        disable=not (enabled and console.is_terminal))
    return progress, progress.add_task("decode", total=total)


def _decode_one(path: Path, spec: ImageSpec):
    try:
        return decode_image(path, spec)
    except BadImage as exc:
        return exc.reason
    except DataError as exc:  # not a regular file, cannot be opened: the message names the path
        return str(exc).removeprefix(f"{path}: ")


def _decode(paths: list[Path], spec: ImageSpec, unreadable: dict[int, str], folder: Path | None,
            progress: bool) -> DecodedImages:
    n = len(paths)
    row = int(np.prod(spec.shape))
    _check_space(folder, n * row, n, spec)
    if folder is not None:
        pixels = np.lib.format.open_memmap(folder / "pixels.npy", mode="w+", dtype=np.uint8,
                                           shape=(n,) + spec.shape)
    else:
        pixels = np.empty((n,) + spec.shape, dtype=np.uint8)
    bad: list[tuple[int, str]] = []
    good: list[int] = []
    workers = max(1, min(8, os.cpu_count() or 1))
    bar, task = _progress(n, progress)
    # Pillow releases the GIL while it decodes, so threads decode in parallel.
    with bar, ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, n, _CHUNK):
            ids = [i for i in range(start, min(n, start + _CHUNK)) if i not in unreadable]
            bad += [(i, unreadable[i]) for i in range(start, min(n, start + _CHUNK)) if i in unreadable]
            for i, out in zip(ids, pool.map(lambda i: _decode_one(paths[i], spec), ids)):
                if isinstance(out, str):
                    bad.append((i, out))
                else:
                    # Compacted as we go: row len(good) holds file i (never ahead of i).
                    pixels[len(good)] = out
                    good.append(i)
            bar.update(task, completed=min(n, start + _CHUNK))
    bad.sort()
    good_arr = np.asarray(good, dtype=np.int64)
    if folder is None:
        return DecodedImages(pixels[:len(good)], good_arr, bad)
    pixels.flush()
    del pixels
    _shrink_npy(folder / "pixels.npy", len(good), n, spec)
    return DecodedImages(np.empty(0), good_arr, bad)


def _shrink_npy(path: Path, kept: int, allocated: int, spec: ImageSpec) -> None:
    """Rewrite the header of a .npy of ``allocated`` rows for its first ``kept`` rows and cut the rest.

    The new header is padded to the old header's length, so the data stays where it is.
    """
    if kept == allocated:
        return
    with open(path, "r+b") as f:
        head = f.read(10)
        hlen = 10 + int.from_bytes(head[8:10], "little")
        text = repr({"descr": "|u1", "fortran_order": False, "shape": (kept,) + spec.shape})
        body = (text + " " * (hlen - 10 - len(text) - 1) + "\n").encode("latin1")
        f.seek(10)
        f.write(body)
        f.truncate(hlen + kept * int(np.prod(spec.shape)))


def _write_index(folder: Path, key: str, spec: ImageSpec, n: int, result: DecodedImages) -> None:
    index = {"version": CACHE_VERSION, "key": key, "n": n, "shape": list(spec.shape),
             "bad": [[i, r] for i, r in result.bad]}
    path = folder / "index.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(index, f)
        f.flush()
        os.fsync(f.fileno())
