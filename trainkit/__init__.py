"""trainkit: a YAML-driven training tool on its own numpy autograd engine, with PyTorch's API.

The top-level namespace mirrors ``torch`` for the subset trainkit covers, so
``import trainkit as torch`` runs PyTorch example code.
"""
__version__ = "0.1.0"

from . import rankenv as _rankenv

_rankenv.apply()  # before numpy loads: an MPI rank sharing its machine gets cores/ranks BLAS threads

from . import blasenv as _blasenv

_blasenv.apply()  # before numpy loads: OpenBLAS's idle threads sleep instead of spinning for ~0.1 s

from .autograd.allocator import tune_allocator as _tune_allocator

_tune_allocator()  # see trainkit/autograd/allocator.py: stable reuse of per-step temporaries

from .autograd.creation import (  # noqa: F401
    arange, as_tensor, empty, from_numpy, full, full_like, linspace, ones, ones_like, rand, rand_like, randint,
    randn, randn_like, randperm, tensor, zeros, zeros_like,
)
from .autograd.dtypes import (  # noqa: F401
    bool_ as bool, double, float, float16, float32, float64, get_default_dtype, int, int32, int64, long,
    set_default_dtype, uint8,
)
from .autograd.function import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .autograd.functional import (  # noqa: F401
    abs, allclose, argmax, argmin, cat, clamp, clip, equal, exp, flatten, is_tensor, log, log_softmax, logsumexp,
    matmul, max, maximum, mean, min, minimum, numel, permute, pow, relu, reshape, sigmoid, softmax, sqrt, squeeze,
    stack, sum, tanh, transpose, unsqueeze, var, where,
)
from .autograd.random import get_rng_state, manual_seed, set_rng_state  # noqa: F401
# --- ops with PyTorch's names (issue 13): math, reductions, comparisons, indexing, sorting, layout, linalg, sampling
from .autograd import return_types  # noqa: F401
from .autograd.ops.compare import (  # noqa: F401
    eq, ge, greater, greater_equal, gt, isclose, isfinite, isinf, isnan, isneginf, isposinf, le, less, less_equal,
    logical_and, logical_not, logical_or, logical_xor, lt, ne, not_equal,
)
from .autograd.ops.einsum import einsum  # noqa: F401
from .autograd.ops.index import (  # noqa: F401
    argwhere, gather, index_select, masked_fill, masked_select, nonzero, scatter, scatter_add, take_along_dim,
)
from .autograd.ops.layout import (  # noqa: F401
    chunk, flip, fliplr, flipud, moveaxis, movedim, narrow, repeat_interleave, roll, select, split, tensor_split,
    unbind,
)
from .autograd.ops.linalg import (  # noqa: F401
    addmm, baddbmm, bmm, diag, diag_embed, diagonal, dot, eye, ger, mm, norm, outer, trace, tril, triu,
)
from .autograd.ops.math import (  # noqa: F401
    acos, arctan2, asin, atan, atan2, ceil, cos, cosh, erf, expm1, fix, floor, frac, lerp, log1p, log2, log10, neg,
    negative,
    reciprocal, round, rsqrt, sign, sin, sinh, square, tan, trunc,
)
from .autograd.ops.reduce import all, amax, amin, any, std  # noqa: F401
from .autograd.ops.scan import cumprod, cumsum, prod  # noqa: F401
from .autograd.ops.sort import argsort, kthvalue, median, msort, sort, topk, unique  # noqa: F401
from .autograd.sampling import bernoulli, multinomial, normal, poisson  # noqa: F401
from .autograd.arith import add, concat, concatenate, div, floor_divide, mul, sub, true_divide  # noqa: F401
# --- end of the issue-13 ops block
from .autograd.legacy import (  # noqa: F401
    BoolTensor, ByteTensor, DoubleTensor, FloatTensor, HalfTensor, IntTensor, LongTensor,
)
from .autograd.threads import get_num_threads, set_num_threads  # noqa: F401
from .autograd.tensor import Tensor  # noqa: F401

# The declaration registry sits just above the engine (it imports nothing else of trainkit).
from .registry import register_layer  # noqa: E402,F401

# ---- PyTorch API surface (compat): devices, dtypes, generators, modes, printing, lazy submodules ----------------
from . import accelerator, backends, cuda  # noqa: E402,F401  (tiny modules: CPU-only answers)
from .autograd import random as _random  # noqa: E402
from .autograd.device import device, get_default_device, set_default_device  # noqa: E402,F401
from .autograd.dtypes import (  # noqa: E402,F401
    cdouble, cfloat, complex64, complex128, dtype, finfo, half, iinfo, int8, int16, short, uint16, uint32, uint64,
)
from .autograd.inference import inference_mode, is_inference_mode_enabled  # noqa: E402,F401
from .autograd.printing import set_printoptions  # noqa: E402,F401
from .autograd.random import Generator, initial_seed, seed  # noqa: E402,F401
from .autograd.size import Size  # noqa: E402,F401
from .backends import (  # noqa: E402,F401
    are_deterministic_algorithms_enabled, get_float32_matmul_precision, set_float32_matmul_precision,
    use_deterministic_algorithms,
)

#: The global generator (``torch.default_generator``); ``manual_seed`` reseeds it in place.
default_generator = _random.default_generator()

# Loaded on first use, so that ``import trainkit`` stays fast and never imports the
# config stage: ``trainkit.nn`` etc. behave as attributes, as after ``import torch``.
_LAZY_MODULES = {
    "nn": "trainkit.nn", "optim": "trainkit.optim", "utils": "trainkit.utils", "data": "trainkit.data",
    "serialization": "trainkit.serialization", "random": "trainkit.autograd.random", "onnx": "trainkit.onnx",
}
_LAZY_ATTRS = {
    "save": ("trainkit.serialization", "save"),
    "load": ("trainkit.serialization", "load"),
    "load_run": ("trainkit.run_api", "load_run"),
}


def __getattr__(name: str):
    import importlib

    if name in _LAZY_MODULES:
        value = importlib.import_module(_LAZY_MODULES[name])
    elif name in _LAZY_ATTRS:
        module, attr = _LAZY_ATTRS[name]
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'trainkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_ATTRS))
