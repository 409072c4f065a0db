"""``diagnostics.jsonl``: one JSON object per epoch, appended before the checkpoint that covers it."""
from __future__ import annotations

import json
import math
from pathlib import Path

from trainkit.errors import RunDirError
from trainkit.utils.atomic import append_line, atomic_write_text, read_lines

__all__ = ["DIAGNOSTICS_JSONL", "read_rows", "append_row", "truncate_after", "plain"]

DIAGNOSTICS_JSONL = "diagnostics.jsonl"


def plain(value):
    """``value`` with NaN/inf floats as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_rows(run_dir) -> list[dict]:
    """The rows of ``RUN/diagnostics.jsonl`` (none if absent; a torn final line is dropped).

    Raises:
        RunDirError: a complete line is not a JSON object with an integer ``epoch``.
    """
    path = Path(run_dir) / DIAGNOSTICS_JSONL
    out = []
    for i, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise RunDirError(f"{path}:{i}: not valid JSON ({exc})") from None
        if not isinstance(row, dict) or not isinstance(row.get("epoch"), int) or not isinstance(row.get("layers"), list):
            raise RunDirError(f"{path}:{i}: expected a JSON object with an integer 'epoch' and a 'layers' list")
        out.append(row)
    return out


def append_row(run_dir, row: dict) -> None:
    """Append one epoch's row (durably: a kill loses at most this line)."""
    append_line(Path(run_dir) / DIAGNOSTICS_JSONL, json.dumps(plain(row), allow_nan=False))


def truncate_after(run_dir, epoch: int) -> None:
    """On resume: keep the rows of epochs up to ``epoch`` (later ones will be written again)."""
    path = Path(run_dir) / DIAGNOSTICS_JSONL
    if not path.exists():
        return
    rows = read_rows(run_dir)
    kept = [r for r in rows if r["epoch"] <= epoch]
    if len(kept) != len(rows) or path.read_bytes()[-1:] not in (b"", b"\n"):
        atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))
