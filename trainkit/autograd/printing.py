"""How tensors print: ``set_printoptions`` with PyTorch's options and defaults."""
from __future__ import annotations

import numpy as np

_PROFILES = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": float("inf"), "edgeitems": 3, "linewidth": 80},
}

#: The current options (read by ``Tensor.__repr__``).
PRINT_OPTS = {**_PROFILES["default"], "sci_mode": None}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None,
                     sci_mode=None) -> None:
    """Set how tensors print, as ``torch.set_printoptions``.

    Args:
        precision: digits after the decimal point (default 4).
        threshold: element count above which a tensor prints summarised (default 1000).
        edgeitems: items shown at each end of a summarised dimension (default 3).
        linewidth: characters per line (default 80).
        profile: ``"default"``, ``"short"`` or ``"full"``: sets the four options above
            (the explicit ones given with it win).
        sci_mode: True forces scientific notation, False forbids it, None chooses.
    """
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"profile must be one of {', '.join(_PROFILES)}, got {profile!r}")
        PRINT_OPTS.update(_PROFILES[profile])
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            PRINT_OPTS[name] = value
    PRINT_OPTS["sci_mode"] = sci_mode


def get_printoptions() -> dict:
    """A copy of the current print options."""
    return dict(PRINT_OPTS)


def format_array(arr: np.ndarray, prefix: str = "tensor(") -> str:
    """The body of a tensor's repr, laid out like PyTorch's (``1.0000`` for fractions, ``1.`` for whole floats)."""
    p = int(PRINT_OPTS["precision"])
    threshold = PRINT_OPTS["threshold"]
    kwargs = {
        "separator": ", ", "prefix": prefix, "precision": p, "edgeitems": int(PRINT_OPTS["edgeitems"]),
        "threshold": np.iinfo(np.int64).max if threshold == float("inf") else int(threshold),
        "max_line_width": int(PRINT_OPTS["linewidth"]),
    }
    if arr.dtype.kind in "fc":
        sci = PRINT_OPTS["sci_mode"]
        if sci is True:
            kwargs["formatter"] = {"float_kind": lambda v: f"{v:.{p}e}"}
        else:
            if sci is False:
                kwargs["suppress_small"] = True
            finite = arr[np.isfinite(arr)] if arr.size <= 100_000 else arr.ravel()[:100_000]
            whole = finite.size > 0 and bool(np.all(finite == np.round(finite)))
            kwargs["floatmode"] = "maxprec_equal" if whole else "fixed"
    return np.array2string(arr, **kwargs)
