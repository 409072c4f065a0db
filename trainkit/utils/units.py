"""Human-readable counts and byte sizes for tables and pictures."""
from __future__ import annotations


def human_count(n: int | float) -> str:
    """``62006`` -> ``62.0K``; ``2.3e9`` -> ``2.30G``."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}" if n < 10 * size else f"{n / size:.1f}{unit}"
    return str(int(n))


def human_bytes(n: int) -> str:
    """``248024`` -> ``242.2 KiB``."""
    if n >= 1024 ** 6 * 1000:  # astronomic estimates (a config asking for 10**30 features) stay printable
        return f"about 10^{len(str(int(n))) - 1} B"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover
