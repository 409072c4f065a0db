"""The benchmark's networks, each written once against PyTorch's ``nn`` API.

Every builder takes the ``nn`` namespace of the library to build with
(``trainkit.nn`` or ``torch.nn``), so the same code gives the two models the
benchmark compares; the residual nets are ``nn.Module`` subclasses defined
inside the builder for that reason.
"""
from __future__ import annotations


def lenet(nn):
    """The cifar_cnn LeNet (62K parameters)."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def mlp(nn):
    """The 3072-512-256-10 MLP (flattens CIFAR-shaped input)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(3072, 512), nn.ReLU(),
        nn.Linear(512, 256), nn.ReLU(),
        nn.Linear(256, 10),
    )


def _conv_bn(nn, cin, cout, k=3, stride=1):
    """A bias-free conv (padding k//2) followed by batch norm."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout))


def _basic_block(nn):
    """The class of a ResNet basic block for library ``nn`` (two 3x3 conv-bn, shortcut, ReLU)."""

    class BasicBlock(nn.Module):
        """conv-bn-relu-conv-bn plus the input (or its strided 1x1 conv-bn projection), then ReLU."""

        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.c1 = _conv_bn(nn, cin, cout, 3, stride)
            self.act = nn.ReLU()
            self.c2 = _conv_bn(nn, cout, cout, 3)
            self.short = _conv_bn(nn, cin, cout, 1, stride) if (stride != 1 or cin != cout) else None
            self.out = nn.ReLU()

        def forward(self, x):
            y = self.c2(self.act(self.c1(x)))
            return self.out(y + (x if self.short is None else self.short(x)))

    return BasicBlock


def cifar_resnet(nn):
    """The network of configs/cifar_resnet.yaml (20K parameters, 2.5M multiply-adds per image).

    A 16-channel stem and 2x2 max pool (32 -> 16), one 16-channel block, one
    32-channel block halving the resolution (strided 1x1 projection), global
    average pooling and a linear head.
    """
    block = _basic_block(nn)
    return nn.Sequential(
        _conv_bn(nn, 3, 16), nn.ReLU(), nn.MaxPool2d(2),
        block(16, 16), block(16, 32, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


def _cifar_resnet_depth(nn, blocks: int):
    """He et al.'s CIFAR ResNet-(6*blocks+2): widths 16-32-64 at 32, 16, 8 pixels (projection shortcuts)."""
    block = _basic_block(nn)
    layers = [_conv_bn(nn, 3, 16), nn.ReLU()]
    cin = 16
    for width, stride in ((16, 1), (32, 2), (64, 2)):
        for b in range(blocks):
            layers.append(block(cin, width, stride if b == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def resnet8(nn):
    """CIFAR ResNet-8 (one block per stage; 78K parameters, 12.5M multiply-adds per image)."""
    return _cifar_resnet_depth(nn, 1)


def resnet20(nn):
    """CIFAR ResNet-20 (three blocks per stage; 0.27M parameters, 41M multiply-adds per image)."""
    return _cifar_resnet_depth(nn, 3)


def fast_cifar(nn, width: int = 16):
    """The all-conv net of the fast-CIFAR anchor (145K parameters at width 16, 17.6M multiply-adds).

    conv-bn-GELU, then three blocks of conv, 2x2 max pool, bn, GELU, conv, bn,
    GELU (widths 2w, 4w, 4w), a global max pool (4x4 -> 1, written as
    MaxPool2d(4): trainkit has no AdaptiveMaxPool2d) and a bias-free linear head.
    """

    def blk(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(cout), nn.GELU(),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU()]

    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.GELU(),
        *blk(w, 2 * w), *blk(2 * w, 4 * w), *blk(4 * w, 4 * w),
        nn.MaxPool2d(4), nn.Flatten(), nn.Linear(4 * w, 10, bias=False),
    )
