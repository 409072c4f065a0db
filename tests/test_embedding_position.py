"""Learned positional embeddings against their PyTorch twins (GPT's ``wte(idx) + wpe(arange(T))``), and in YAML."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit
import trainkit.nn as nn
from trainkit.config import ConfigError
from trainkit.config.loader import loads_config
from trainkit.assemble import build_model_and_plan
from trainkit.testing.oracle import check_module_against_torch

torch = pytest.importorskip("torch")


class TorchTokenPosition(torch.nn.Module):
    """nanoGPT's input layer: two tables, summed."""

    def __init__(self, vocab, dim, max_len):
        super().__init__()
        self.tok, self.pos = torch.nn.Embedding(vocab, dim), torch.nn.Embedding(max_len, dim)

    def forward(self, idx):
        return self.tok(idx) + self.pos(torch.arange(idx.shape[-1]))


class TorchPositional(torch.nn.Module):
    def __init__(self, max_len, dim):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(max_len, dim))

    def forward(self, x):
        return x + self.weight[:x.shape[-2]]


@settings(max_examples=15, deadline=None)
@given(vocab=st.integers(1, 9), dim=st.integers(1, 6), max_len=st.integers(1, 7), data=st.data())
def test_token_position_embedding_matches_torch(vocab, dim, max_len, data):
    seq = data.draw(st.integers(1, max_len))
    batch = data.draw(st.sampled_from([(), (1,), (3,)]))
    idx = np.random.default_rng(vocab * 100 + seq).integers(0, vocab, size=batch + (seq,)).astype(np.int64)
    ours = nn.TokenPositionEmbedding(vocab, dim, max_len).double()
    theirs = TorchTokenPosition(vocab, dim, max_len).double()
    check_module_against_torch(ours, theirs, [idx], grad=False)
    assert list(ours.state_dict()) == ["tok.weight", "pos.weight"]


@settings(max_examples=15, deadline=None)
@given(dim=st.integers(1, 6), max_len=st.integers(1, 7), data=st.data())
def test_positional_embedding_matches_torch(dim, max_len, data):
    seq = data.draw(st.integers(1, max_len))
    batch = data.draw(st.sampled_from([(), (2,)]))
    x = np.random.default_rng(seq).standard_normal(batch + (seq, dim))
    check_module_against_torch(nn.PositionalEmbedding(max_len, dim).double(), TorchPositional(max_len, dim).double(),
                               [x])


def test_default_initialisation_is_embeddings_standard_normal():
    w = nn.TokenPositionEmbedding(50, 40, 30).tok.weight.detach().numpy()
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05
    p = nn.PositionalEmbedding(60, 50).weight.detach().numpy()
    assert abs(p.std() - 1) < 0.05


def test_too_long_a_sequence_is_an_error():
    with pytest.raises(IndexError, match="6 positions but max_len is 5"):
        nn.TokenPositionEmbedding(3, 2, 5)(trainkit.tensor(np.zeros((1, 6), dtype=np.int64)))


def test_yaml_checks_the_context_length_and_fills_the_width():
    cfg = loads_config("data: {dataset: tinyshakespeare, block_size: 8}\nmodel:\n  layers:\n"
                       "    - token_position_embedding: {num_embeddings: 65, embedding_dim: 6, max_len: 8}\n"
                       "    - positional_embedding: {max_len: 8}\n    - linear: {out_features: 65}\n"
                       "optimizer: {type: sgd, lr: 0.1}\n")
    model, plan = build_model_and_plan(cfg, (8,), 65)
    assert plan.nodes[0].out_shape == (8, 6) and plan.nodes[1].kwargs["embedding_dim"] == 6
    assert plan.nodes[0].params == (65 + 8) * 6
    assert list(model.state_dict())[:3] == ["0.tok.weight", "0.pos.weight", "1.weight"]
    with pytest.raises(ConfigError, match=r"max_len: the input has 8 positions but max_len is 4"):
        build_model_and_plan(loads_config(
            "data: {dataset: tinyshakespeare, block_size: 8}\nmodel:\n  layers:\n"
            "    - token_position_embedding: {num_embeddings: 65, embedding_dim: 6, max_len: 4}\n"
            "    - linear: {out_features: 65}\noptimizer: {type: sgd, lr: 0.1}\n"), (8,), 65)
