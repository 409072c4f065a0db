"""Downloads that never leave a partial file looking complete.

A file is streamed into a hidden temporary file in the target folder while its
MD5 is computed; only when the byte count and the checksum are right is it
renamed into place with ``os.replace`` (atomic on one file system). On any
failure (network error, connection cut, wrong checksum, Ctrl-C) the temporary
file is removed and the next mirror is tried. When every mirror fails the
:class:`DataError` names the URLs tried and the file to place by hand.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from trainkit.errors import DataError

__all__ = ["download_file", "md5sum", "default_root"]

_CHUNK = 1 << 20


def default_root(root: str | os.PathLike | None = None) -> Path:
    """Where data sets live: ``root`` if given, else ``$TRAINKIT_DATA``, else ``~/.cache/trainkit/datasets``."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("TRAINKIT_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "trainkit" / "datasets"


def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _progress(total: int | None, name: str, enabled: bool):
    """A rich progress bar on stderr (a no-op object when disabled or not a terminal)."""
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    console = Console(stderr=True)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=True,
                        disable=not (enabled and console.is_terminal))
    task = progress.add_task(name, total=total)
    return progress, task


def _fetch_one(url: str, dest: Path, md5: str | None, timeout: float, progress: bool,
               max_bytes: int | None) -> None:
    """Download ``url`` to ``dest`` via a temporary file; raises OSError/ValueError on failure."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            if max_bytes is not None and expected is not None and expected > max_bytes:
                raise ValueError(f"server announces {expected} bytes, more than the {max_bytes} expected")
            digest = hashlib.md5(usedforsecurity=False)
            received = 0
            bar, task = _progress(expected, dest.name, progress)
            with bar:
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    received += len(chunk)
                    if max_bytes is not None and received > max_bytes:
                        raise ValueError(f"more than the {max_bytes} bytes expected")
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(task, advance=len(chunk))
            if expected is not None and received != expected:
                raise ValueError(f"connection closed after {received} of {expected} bytes")
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise ValueError(f"MD5 {digest.hexdigest()} does not match the published {md5}")
        os.replace(tmp, dest)
    finally:
        # Whatever happened (including KeyboardInterrupt), no partial file is left behind.
        if tmp.exists():
            tmp.unlink()


def download_file(urls: str | Sequence[str], dest: str | os.PathLike, md5: str | None = None, *,
                  timeout: float = 30.0, progress: bool = True, max_bytes: int | None = None) -> Path:
    """Download the first working mirror of ``urls`` to ``dest`` and check its MD5.

    Args:
        urls: one URL or mirrors tried in order (each failure moves to the next).
        dest: final path; its folder is created. An existing ``dest`` is kept as is.
        md5: published checksum (hex), or None to skip the check.
        timeout: socket timeout in seconds per connection/read.
        progress: show a rich progress bar when stderr is a terminal.
        max_bytes: refuse a download larger than this.

    Raises:
        DataError: every mirror failed; the message lists why and says where to
            place the file by hand.
    """
    dest = Path(dest)
    if isinstance(urls, str):
        urls = [urls]
    if dest.is_file():
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data folder {dest.parent}: {exc.strerror or exc}") from None
    failures = []
    for url in urls:
        try:
            print(f"Downloading {url} -> {dest}", file=sys.stderr)
            _fetch_one(url, dest, md5, timeout, progress, max_bytes)
            return dest
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            failures.append(f"  {url}: {reason}")
    tried = "\n".join(failures)
    raise DataError(
        f"could not download {dest.name}:\n{tried}\n"
        f"Without network access, download it elsewhere and place it at {dest}"
        + (f" (MD5 {md5})" if md5 else "")
    )
