"""The exporter's own error: a model (or a layer of it) that cannot be written as ONNX."""
from __future__ import annotations

from ..errors import TrainkitError

__all__ = ["OnnxExportError", "require_onnx"]


class OnnxExportError(TrainkitError):
    """A model, layer or op with no ONNX mapping, or export arguments that do not fit (exit code 2)."""


def require_onnx(runtime: bool = False):
    """Import ``onnx`` (and ``onnxruntime`` when ``runtime``), or say which extra installs them."""
    try:
        import onnx
        if runtime:
            import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise OnnxExportError(f"ONNX export needs the onnx and onnxruntime packages ({exc.name} is missing): "
                              "pip install 'trainkit[onnx]'") from None
    return onnx
