"""The Vision Transformer pieces (patch embedding, class token, sequence pooling) against PyTorch, and the ViT config."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit.nn as nn
from trainkit.assemble import build_model_and_plan
from trainkit.config import ConfigError, load_config
from trainkit.config.loader import loads_config
from trainkit.testing.oracle import check_module_against_torch

torch = pytest.importorskip("torch")


class TorchPatchEmbed(torch.nn.Module):
    """timm's PatchEmbed."""

    def __init__(self, c, e, p):
        super().__init__()
        self.proj = torch.nn.Conv2d(c, e, p, stride=p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TorchClassToken(torch.nn.Module):
    """torchvision's VisionTransformer: cat the expanded class_token in front."""

    def __init__(self, e):
        super().__init__()
        self.class_token = torch.nn.Parameter(torch.zeros(1, 1, e))

    def forward(self, x):
        return torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)


@settings(max_examples=12, deadline=None)
@given(c=st.integers(1, 3), e=st.integers(1, 5), ph=st.integers(1, 3), pw=st.integers(1, 3), rows=st.integers(1, 3),
       cols=st.integers(1, 3), n=st.integers(1, 3))
def test_patch_embedding_matches_timms(c, e, ph, pw, rows, cols, n):
    x = np.random.default_rng(c * 7 + e).standard_normal((n, c, rows * ph, cols * pw))
    ours = nn.PatchEmbedding(c, e, [ph, pw]).double()
    check_module_against_torch(ours, TorchPatchEmbed(c, e, (ph, pw)).double(), [x])
    assert list(ours.state_dict()) == ["proj.weight", "proj.bias"]


@settings(max_examples=10, deadline=None)
@given(e=st.integers(1, 5), length=st.integers(1, 4), n=st.integers(1, 3), mode=st.sampled_from(["mean", "first"]))
def test_class_token_and_pooling_match_torchvision(e, length, n, mode):
    x = np.random.default_rng(e + length).standard_normal((n, length, e))
    ours = nn.ClassToken(e).double()
    ours.class_token._array[:] = np.random.default_rng(1).standard_normal((1, 1, e))  # not just zeros
    check_module_against_torch(ours, TorchClassToken(e).double(), [x])
    pool = (lambda t: t.mean(dim=1)) if mode == "mean" else (lambda t: t[:, 0])

    class TorchPool(torch.nn.Module):
        def forward(self, t):
            return pool(t)

    check_module_against_torch(nn.SequencePool(mode), TorchPool(), [x])


def test_patch_sizes_that_do_not_divide_the_image_are_refused_at_the_key():
    with pytest.raises(ConfigError, match=r"model.layers.0.patch_embedding.patch_size: 8x8 images do not split "
                                          r"into 3x3 patches"):
        build_model_and_plan(loads_config("data: {dataset: digits}\nmodel:\n  layers:\n"
                                          "    - patch_embedding: {embed_dim: 4, patch_size: 3}\n"
                                          "optimizer: {type: sgd, lr: 0.1}\n"), (1, 8, 8))


def test_cifar_vit_config():
    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "cifar_vit.yaml")
    model, plan = build_model_and_plan(cfg, (3, 32, 32), 10)
    assert plan.node("patches").out_shape == (64, plan.node("patches").kwargs["embed_dim"])
    assert plan.output_shape == (10,)
    assert "blocks.0.self_attn.in_proj_weight" in model.state_dict() and "patches.proj.weight" in model.state_dict()
    names = [t.name for t in cfg.resolved.data.transforms]
    assert names[:2] == ["random_crop", "random_horizontal_flip"]
