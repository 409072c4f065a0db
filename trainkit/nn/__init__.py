"""``trainkit.nn``: layers, losses and containers with PyTorch's names, arguments and parameter layouts.

``import trainkit.nn as nn`` gives ``nn.Module``, ``nn.Linear``, ``nn.Conv2d``,
``nn.CrossEntropyLoss`` ... as in PyTorch; ``nn.functional`` holds the
functional ops, ``nn.init`` the initialisers, ``nn.utils`` gradient clipping,
and ``nn.registry`` the YAML names (``LAYERS``, ``LOSSES``).
"""
from trainkit.nn import functional, init, utils
from trainkit.nn.activation import (
    ELU, GELU, SELU, Hardswish, Hardtanh, LeakyReLU, LogSoftmax, Mish, PReLU, ReLU, Sigmoid, SiLU, Softmax, Softplus,
    Tanh,
)
from trainkit.nn.container import ModuleDict, ModuleList, Sequential
from trainkit.nn.conv import Conv2d
from trainkit.nn.dropout import Dropout
from trainkit.nn.flatten import Flatten
from trainkit.nn.linear import Identity, Linear
from trainkit.nn.loss import (
    BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MarginRankingLoss,
    MSELoss, NLLLoss, SmoothL1Loss, TripletMarginLoss,
)
from trainkit.nn.module import IncompatibleKeys, Module, StateDictError
from trainkit.nn.norm import BatchNorm1d, BatchNorm2d
from trainkit.nn.parameter import Parameter
from trainkit.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d
from trainkit.nn.registry import LAYERS, LOSSES

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Identity", "Flatten",
    "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "GlobalAvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "Dropout",
    "ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
    "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss",
    "SiLU", "ELU", "SELU", "PReLU", "Softplus", "Mish", "Hardswish", "Hardtanh",
    "SmoothL1Loss", "HuberLoss", "BCELoss", "KLDivLoss", "CosineEmbeddingLoss", "MarginRankingLoss",
    "TripletMarginLoss",
    "StateDictError", "IncompatibleKeys", "LAYERS", "LOSSES", "functional", "init", "utils",
]
