"""Optional dependencies (the ``pip install 'trainkit[EXTRA]'`` extras) and the message when one is missing."""
from __future__ import annotations

import importlib

from ..errors import TrainkitError

__all__ = ["MissingExtra", "require"]


class MissingExtra(TrainkitError):
    """A feature needs an optional package that is not installed (exit code 2, naming the extra)."""


def require(module: str, extra: str, feature: str):
    """Import ``module`` for ``feature``, or raise :class:`MissingExtra` saying how to install it.

    Args:
        module: the import name (``tensorboardX``).
        extra: trainkit's extra that installs it (``tensorboard``).
        feature: what needs it, for the message (``train.tensorboard``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(f"{feature} needs the {module} package ({exc}); install it with "
                           f"pip install 'trainkit[{extra}]'") from None
