"""The sequence and attention workloads of the throughput benchmark (issue 14), each written once against
PyTorch's ``nn`` API: builders take the ``nn`` namespace (``trainkit.nn`` or ``torch.nn``), so the same code
gives the two models the benchmark compares.

* ``lstm_lm``: PyTorch's word_language_model ``RNNModel`` (embedding, 2-layer LSTM with dropout 0.2 between
  layers, linear decoder), 200 embedding/hidden, BPTT 35, batch 20, hidden state carried (detached) from one
  batch to the next; vocabulary 65 (Tiny Shakespeare's characters) or 33,278 (WikiText-2's words, the example's
  default data).
* ``tiny_gpt``: nanoGPT's CPU-sized character model (4 layers, 4 heads, 128 dimensions, block 64, batch 12,
  vocabulary 65, no dropout): token + learned position embeddings, pre-norm GELU blocks with a causal mask,
  final LayerNorm, bias-free head.
* ``small_vit``: a ViT for 32x32 images: 4x4 patches by a strided conv (64 tokens), learned position embedding,
  4 pre-norm GELU blocks (128 dimensions, 4 heads, MLP 256), LayerNorm, mean pooling, linear head.
"""
from __future__ import annotations

import sys

import numpy as np

N_BATCHES = 8


def _lib(nn):
    """The library whose ``nn`` namespace ``nn`` is (``trainkit`` or ``torch``)."""
    return sys.modules[nn.__name__.rsplit(".", 1)[0]]


def lstm_lm(nn, ntoken: int = 65, ninp: int = 200, nhid: int = 200, nlayers: int = 2, dropout: float = 0.2):
    """word_language_model's RNNModel (LSTM), carrying its hidden state across batches."""

    class RNNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(dropout)
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
            self.decoder = nn.Linear(nhid, ntoken)
            self.hidden = None

        def forward(self, tokens):  # (bptt, batch) token ids -> (bptt * batch, ntoken) logits
            emb = self.drop(self.encoder(tokens))
            hidden = None if self.hidden is None else tuple(h.detach() for h in self.hidden)
            output, self.hidden = self.rnn(emb, hidden)
            return self.decoder(self.drop(output)).view(-1, ntoken)

    return RNNModel()


def lstm_lm_word(nn):
    """The LSTM LM with WikiText-2's 33,278-word vocabulary (word_language_model's default data)."""
    return lstm_lm(nn, ntoken=33278)


def tiny_gpt(nn, vocab: int = 65, block: int = 64, n_layer: int = 4, n_head: int = 4, n_embd: int = 128):
    """nanoGPT's CPU-sized character model, from PyTorch's transformer layers."""
    lib = _lib(nn)

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, n_embd)
            self.pos = nn.Embedding(block, n_embd)
            layer = nn.TransformerEncoderLayer(n_embd, n_head, 4 * n_embd, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
            self.ln_f = nn.LayerNorm(n_embd)
            self.head = nn.Linear(n_embd, vocab, bias=False)

        def forward(self, idx):  # (batch, block) token ids -> (batch * block, vocab) logits
            t = idx.shape[1]
            x = self.tok(idx) + self.pos(lib.arange(t))
            mask = nn.Transformer.generate_square_subsequent_mask(t)
            x = self.blocks(x, mask=mask, is_causal=True)
            return self.head(self.ln_f(x)).view(-1, vocab)

    return GPT()


def small_vit(nn, patch: int = 4, dim: int = 128, depth: int = 4, heads: int = 4, mlp: int = 256, classes: int = 10):
    """A ViT for CIFAR-sized images: conv patch embedding, pre-norm encoder, mean pooling."""

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, dim, patch, stride=patch)
            self.pos = nn.Parameter(self.patch.weight.new_zeros(1, (32 // patch) ** 2, dim))
            layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, classes)

        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
            return self.head(self.norm(self.encoder(x)).mean(dim=1))

    return ViT()


def token_data(shape: tuple, vocab: int, seed: int = 0):
    """``N_BATCHES`` batches of random token ids of ``shape`` and their next-token targets (flattened)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(N_BATCHES):
        stream = rng.integers(0, vocab, size=shape).astype(np.int64)
        xs.append(stream)
        ys.append(rng.integers(0, vocab, size=int(np.prod(shape))).astype(np.int64))
    return xs, ys
