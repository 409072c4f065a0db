"""ONNX export: ``trainkit.onnx.export`` (PyTorch's ``torch.onnx.export``) and what ``trainkit export`` uses.

Every layer declares its export rule with the layer (``@layer(..., onnx=rule)``,
rules of the built-in layers in :mod:`trainkit.nn.onnx_rules`); a model's own
``forward`` between layers is traced down to engine ops, each with a rule in
:mod:`.ops`. Writing protobuf needs the ``onnx`` package (``pip install
'trainkit[onnx]'``); importing this module does not.

A custom layer declares its rule as a method::

    class Scale(nn.Module):
        def forward(self, x):
            return x * self.factor
        def to_onnx(self, g, x):                 # g: trainkit.onnx.builder.OnnxGraph
            return g.op("Mul", x, g.constant(np.float32(self.factor)))

or with ``@trainkit.register_layer("scale", onnx=rule)`` where ``rule(layer, g, *inputs)``.
"""
from .builder import DEFAULT_OPSET, MIN_OPSET, OnnxGraph
from .errors import OnnxExportError
from .export import build_model_proto, export

__all__ = ["export", "build_model_proto", "OnnxExportError", "OnnxGraph", "DEFAULT_OPSET", "MIN_OPSET"]
