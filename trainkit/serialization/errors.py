"""The errors ``trainkit.load`` raises for files it will not read."""
from __future__ import annotations

import pickle

from trainkit.errors import CheckpointError


class SerializationError(CheckpointError, RuntimeError):
    """A file ``trainkit.load`` cannot read: missing, truncated, corrupt, oversized or of an unsupported kind.

    A :class:`~trainkit.errors.CheckpointError` (the CLI reports it with exit
    code 2) and a ``RuntimeError``, the type PyTorch raises for broken files.
    """


class UnsafePickleError(SerializationError, pickle.UnpicklingError):
    """A pickle inside a ``.pt`` file was refused: a global, an instruction or a value that
    PyTorch's ``weights_only=True`` loader would not admit (or that trainkit cannot represent).

    Also a ``pickle.UnpicklingError``, as PyTorch raises; nothing from the file was run.
    """
