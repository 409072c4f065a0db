"""Random number generators: ``Generator`` objects and the global one behind ``trainkit.manual_seed``.

Everything random in the engine and in nn (initialisation, dropout, ``rand``)
draws from one global generator, so ``manual_seed(n)`` makes a program
reproducible, and its state can be saved in a checkpoint as JSON.

:class:`Generator` is PyTorch's ``torch.Generator`` (``manual_seed``, ``seed``,
``initial_seed``, ``get_state``/``set_state``) built as a subclass of
``numpy.random.Generator`` on PCG64: every function taking ``generator=``
(``rand``, ``randn``, ``randint``, ``randperm``, samplers, ``random_split``,
``DataLoader``) draws from it directly with numpy's methods. Streams are
reproducible within trainkit but are not PyTorch's bit-for-bit (different
algorithms).
"""
from __future__ import annotations

import json
import secrets

import numpy as np

#: ``torch.Generator()``'s default seed, used for new generators here too.
DEFAULT_SEED = 67280421310721
_SEED_SPAN = 1 << 64


def _normalise_seed(seed) -> int:
    """PyTorch's seed rule: any integer in [-2**63, 2**64); negatives wrap to unsigned 64 bits."""
    try:
        value = int(seed)
    except (TypeError, ValueError):
        raise TypeError(f"manual_seed expected an int, got {type(seed).__name__}") from None
    if isinstance(seed, float) and value != seed:
        raise TypeError(f"manual_seed expected an int, got the float {seed}")
    if not -(1 << 63) <= value < _SEED_SPAN:
        raise RuntimeError(f"Overflow when unpacking long: seed {value} does not fit in 64 bits")
    return value % _SEED_SPAN


class Generator(np.random.Generator):
    """A random number generator, as ``torch.Generator``: ``Generator().manual_seed(42)``.

    Args:
        device: only ``"cpu"`` (the default) is available.

    It is also a ``numpy.random.Generator`` (PCG64), so numpy code can draw from it.
    """

    def __init__(self, device="cpu"):
        from .device import check_cpu

        check_cpu(device)
        super().__init__(np.random.PCG64(DEFAULT_SEED))
        self._initial_seed = DEFAULT_SEED

    @property
    def device(self):
        """The device the generator draws for: always the CPU."""
        from .device import CPU

        return CPU

    def manual_seed(self, seed) -> "Generator":
        """Reset the generator to the stream of ``seed``; returns the generator (for chaining)."""
        value = _normalise_seed(seed)
        self.bit_generator.state = np.random.PCG64(value).state
        self._initial_seed = value
        return self

    def seed(self) -> int:
        """Reseed from fresh OS entropy and return the new seed (not reproducible)."""
        value = secrets.randbits(64)
        self.manual_seed(value)
        return value

    def initial_seed(self) -> int:
        """The seed last set with :meth:`manual_seed` or :meth:`seed` (or the default)."""
        return self._initial_seed

    def get_state(self):
        """The full state as a uint8 Tensor (JSON of the PCG64 state), for :meth:`set_state`."""
        from .tensor import Tensor

        text = json.dumps({"bit_generator": "PCG64", "state": self.bit_generator.state,
                           "initial_seed": self._initial_seed}, sort_keys=True)
        return Tensor(np.frombuffer(text.encode("ascii"), dtype=np.uint8).copy())

    def set_state(self, new_state) -> "Generator":
        """Restore a state returned by :meth:`get_state` (of any trainkit Generator)."""
        arr = getattr(new_state, "_array", new_state)
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 1:
            raise TypeError("set_state expects the uint8 tensor returned by get_state()")
        try:
            payload = json.loads(arr.tobytes().decode("ascii"))
            probe = np.random.PCG64()
            probe.state = payload["state"]  # validates before anything changes
            seed = _normalise_seed(payload["initial_seed"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise RuntimeError(f"set_state: not a generator state ({exc})") from None
        self.bit_generator.state = probe.state
        self._initial_seed = seed
        return self

    def __reduce__(self):
        # deepcopy/pickle keep the class, the stream position and the initial seed.
        return (_rebuild_generator, (self.bit_generator.state, self._initial_seed))

    def __repr__(self) -> str:
        return f"<trainkit.Generator object (initial_seed={self._initial_seed})>"

    __str__ = __repr__


def _rebuild_generator(state: dict, initial_seed: int) -> Generator:
    g = Generator()
    g.bit_generator.state = state
    g._initial_seed = initial_seed
    return g


# The global generator keeps its historical start (seed 0) so that programs that
# never call manual_seed draw the same numbers as before.
_generator = Generator().manual_seed(0)


def manual_seed(seed) -> Generator:
    """Reseed the global generator (like ``torch.manual_seed``) and return it."""
    return _generator.manual_seed(seed)


def seed() -> int:
    """Seed the global generator from OS entropy and return that seed (``torch.seed``)."""
    return _generator.seed()


def initial_seed() -> int:
    """The seed the global generator was last seeded with (``torch.initial_seed``)."""
    return _generator.initial_seed()


def default_generator() -> Generator:
    """The global generator that initialisation, dropout and ``rand``/``randn`` draw from."""
    return _generator


def resolve(generator) -> np.random.Generator:
    """The generator to draw from: ``generator`` itself, or the global one for ``None``."""
    if generator is None:
        return _generator
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a trainkit.Generator, got {type(generator).__name__}")
    return generator


def get_rng_state() -> dict:
    """The global generator's state as a JSON-serialisable dict."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state


# -- data parallelism: a rank's share of a global batch ------------------------------------------
# A data-parallel rank (trainkit.distributed) runs the model on rows [start, stop) of a global
# batch of ``total`` rows. Inside ``batch_share`` the random draws made per batch row (dropout
# masks) are drawn for the whole global batch and sliced, so every rank's generator advances as a
# single process's does and the rank's mask is the one a single process gives those rows: results
# and checkpoints do not depend on the number of ranks.
_share: tuple[int, int, int] | None = None


class batch_share:
    """Context manager: draws made for ``stop - start`` batch rows are those of rows
    ``[start, stop)`` of a ``total``-row batch (see :func:`uniform_for_batch`)."""

    def __init__(self, total: int, start: int, stop: int):
        if not 0 <= start <= stop <= total:
            raise ValueError(f"batch_share: rows [{start}, {stop}) are not inside a batch of {total}")
        self.share = (int(total), int(start), int(stop))

    def __enter__(self):
        global _share
        self._prev, _share = _share, self.share
        return self

    def __exit__(self, *exc):
        global _share
        _share = self._prev
        return False


def uniform_for_batch(rng: np.random.Generator, shape: tuple, dtype=np.float32) -> np.ndarray:
    """``rng.random(shape)``; inside :class:`batch_share`, when ``shape[0]`` is the share's row
    count, the rows of the share taken from one draw for the whole batch."""
    share = _share
    if share is not None and len(shape) and shape[0] == share[2] - share[1] and share[0] != shape[0]:
        total, start, stop = share
        return rng.random((total,) + tuple(shape[1:]), dtype=dtype)[start:stop]
    return rng.random(shape, dtype=dtype)
