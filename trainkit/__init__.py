"""trainkit: a YAML-driven training tool on its own numpy autograd engine, with PyTorch's API.

The top-level namespace mirrors ``torch`` for the subset trainkit covers, so
``import trainkit as torch`` runs PyTorch example code.
"""
__version__ = "0.1.0"

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
from .autograd.threads import get_num_threads, set_num_threads  # noqa: F401
from .autograd.tensor import Tensor  # noqa: F401

# (imported last: the config package builds on the engine above)
from .config.custom import register_layer  # noqa: E402,F401
