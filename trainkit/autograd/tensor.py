"""The Tensor: an ndarray with an optional gradient and a link to the op that made it."""
from __future__ import annotations

import builtins

import numpy as np

from . import device as _device
from . import dtypes
from .function import is_grad_enabled, run_backward
from .tensor_methods import TensorMethods
from .printing import format_array as _format_array
from .size import from_shape as _size_of
from .size import Size


def _dims(args) -> tuple:
    """Accept both ``f(2, 3)`` and ``f((2, 3))`` like PyTorch."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


#: PyTorch's message for an in-place change of a leaf that requires grad (methods and ``+=`` alike).
_LEAF_IN_PLACE = "a leaf Variable that requires grad is being used in an in-place operation."


class Tensor(TensorMethods):
    """A multi-dimensional array with reverse-mode automatic differentiation.

    ``Tensor(ndarray)`` wraps the array without copying it; use
    :func:`trainkit.tensor` to build one from Python data with PyTorch's dtype
    rules (Python floats become float32).
    """

    __slots__ = ("_array", "grad", "requires_grad", "grad_fn", "_hooks", "__weakref__")
    __array_priority__ = 1000  # make ndarray (op) Tensor defer to Tensor's reflected op

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data._array
        if isinstance(data, np.ndarray) and dtype is None:
            arr = data
        else:
            arr = dtypes.infer_array(data, dtype)
        self._array = arr
        self.grad = None
        self.grad_fn = None
        self._hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_op(cls, array, op) -> "Tensor":
        t = Tensor.__new__(Tensor)
        t._array = array
        t.grad = None
        t.grad_fn = op
        t._hooks = None
        t.requires_grad = True
        return t

    # ----------------------------------------------------------------- basic attributes
    @property
    def data(self) -> "Tensor":
        """A tensor sharing this one's storage, outside the graph."""
        return Tensor(self._array)

    @data.setter
    def data(self, value) -> None:
        self._array = value._array if isinstance(value, Tensor) else np.asarray(value)

    @property
    def shape(self) -> Size:
        """The shape, as a ``trainkit.Size`` (a tuple)."""
        return _size_of(self._array.shape)

    @property
    def dtype(self):
        """The element type, a ``trainkit.dtype`` (compares equal to the numpy dtype too)."""
        return dtypes.from_numpy_dtype(self._array.dtype)

    @property
    def ndim(self) -> int:
        return self._array.ndim

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def device(self):
        """Always ``device(type='cpu')``: trainkit runs on the CPU."""
        return _device.CPU

    @property
    def is_cuda(self) -> bool:
        """False: there is no CUDA backend."""
        return False

    @property
    def is_cpu(self) -> bool:
        """True: tensors live on the CPU."""
        return True

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None):
        """The shape, or the length of dimension ``dim``."""
        return _size_of(self._array.shape) if dim is None else self._array.shape[dim]

    def dim(self) -> int:
        return self._array.ndim

    def numel(self) -> int:
        return int(self._array.size)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self._array.size != 1:
            raise ValueError(f"a Tensor with {self._array.size} elements cannot be converted to Scalar")
        return self._array.reshape(()).item()

    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shares memory)."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._array

    def tolist(self):
        return self._array.tolist()

    def detach(self) -> "Tensor":
        """A tensor sharing storage with this one, cut from the graph."""
        return Tensor(self._array)

    def clone(self) -> "Tensor":
        from .ops.elementwise import Clone
        return Clone.apply(self)

    def contiguous(self, memory_format=None) -> "Tensor":
        """This tensor when its data is C-contiguous, else a C-contiguous copy (in the graph)."""
        return self if self._array.flags.c_contiguous else self.clone()

    def is_contiguous(self, memory_format=None) -> bool:
        """Whether the data is C-contiguous (row-major without gaps), as torch's default memory format."""
        return bool(self._array.flags.c_contiguous)

    def stride(self, dim=None):
        """Steps in elements between neighbours along each dimension (``dim``: one of them), as torch's."""
        steps = tuple(s // self._array.itemsize for s in self._array.strides)
        return steps if dim is None else steps[dim]

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self._array.dtype.kind not in "fc":
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables.")
        self.requires_grad = bool(requires_grad)
        return self

    # ----------------------------------------------------------------- hooks (autograd/hooks.py)
    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep it)."""
        _hk.retain_grad(self)

    @property
    def retains_grad(self) -> bool:
        """Whether this non-leaf tensor keeps its ``.grad`` (``retain_grad()`` was called)."""
        return _hk.retains_grad(self)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is complete; a returned tensor replaces it.

        Returns a handle whose ``remove()`` unregisters the hook. Several hooks
        run in registration order, each on the previous one's result.
        """
        return _hk.register_tensor_hook(self, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` on this leaf after its ``.grad`` was updated by backward."""
        return _hk.register_post_accumulate_grad_hook(self, hook)
    # -----------------------------------------------------------------

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Compute the gradient of this tensor w.r.t. every graph leaf that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self._array.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = np.ones_like(self._array)
        else:
            g = gradient._array if isinstance(gradient, Tensor) else np.asarray(gradient, dtype=self.dtype)
            if g.shape != self.shape:
                raise RuntimeError(f"Mismatch in shape: grad_output has shape {g.shape} and output has shape {self.shape}")
        run_backward(self, g, retain_graph)

    # ----------------------------------------------------------------- conversion
    def to(self, *args, **kwargs) -> "Tensor":
        """``to(dtype)``, ``to(device)``, ``to(other)``, ``to(device=, dtype=, non_blocking=, copy=)``, as in PyTorch.

        Returns ``self`` when nothing changes (unless ``copy=True``); a dtype
        change is differentiable. Devices other than the CPU raise a RuntimeError.
        """
        dtype, copy = _device.parse_to_args(args, kwargs)
        if dtype is None or dtypes.to_dtype(dtype) == self._array.dtype:
            return self.clone() if copy else self
        from .ops.elementwise import Cast
        return Cast.apply(self, dtype=dtypes.to_dtype(dtype))

    def type(self, dtype) -> "Tensor":
        return self.to(dtype)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(other.dtype)

    def float(self) -> "Tensor":
        return self.to(dtypes.float32)

    def double(self) -> "Tensor":
        return self.to(dtypes.float64)

    def long(self) -> "Tensor":
        return self.to(dtypes.int64)

    def half(self) -> "Tensor":
        return self.to(dtypes.float16)

    def int(self) -> "Tensor":
        return self.to(dtypes.int32)

    def bool(self) -> "Tensor":
        return self.to(dtypes.bool_)

    def cpu(self, memory_format=None) -> "Tensor":
        """``self``: tensors already live on the CPU."""
        return self

    def cuda(self, device=None, non_blocking=False, memory_format=None) -> "Tensor":
        """Always raises: trainkit has no CUDA backend."""
        raise _device.cpu_only_error("cuda" if device is None else device)

    # ----------------------------------------------------------------- python protocol
    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._array.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        return builtins.bool(self._array)

    def __float__(self) -> float:
        return builtins.float(self.item())

    def __int__(self) -> int:
        return builtins.int(self.item())

    def __index__(self) -> int:
        return self._array.__index__()

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = _format_array(self._array)
        extra = ""
        if self._array.dtype not in (dtypes.float32, dtypes.int64, dtypes.bool_):
            extra += f", dtype=trainkit.{self._array.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __format__(self, format_spec: str) -> str:
        # As torch: a one-element 0-d tensor formats like its Python number ('{:+.2f}'.format(loss)).
        if self._array.ndim == 0:
            return self.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return _ew.add(self, other)

    def __radd__(self, other):
        return _ew.add(other, self)

    def __sub__(self, other):
        return _ew.sub(self, other)

    def __rsub__(self, other):
        return _ew.sub(other, self)

    def __mul__(self, other):
        return _ew.mul(self, other)

    def __rmul__(self, other):
        return _ew.mul(other, self)

    def __truediv__(self, other):
        return _ew.div(self, other)

    def __rtruediv__(self, other):
        return _ew.div(other, self)

    def __floordiv__(self, other):
        return Tensor(self._array // _ew.raw(other))

    def __mod__(self, other):
        return Tensor(self._array % _ew.raw(other))

    def __pow__(self, other):
        return _ew.pow(self, other)

    def __rpow__(self, other):
        return _ew.pow(other, self)

    def __neg__(self):
        return _ew.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self.abs()

    def __matmul__(self, other):
        return _mm.matmul(self, other)

    def __rmatmul__(self, other):
        return _mm.matmul(other, self)

    # augmented assignment (``x += y``): in place, as in PyTorch, wherever no gradient is involved, so
    # that ``w -= lr * w.grad`` under no_grad updates the parameter itself and aliases see the change. In
    # the autograd graph, which does not record in-place ops, ``x += h`` is ``x = x + h``: the same values
    # and gradients, only the name rebound. A leaf that requires grad is refused, with torch's message.
    def _inplace_operator(self, other, ufunc, out_of_place):
        if is_grad_enabled():
            if self.requires_grad and self.grad_fn is None:
                raise RuntimeError(_LEAF_IN_PLACE)
            if self.requires_grad or getattr(other, "requires_grad", False):
                y = out_of_place(self, other)
                if y.shape != self.shape:
                    raise RuntimeError(f"in-place {ufunc.__name__}: the result's shape {tuple(y.shape)} is not "
                                       f"the tensor's {tuple(self.shape)}")
                return y if y._array.dtype == self._array.dtype else y.to(self.dtype)  # torch keeps the dtype
        o = _ew.promote(self, other)[1]._array  # the operand in torch's result dtype (its promotion rules)
        try:
            ufunc(self._array, o, out=self._array, casting="same_kind")
        except (TypeError, ValueError) as e:  # numpy's casting or broadcasting refusal: torch's RuntimeError
            raise RuntimeError(f"in-place {ufunc.__name__} on a tensor of shape {tuple(self.shape)} and "
                               f"dtype {self.dtype}: {e}") from None
        return self

    def __iadd__(self, other):
        return self._inplace_operator(other, np.add, Tensor.__add__)

    def __isub__(self, other):
        return self._inplace_operator(other, np.subtract, Tensor.__sub__)

    def __imul__(self, other):
        return self._inplace_operator(other, np.multiply, Tensor.__mul__)

    def __itruediv__(self, other):
        return self._inplace_operator(other, np.true_divide, Tensor.__truediv__)

    def __ipow__(self, other):
        return self._inplace_operator(other, np.power, Tensor.__pow__)

    def __ifloordiv__(self, other):
        return self._inplace_operator(other, np.floor_divide, Tensor.__floordiv__)

    def __imod__(self, other):
        return self._inplace_operator(other, np.remainder, Tensor.__mod__)

    def __iand__(self, other):
        return self._inplace_operator(other, np.bitwise_and, Tensor.__and__)

    def __ior__(self, other):
        return self._inplace_operator(other, np.bitwise_or, Tensor.__or__)

    def __ixor__(self, other):
        return self._inplace_operator(other, np.bitwise_xor, Tensor.__xor__)

    # comparisons give bool tensors outside the graph
    def __eq__(self, other):  # type: ignore[override]
        return Tensor(self._array == _ew.raw(other))

    def __ne__(self, other):  # type: ignore[override]
        return Tensor(self._array != _ew.raw(other))

    def __lt__(self, other):
        return Tensor(self._array < _ew.raw(other))

    def __le__(self, other):
        return Tensor(self._array <= _ew.raw(other))

    def __gt__(self, other):
        return Tensor(self._array > _ew.raw(other))

    def __ge__(self, other):
        return Tensor(self._array >= _ew.raw(other))

    def __invert__(self):
        return Tensor(~self._array)

    def __and__(self, other):
        return Tensor(self._array & _ew.raw(other))

    def __or__(self, other):
        return Tensor(self._array | _ew.raw(other))

    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def equal(self, other) -> bool:
        return self.shape == other.shape and builtins.bool((self._array == other._array).all())

    def add(self, other, alpha=1):
        return self + (other * alpha if alpha != 1 else other)

    def sub(self, other, alpha=1):
        return self - (other * alpha if alpha != 1 else other)

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def pow(self, exponent):
        return self ** exponent

    def matmul(self, other):
        return self @ other

    def mm(self, other):
        return self @ other

    # ----------------------------------------------------------------- in place (data only)
    def _check_inplace(self, name: str, *others) -> None:
        """In-place methods change data only: they are not recorded in the autograd graph. Under grad mode
        they refuse a tensor that requires grad (PyTorch's message for a leaf) and an operand that
        requires grad, whose gradients would otherwise be silently wrong."""
        if not is_grad_enabled():
            return
        if self.requires_grad and self.grad_fn is None:
            raise RuntimeError(_LEAF_IN_PLACE)
        if self.requires_grad or any(getattr(o, "requires_grad", False) for o in others):
            base = name[:-1]
            how = (f"write it out of place (y = y.{base}(...)) or run it" if hasattr(Tensor, base) and base != "copy"
                   else "make a new tensor instead, or run it")
            raise RuntimeError(
                f"{name}() on a tensor that requires grad: trainkit does not record in-place operations in "
                f"the autograd graph, so the gradients would be wrong; {how} under trainkit.no_grad()")

    def add_(self, other, alpha=1):
        self._check_inplace("add_", other)
        o = _ew.raw(other)
        self._array += o if alpha == 1 else o * alpha
        return self

    def sub_(self, other, alpha=1):
        self._check_inplace("sub_", other)
        return self.add_(other, -alpha)

    def mul_(self, other):
        self._check_inplace("mul_", other)
        self._array *= _ew.raw(other)
        return self

    def div_(self, other):
        self._check_inplace("div_", other)
        self._array /= _ew.raw(other)
        return self

    def zero_(self):
        self._check_inplace("zero_")
        self._array[...] = 0
        return self

    def fill_(self, value):
        self._check_inplace("fill_", value)
        self._array[...] = value
        return self

    def copy_(self, src):
        self._check_inplace("copy_", src)
        self._array[...] = _ew.raw(src)
        return self

    def clamp_(self, min=None, max=None):
        self._check_inplace("clamp_", min, max)
        np.clip(self._array, min, max, out=self._array)
        return self

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        from .random import default_generator
        self._check_inplace("uniform_")
        self._array[...] = (generator or default_generator()).uniform(a, b, self.shape)
        return self

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        from .random import default_generator
        self._check_inplace("normal_")
        self._array[...] = (generator or default_generator()).normal(mean, std, self.shape)
        return self

    def __setitem__(self, key, value):
        if is_grad_enabled() and (self.requires_grad or getattr(value, "requires_grad", False)):
            raise RuntimeError(
                "in-place assignment into a tensor that requires grad is not supported"
                if self.requires_grad else
                "in-place assignment of a value that requires grad is not supported: trainkit does not record "
                "it in the autograd graph, so that value's gradient would be lost; build the tensor out of "
                "place (trainkit.cat, trainkit.where) or assign under trainkit.no_grad()")
        self._array[_sh.index_key(key)] = _ew.raw(value)

    # ----------------------------------------------------------------- elementwise methods
    def exp(self):
        return _ew.Exp.apply(_math.floating(self))  # integers promote to float, as in torch

    def log(self):
        return _ew.Log.apply(_math.floating(self))  # integers promote to float, as in torch

    def sqrt(self):
        return _ew.Sqrt.apply(_math.floating(self))  # integers promote to float, as in torch

    def abs(self):
        return _ew.Abs.apply(self)

    def tanh(self):
        return _ew.Tanh.apply(_math.floating(self))  # integers promote to float, as in torch

    def sigmoid(self):
        return _ew.Sigmoid.apply(_math.floating(self))  # integers promote to float, as in torch

    def relu(self):
        return _ew.ReLU.apply(self)

    def neg(self):
        return -self

    def square(self):
        return self * self

    def clamp(self, min=None, max=None):
        return _ew.clamp(self, min, max)

    clip = clamp

    def softmax(self, dim):
        return _rd.Softmax.apply(self, dim=dim)

    def log_softmax(self, dim):
        return _rd.LogSoftmax.apply(self, dim=dim)

    # ----------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        return _rd.Sum.apply(x, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        return _rd.Mean.apply(self, dim=dim, keepdim=keepdim)

    def var(self, dim=None, unbiased=True, keepdim=False, correction=None):
        ddof = (1 if unbiased else 0) if correction is None else correction
        return _rd.Var.apply(self, dim=dim, keepdim=keepdim, ddof=ddof)

    def std(self, dim=None, unbiased=True, keepdim=False, correction=None):
        return _rd.std(self, dim, unbiased, keepdim, correction=correction)

    def max(self, dim=None, keepdim=False):
        return _rd.max_min(self, dim, keepdim, "max")

    def min(self, dim=None, keepdim=False):
        return _rd.max_min(self, dim, keepdim, "min")

    def argmax(self, dim=None, keepdim=False):
        return _rd.argext(self, dim, keepdim, np.argmax)

    def argmin(self, dim=None, keepdim=False):
        return _rd.argext(self, dim, keepdim, np.argmin)

    def logsumexp(self, dim, keepdim=False):
        return _rd.LogSumExp.apply(self, dim=dim, keepdim=keepdim)

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape):
        return _sh.reshape(self, _dims(shape))

    def view(self, *shape):
        return _sh.reshape(self, _dims(shape))

    def view_as(self, other):
        return _sh.reshape(self, other.shape)

    def reshape_as(self, other):
        return _sh.reshape(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return _sh.flatten(self, start_dim, end_dim)

    def permute(self, *dims):
        return _sh.Permute.apply(self, dims=_dims(dims))

    def transpose(self, dim0, dim1):
        return _sh.transpose(self, dim0, dim1)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError("t() expects a tensor with <= 2 dimensions")
        return self.T

    def squeeze(self, dim=None):
        return _sh.squeeze(self, dim)

    def unsqueeze(self, dim):
        return _sh.unsqueeze(self, dim)

    def expand(self, *sizes):
        return _sh.expand(self, _dims(sizes))

    def expand_as(self, other):
        return _sh.expand(self, other.shape)

    def repeat(self, *sizes):
        return _sh.Tile.apply(self, reps=_dims(sizes))

    def __getitem__(self, key):
        return _sh.getitem(self, key)

    # ----------------------------------------------------------------- PyTorch compat: dtype/device queries, new_*
    def is_floating_point(self) -> bool:
        """True for float16/32/64 tensors."""
        return self._array.dtype.kind == "f"

    def is_complex(self) -> bool:
        """True for complex tensors."""
        return self._array.dtype.kind == "c"

    def element_size(self) -> int:
        """Bytes per element."""
        return self._array.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes held by the elements."""
        return int(self._array.nbytes)

    def get_device(self) -> int:
        """-1: the CPU, as PyTorch reports it."""
        return -1

    def _new(self, arr, dtype, device, requires_grad) -> "Tensor":
        _device.check_cpu(device)
        t = Tensor(arr.astype(dtypes.to_dtype(dtype) or self._array.dtype, copy=False))
        return t.requires_grad_(True) if requires_grad else t

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False) -> "Tensor":
        """A new tensor from ``data`` with this tensor's dtype (unless ``dtype`` is given)."""
        data = data._array if isinstance(data, Tensor) else data
        return self._new(np.array(data, copy=True), dtype, device, requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False) -> "Tensor":
        """Zeros of ``size`` with this tensor's dtype."""
        return self._new(np.zeros(_dims(size), self._array.dtype), dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False) -> "Tensor":
        """Ones of ``size`` with this tensor's dtype."""
        return self._new(np.ones(_dims(size), self._array.dtype), dtype, device, requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False) -> "Tensor":
        """``fill_value`` everywhere, with this tensor's dtype."""
        return self._new(np.full(tuple(size), fill_value, self._array.dtype), dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False) -> "Tensor":
        """Uninitialised values of ``size`` with this tensor's dtype."""
        return self._new(np.empty(_dims(size), self._array.dtype), dtype, device, requires_grad)


from . import hooks as _hk  # noqa: E402
from .ops import elementwise as _ew  # noqa: E402  (ops build on Tensor)
from .ops import matmul as _mm  # noqa: E402
from .ops import reduce as _rd  # noqa: E402
from .ops import shape as _sh  # noqa: E402
# the op modules TensorMethods reaches through the ``ops`` package
from .ops import compare as _compare, einsum as _einsum, index as _index, layout as _layout  # noqa: E402,F401
from .ops import linalg as _linalg, math as _math, scan as _scan, sort as _sort  # noqa: E402,F401
