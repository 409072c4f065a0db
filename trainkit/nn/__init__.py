"""``trainkit.nn``: layers, losses and containers with PyTorch's names, arguments and parameter layouts.

``import trainkit.nn as nn`` gives ``nn.Module``, ``nn.Linear``, ``nn.Conv2d``,
``nn.CrossEntropyLoss`` ... as in PyTorch; ``nn.functional`` holds the
functional ops, ``nn.init`` the initialisers, ``nn.utils`` gradient clipping.
Each layer and loss class declares its YAML name beside it (see
:mod:`trainkit.registry`); importing this package fills the layer and loss
registries, in the order of the imports below (the order messages list them).
"""
from trainkit.nn import functional, init, utils
from trainkit.nn.linear import Linear
from trainkit.nn.conv import Conv1d, Conv2d
from trainkit.nn.conv_transpose import ConvTranspose2d
from trainkit.nn.pooling import (
    AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, GlobalAvgPool2d, MaxPool1d, MaxPool2d,
)
from trainkit.nn.norm import BatchNorm1d, BatchNorm2d
from trainkit.nn.dropout import Dropout, Dropout1d, Dropout2d, Dropout3d
from trainkit.nn.flatten import Flatten, Identity, Unflatten
from trainkit.nn.activation import (
    GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh, SiLU, ELU, SELU, PReLU, Softplus, Mish, Hardswish,
    Hardtanh,
)
from trainkit.nn.merge import Add, Concat, Mul
# issue 14: sequence, attention and further layers (after the first ones, whose order messages keep)
from trainkit.nn.normalization import GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm
from trainkit.nn.upsampling import Upsample
from trainkit.nn.sparse import Embedding
from trainkit.nn.embedding_position import PositionalEmbedding, TokenPositionEmbedding
from trainkit.nn.vit import ClassToken, PatchEmbedding, SequencePool
from trainkit.nn.rnn import GRU, LSTM, RNN, RNNBase
from trainkit.nn.rnn_cell import GRUCell, LSTMCell, RNNCell, RNNCellBase
from trainkit.nn.attention import MultiheadAttention
from trainkit.nn.transformer import (
    TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
)
from trainkit.nn.transformer_model import Transformer, TransformerDecoderStack, TransformerEncoderStack
from trainkit.nn.loss import (
    CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, BCEWithLogitsLoss, SmoothL1Loss, HuberLoss, BCELoss, KLDivLoss,
    CosineEmbeddingLoss, MarginRankingLoss, TripletMarginLoss,
)
from trainkit.nn.container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from trainkit.nn.graph import GraphModule
from trainkit.nn.module import IncompatibleKeys, Module, StateDictError
from trainkit.nn.parameter import Parameter

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "GraphModule",
    "Identity", "Flatten", "Unflatten", "MaxPool1d", "AvgPool1d", "AdaptiveMaxPool2d", "Upsample", "Dropout1d",
    "Dropout2d", "Dropout3d",
    "Linear", "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "GlobalAvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "Dropout",
    "Embedding", "PositionalEmbedding", "TokenPositionEmbedding", "PatchEmbedding", "ClassToken",
    "SequencePool", "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer",
    "TransformerDecoder", "Transformer", "TransformerEncoderStack", "TransformerDecoderStack",
    "RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell",
    "ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Add", "Mul", "Concat",
    "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss",
    "SiLU", "ELU", "SELU", "PReLU", "Softplus", "Mish", "Hardswish", "Hardtanh",
    "SmoothL1Loss", "HuberLoss", "BCELoss", "KLDivLoss", "CosineEmbeddingLoss", "MarginRankingLoss",
    "TripletMarginLoss",
    "StateDictError", "IncompatibleKeys", "functional", "init", "utils", "modules",
]


def __getattr__(name: str):
    # ``nn.modules`` (torch.nn.modules.<file>.<Class> paths) is a view of this package, loaded on first use.
    if name == "modules":
        import importlib

        return importlib.import_module("trainkit.nn.modules")
    raise AttributeError(f"module 'trainkit.nn' has no attribute {name!r}")
