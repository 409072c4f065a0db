"""The autograd engine: Tensor, graph nodes, user Functions and gradient checking."""
from .function import Function, FunctionCtx, enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .gradcheck import GradcheckError, gradcheck  # noqa: F401
from .tensor import Tensor  # noqa: F401
