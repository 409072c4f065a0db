"""Devices, as ``torch.device``: trainkit computes on the CPU only.

``trainkit.device("cuda")`` can be constructed, as in PyTorch (programs write
``torch.device("cuda" if use_cuda else "cpu")``), but moving a tensor or a
module to anything but the CPU raises a ``RuntimeError`` that says why.
"""
from __future__ import annotations

import re

# Device types PyTorch knows (its error message lists them in this order).
_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga", "maia", "xla",
          "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")
_DEVICE_RE = re.compile(r"^([a-z_]+)(?::(\d+))?$")


def cpu_only_error(target) -> RuntimeError:
    """The error for any attempt to use a device other than the CPU."""
    return RuntimeError(f"device {str(target)!r} is not available: trainkit runs on the CPU only "
                        "(there is no CUDA, MPS or other accelerator backend); use 'cpu'")


class device:
    """A device: ``device("cpu")``, ``device("cpu", 0)``, ``device("cuda:1")``, ``device(other_device)``.

    ``type`` and ``index`` (None when not given) are as in PyTorch; so are
    ``str`` (``"cpu"``, ``"cuda:1"``), ``repr`` (``device(type='cpu')``),
    equality and hashing. Only ``"cpu"`` devices can hold tensors.
    """

    __slots__ = ("_type", "_index")

    def __init__(self, type, index=None):  # noqa: A002 - PyTorch's argument name
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): a device object cannot be combined with an index")
            self._type, self._index = type._type, type._index
            return
        if isinstance(type, int) and not isinstance(type, bool):
            # PyTorch reads a bare ordinal as "the current accelerator", which a CPU build lacks.
            raise RuntimeError("Cannot access accelerator device when none is available.")
        if not isinstance(type, str):
            raise TypeError(f"device() expected a str or a device, got {builtins_type(type).__name__}")
        m = _DEVICE_RE.match(type)
        if m is None:
            raise RuntimeError(f"Invalid device string: {type!r}")
        kind, ordinal = m.group(1), m.group(2)
        if kind not in _TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_TYPES)} device type at start of device string: {type}")
        if ordinal is not None:
            if index is not None:
                raise RuntimeError(f"type (string) must not include an index because index was passed "
                                   f"explicitly: {type}")
            index = int(ordinal)
        if index is not None:
            if not isinstance(index, int) or isinstance(index, bool):
                raise TypeError(f"device(): index must be an int, got {builtins_type(index).__name__}")
            if index < 0:
                raise RuntimeError("Device index must not be negative")
        self._type, self._index = kind, index

    @property
    def type(self) -> str:
        """The device type: ``'cpu'``, ``'cuda'``, ..."""
        return self._type

    @property
    def index(self) -> int | None:
        """The device ordinal, or None when none was given."""
        return self._index

    def __str__(self) -> str:
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __repr__(self) -> str:
        if self._index is None:
            return f"device(type={self._type!r})"
        return f"device(type={self._type!r}, index={self._index})"

    def __eq__(self, other) -> bool:
        # As in PyTorch, a device never equals a string.
        return isinstance(other, device) and (self._type, self._index) == (other._type, other._index)

    def __hash__(self) -> int:
        return hash((self._type, self._index))

    def __reduce__(self):
        return (device, (self._type, self._index))

    # ``with trainkit.device("cpu"):`` sets the default device in PyTorch; the CPU is the only one here.
    def __enter__(self) -> "device":
        check_cpu(self)
        return self

    def __exit__(self, *exc) -> bool:
        return False


builtins_type = type  # ``device.__init__`` has an argument named ``type``

CPU = device("cpu")


def check_cpu(target) -> None:
    """Accept ``None``, ``'cpu'``, ``'cpu:N'`` or a CPU :class:`device`; raise the CPU-only error otherwise."""
    if target is None:
        return
    if isinstance(target, device):
        dev = target
    elif isinstance(target, str):
        try:
            dev = device(target)
        except RuntimeError:
            raise cpu_only_error(target) from None
    else:
        raise TypeError(f"expected a device (str or trainkit.device), got {type(target).__name__}")
    if dev.type != "cpu":
        raise cpu_only_error(dev)


def parse_to_args(args: tuple, kwargs: dict, who: str = "to") -> tuple:
    """Read PyTorch's ``to(...)`` overloads; return ``(dtype or None, copy)``.

    Accepted, as in PyTorch: ``to(dtype)``, ``to(device)``, ``to(device, dtype)``,
    ``to(other_tensor)``, and the keywords ``device``, ``dtype``,
    ``non_blocking`` and ``copy`` (``memory_format`` is accepted; every array
    is laid out row-major). Devices other than the CPU raise the CPU-only error.
    """
    kwargs = dict(kwargs)
    dtype = kwargs.pop("dtype", None)
    check_cpu(kwargs.pop("device", None))
    copy = bool(kwargs.pop("copy", False))
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"{who}() got unexpected keyword argument(s) {sorted(kwargs)}")
    positional = list(args)
    # Positional non_blocking/copy flags follow the dtype/device in PyTorch's signatures.
    while positional and isinstance(positional[-1], bool):
        positional.pop()
    for a in positional:
        if a is None:
            continue
        if isinstance(a, (str, device)):
            check_cpu(a)
        elif hasattr(a, "_array") and hasattr(a, "grad_fn"):  # a Tensor: take its dtype (and device, the CPU)
            dtype = a._array.dtype
        else:
            dtype = a
    return dtype, copy


def get_default_device() -> device:
    """The device new tensors are made on: always the CPU."""
    return CPU


def set_default_device(target) -> None:
    """Accept ``None``/``"cpu"`` (the only device); any other device raises the CPU-only error."""
    check_cpu(target)
