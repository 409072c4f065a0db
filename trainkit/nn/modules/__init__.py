"""``torch.nn.modules``: trainkit's layer classes under PyTorch's module-file names.

Programs name classes by their full PyTorch path, e.g. in an allowlist for
``torch.load`` (``torch.nn.modules.rnn.LSTM``, ``torch.nn.modules.linear.Linear``).
Here each of those files is a module object holding the same classes as
``trainkit.nn`` (no copies), so those paths resolve; a name trainkit does not
have is absent from its file, as from ``trainkit.nn``. The table below is
PyTorch's layout, not a declaration: each class is declared once, in trainkit.nn.
"""
from __future__ import annotations

import importlib
import sys
import types

import trainkit.nn as _nn

#: PyTorch's file (under torch/nn/modules/) -> the classes it defines that programs refer to.
TORCH_LAYOUT: dict[str, tuple[str, ...]] = {
    "module": ("Module",),
    "linear": ("Identity", "Linear", "Bilinear", "NonDynamicallyQuantizableLinear"),
    "conv": ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d"),
    "activation": ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "GELU", "SiLU", "Mish", "ELU", "SELU", "CELU", "Sigmoid",
                   "Tanh", "Softplus", "Softmax", "LogSoftmax", "Hardswish", "Hardtanh", "MultiheadAttention"),
    "container": ("Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"),
    "dropout": ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout"),
    "batchnorm": ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"),
    "normalization": ("LayerNorm", "GroupNorm", "RMSNorm"),
    "instancenorm": ("InstanceNorm1d", "InstanceNorm2d"),
    "sparse": ("Embedding", "EmbeddingBag"),
    "rnn": ("RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"),
    "transformer": ("Transformer", "TransformerEncoder", "TransformerDecoder", "TransformerEncoderLayer",
                    "TransformerDecoderLayer"),
    "pooling": ("MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"),
    "flatten": ("Flatten", "Unflatten"),
    "upsampling": ("Upsample",),
    "loss": ("L1Loss", "MSELoss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "SmoothL1Loss",
             "HuberLoss", "KLDivLoss", "CosineEmbeddingLoss", "MarginRankingLoss", "TripletMarginLoss"),
}

#: Classes that trainkit.nn does not export but defines in one of its files.
_INTERNAL = {"NonDynamicallyQuantizableLinear": "trainkit.nn.attention"}

__all__ = sorted(TORCH_LAYOUT)


def _find(name: str):
    if hasattr(_nn, name):
        return getattr(_nn, name)
    if name in _INTERNAL:
        try:
            return getattr(importlib.import_module(_INTERNAL[name]), name, None)
        except ImportError:
            return None
    return None


def _file_module(file: str, names: tuple[str, ...]) -> types.ModuleType:
    mod = types.ModuleType(f"{__name__}.{file}", f"torch.nn.modules.{file}: trainkit.nn's classes of that file.")
    for name in names:
        obj = _find(name)
        if obj is not None:
            setattr(mod, name, obj)
    mod.__all__ = [n for n in names if hasattr(mod, n)]
    return mod


for _file, _names in TORCH_LAYOUT.items():
    globals()[_file] = sys.modules[f"{__name__}.{_file}"] = _file_module(_file, _names)
