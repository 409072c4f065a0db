"""The pieces of a Vision Transformer around its encoder: ``PatchEmbedding``, ``ClassToken``, ``SequencePool``.

PyTorch has no classes for these; they follow torchvision's and timm's
``VisionTransformer``:

* :class:`PatchEmbedding` is timm's ``PatchEmbed``: a convolution whose kernel
  and stride are the patch size, then ``(N, E, h, w) -> (N, h*w, E)`` (key
  ``proj.weight``: a ``Conv2d`` state dict under ``proj``);
* :class:`ClassToken` prepends torchvision's learned ``class_token`` (zeros at the start);
* :class:`SequencePool` turns the encoder's sequence into one vector: the mean
  over positions (timm's ``global_pool='avg'``) or the first position, the class
  token's (torchvision's ``x[:, 0]``).
"""
from __future__ import annotations

import numpy as np

from trainkit.autograd.ops.shape import cat
from trainkit.nn._helpers import np_dtype
from trainkit.nn.conv import Conv2d
from trainkit.nn.module import Module
from trainkit.nn.parameter import Parameter
from trainkit.registry import SIZE, Example, Inferred, Int, ShapeProblem, Str, fmt, layer, need_image, pair
from trainkit.nn import onnx_rules as _onnx

__all__ = ["PatchEmbedding", "ClassToken", "SequencePool"]


@layer("patch_embedding", input_arg="in_channels", input_dim=0,
       args={"in_channels": Int(lo=1), "embed_dim": Int(lo=1), "patch_size": SIZE},
       example=Example((2, 2, 4, 6), {"embed_dim": 3, "patch_size": 2}), onnx=_onnx.patch_embedding)
class PatchEmbedding(Module):
    """Cut images into patches and project each to ``embed_dim`` features: a sequence of patch vectors.

    Args:
        in_channels: image channels.
        embed_dim: features per patch.
        patch_size: patch height and width (an int or ``[height, width]``); they must divide the image's.
        bias: whether the projection has a bias.
        dtype: parameter dtype (float32 by default).

    Shape:
        ``(N, C, H, W)`` -> ``(N, (H / ph) * (W / pw), embed_dim)``, patches in row-major order
        (or unbatched ``(C, H, W)`` -> ``(patches, embed_dim)``).

    Attributes:
        proj: ``Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)`` (PyTorch's initialisation).
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size, bias: bool = True, dtype=None):
        super().__init__()
        self.patch_size = pair(patch_size)
        self.proj = Conv2d(in_channels, embed_dim, self.patch_size, stride=self.patch_size, bias=bias, dtype=dtype)

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        h, w = input.shape[-2:]
        ph, pw = self.patch_size
        if h % ph or w % pw:
            raise RuntimeError(f"PatchEmbedding: {h}x{w} images do not split into {ph}x{pw} patches")
        y = self.proj(input)
        if y.ndim == 3:
            return y.flatten(1).transpose(0, 1)
        return y.flatten(2).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"patch_size={self.patch_size}"

    @staticmethod
    def infer_shape(args, x):
        """``(C, H, W) -> (patches, embed_dim)``; the patch size must divide the image size."""
        need_image("patch_embedding", x)
        ph, pw = pair(args["patch_size"])
        if x[1] % ph or x[2] % pw:
            raise ShapeProblem(f"{x[1]}x{x[2]} images do not split into {ph}x{pw} patches", "patch_size")
        n, e = (x[1] // ph) * (x[2] // pw), args["embed_dim"]
        per = x[0] * ph * pw * e
        return Inferred((n, e), macs=n * per, params=per + (e if args["bias"] else 0))


@layer("class_token", input_arg="embed_dim", input_dim=-1, args={"embed_dim": Int(lo=1)},
       example=Example((2, 3, 4)), onnx=_onnx.class_token)
class ClassToken(Module):
    """Prepend a learned vector to every sequence (ViT's ``[class]`` token).

    Args:
        embed_dim: features of each position.
        dtype: parameter dtype (float32 by default).

    Shape:
        ``(N, L, embed_dim)`` -> ``(N, 1 + L, embed_dim)`` (or unbatched ``(L, E)`` -> ``(1 + L, E)``).

    Attributes:
        class_token: ``(1, 1, embed_dim)``, zeros at the start (torchvision's).
    """

    def __init__(self, embed_dim: int, dtype=None):
        super().__init__()
        self.embed_dim = embed_dim
        self.class_token = Parameter(np.zeros((1, 1, embed_dim), dtype=np_dtype(dtype)))

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        if input.ndim == 2:
            return cat([self.class_token[0], input], dim=0)
        return cat([self.class_token.expand(input.shape[0], 1, self.embed_dim), input], dim=1)

    def extra_repr(self) -> str:
        return str(self.embed_dim)

    @staticmethod
    def infer_shape(args, x):
        """``(L, E) -> (1 + L, E)``."""
        if len(x) != 2:
            raise ShapeProblem(f"class_token needs (sequence, features) input per sample, found {fmt(x)}")
        return Inferred((x[0] + 1, x[1]), params=x[1])


@layer("sequence_pool", args={"mode": Str(("mean", "first"), "mode")}, example=Example((2, 3, 4)), onnx=_onnx.sequence_pool)
class SequencePool(Module):
    """One vector per sequence: the mean over its positions, or its first position (a class token's).

    Args:
        mode: ``"mean"`` (timm's ``global_pool='avg'``) or ``"first"`` (torchvision's ``x[:, 0]``).

    Shape:
        ``(N, L, E)`` -> ``(N, E)`` (or unbatched ``(L, E)`` -> ``(E,)``).
    """

    def __init__(self, mode: str = "mean"):
        super().__init__()
        if mode not in ("mean", "first"):
            raise ValueError(f"SequencePool: mode must be 'mean' or 'first', not {mode!r}")
        self.mode = mode

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return input.mean(dim=-2) if self.mode == "mean" else input[..., 0, :]

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"

    @staticmethod
    def infer_shape(args, x):
        """``(L, E) -> (E,)``."""
        if len(x) != 2:
            raise ShapeProblem(f"sequence_pool needs (sequence, features) input per sample, found {fmt(x)}")
        return Inferred((x[1],), macs=0)
