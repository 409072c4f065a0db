"""scaled_dot_product_attention, MultiheadAttention and the transformer blocks against PyTorch 2.13: float64
outputs, input and parameter gradients to 1e-6 on hypothesis-drawn sizes and masks (key padding, causal, boolean
and float), both layouts and both norm orders; plus reprs, errors, dropout and the YAML declarations."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainkit as tk
import trainkit.nn as nn
import trainkit.nn.functional as F
from trainkit.registry import LAYERS, ShapeProblem

torch = pytest.importorskip("torch")
tnn = torch.nn

from trainkit.testing.oracle import check_against_torch, check_module_against_torch  # noqa: E402

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
small = st.integers(1, 4)


def _bool_mask(rng, shape, keep_first: bool = True):
    """A random boolean mask (True: masked out, PyTorch's MHA convention) that leaves key 0 visible."""
    m = rng.random(shape) < 0.35
    if keep_first:
        m[..., 0] = False
    return m


def _float_mask(rng, shape):
    return rng.standard_normal(shape)


def _random_parameters(module, rng):
    """Random weights everywhere (biases and LayerNorm scales too), so that no term is a zero or a one."""
    for p in module.parameters():
        p._array[...] = rng.standard_normal(p.shape) * 0.5


# ------------------------------------------------------------------------------------------------ functional
@SETTINGS
@given(data=st.data())
def test_scaled_dot_product_attention_matches_torch(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    lead = tuple(data.draw(st.lists(small, max_size=2), label="batch dims"))
    length, source, e, ev = (data.draw(small, label=k) for k in ("L", "S", "E", "Ev"))
    q, k, v = (rng.standard_normal(lead + s) for s in ((length, e), (source, e), (source, ev)))
    kind = data.draw(st.sampled_from(["none", "causal", "bool", "float"]), label="mask")
    scale = data.draw(st.sampled_from([None, 0.3]), label="scale")
    kw = {"scale": scale, "is_causal": kind == "causal"}
    arrays = [q, k, v]
    if kind == "bool":
        keep = ~_bool_mask(rng, (length, source))
        kw_o = {**kw, "attn_mask": tk.tensor(keep)}
        kw_t = {**kw, "attn_mask": torch.tensor(keep)}
    else:
        kw_o = kw_t = kw
        if kind == "float":
            arrays.append(_float_mask(rng, (1,) * data.draw(st.integers(0, len(lead)), label="mask lead")
                                      + (length, source)))
    check_against_torch(lambda *a: F.scaled_dot_product_attention(*a, **kw_o),
                        lambda *a: tnn.functional.scaled_dot_product_attention(*a, **kw_t), arrays, rtol=1e-6,
                        atol=1e-9)


def test_fully_masked_rows_give_zeros_as_torchs_kernel():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s) for s in ((1, 3, 4), (1, 5, 4), (1, 5, 2)))
    keep = np.ones((3, 5), bool)
    keep[1] = False
    check_against_torch(lambda *a: F.scaled_dot_product_attention(*a, attn_mask=tk.tensor(keep)),
                        lambda *a: tnn.functional.scaled_dot_product_attention(*a, attn_mask=torch.tensor(keep)),
                        [q, k, v])


def test_sdpa_errors_and_dropout():
    q = tk.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=tk.ones(3, 3).bool(), is_causal=True)
    tk.manual_seed(0)
    a = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    tk.manual_seed(0)
    b = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    c = F.scaled_dot_product_attention(q, q, q)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())
    np.testing.assert_array_equal(F.scaled_dot_product_attention(q, q, q, dropout_p=1.0).numpy(), 0)


def test_generate_square_subsequent_mask_is_torchs():
    ours = nn.Transformer.generate_square_subsequent_mask(5)
    theirs = tnn.Transformer.generate_square_subsequent_mask(5)
    assert ours.dtype == tk.float32
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# ------------------------------------------------------------------------------------------------ MHA
@SETTINGS
@given(data=st.data())
def test_multihead_attention_matches_torch(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    heads, head_dim = data.draw(st.integers(1, 3), label="heads"), data.draw(small, label="head_dim")
    e = heads * head_dim
    length, source, n = (data.draw(small, label=k) for k in ("L", "S", "N"))
    bias, batch_first, batched = (data.draw(st.booleans(), label=k) for k in ("bias", "batch_first", "batched"))
    separate = data.draw(st.booleans(), label="kdim/vdim")
    kdim, vdim = (data.draw(small, label="kdim"), data.draw(small, label="vdim")) if separate else (None, None)
    kw = dict(bias=bias, batch_first=batch_first, kdim=kdim, vdim=vdim)
    ours, theirs = nn.MultiheadAttention(e, heads, **kw).double(), tnn.MultiheadAttention(e, heads, **kw).double()
    assert repr(ours) == repr(theirs)
    _random_parameters(ours, rng)

    def seq(length_, width):
        if not batched:
            return rng.standard_normal((length_, width))
        return rng.standard_normal((n, length_, width) if batch_first else (length_, n, width))

    q, k, v = seq(length, e), seq(source, kdim or e), seq(source, vdim or e)
    masks = {}
    kpm = data.draw(st.sampled_from(["none", "bool", "float"]), label="key_padding_mask")
    kpm_shape = (n, source) if batched else (source,)
    if kpm == "bool":
        masks["key_padding_mask"] = _bool_mask(rng, kpm_shape)
    elif kpm == "float":
        masks["key_padding_mask"] = _float_mask(rng, kpm_shape)
    am = data.draw(st.sampled_from(["none", "bool", "float", "float3d", "causal"]), label="attn_mask")
    if am == "bool" and kpm != "float":
        masks["attn_mask"] = _bool_mask(rng, (length, source))
    elif am in ("float", "causal") or (am == "bool" and kpm == "float"):
        masks["attn_mask"] = (_float_mask(rng, (length, source)) if am != "causal"
                              else np.triu(np.full((length, source), -np.inf), 1))
        masks["is_causal"] = am == "causal" and length == source
    elif am == "float3d":
        masks["attn_mask"] = _float_mask(rng, ((n if batched else 1) * heads, length, source))
    masks["need_weights"] = data.draw(st.booleans(), label="need_weights")
    masks["average_attn_weights"] = data.draw(st.booleans(), label="average")
    if masks.get("is_causal") and "attn_mask" in masks and kpm == "float":
        masks["is_causal"] = False
    check_module_against_torch(ours, theirs, [q, k, v], masks)


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
def test_self_attention_with_causal_and_key_padding_masks(need_weights, batch_first):
    rng = np.random.default_rng(3)
    ours, theirs = nn.MultiheadAttention(6, 3, batch_first=batch_first).double(), \
        tnn.MultiheadAttention(6, 3, batch_first=batch_first).double()
    _random_parameters(ours, rng)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((2, 5, 6) if batch_first else (5, 2, 6))
    kpm = _bool_mask(rng, (2, 5))
    causal = tnn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    for masks in ({"attn_mask": causal, "is_causal": True}, {"attn_mask": causal.numpy() < 0},
                  {"attn_mask": causal, "is_causal": True, "key_padding_mask": kpm}):
        xo, xt = tk.tensor(x.copy(), requires_grad=True), torch.tensor(x.copy(), requires_grad=True)
        m_o = {k: tk.tensor(np.asarray(v)) if not isinstance(v, bool) else v for k, v in masks.items()}
        m_t = {k: torch.as_tensor(np.asarray(v)) if not isinstance(v, bool) else v for k, v in masks.items()}
        a, wa = ours(xo, xo, xo, need_weights=need_weights, **m_o)  # one tensor: the packed projection
        b, wb = theirs(xt, xt, xt, need_weights=need_weights, **m_t)
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)
        if need_weights:
            np.testing.assert_allclose(wa.detach().numpy(), wb.detach().numpy(), rtol=1e-9, atol=1e-12)
        a.sum().backward()
        b.sum().backward()
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    # trainkit's causal=True gives the same as PyTorch with the causal mask
    mine = nn.MultiheadAttention(6, 3, batch_first=batch_first, causal=True).double()
    mine.load_state_dict(ours.state_dict())
    out, _ = mine(tk.tensor(x), need_weights=need_weights)
    ref, _ = theirs(*[torch.tensor(x)] * 3, attn_mask=causal, is_causal=True, need_weights=need_weights)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert repr(mine).startswith("MultiheadAttention(\n  causal=True")


def test_multihead_attention_init_and_errors():
    tk.manual_seed(0)
    m = nn.MultiheadAttention(16, 4)
    bound = np.sqrt(6 / (16 + 48))
    w = m.in_proj_weight.detach().numpy()
    assert w.min() >= -bound and w.max() <= bound and w.max() > 0.9 * bound
    assert not m.in_proj_bias.detach().numpy().any() and not m.out_proj.bias.detach().numpy().any()
    assert list(m.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(NotImplementedError, match="add_bias_kv"):
        nn.MultiheadAttention(4, 2, add_bias_kv=True)
    x = tk.randn(3, 2, 4)
    with pytest.raises(RuntimeError, match=r"The shape of the 2D attn_mask is \(2, 2\), but should be \(3, 3\)"):
        nn.MultiheadAttention(4, 2)(x, x, x, attn_mask=tk.zeros(2, 2))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        nn.MultiheadAttention(4, 2)(x, x, x, is_causal=True)
    with pytest.raises(AssertionError, match="expecting key_padding_mask shape of"):
        nn.MultiheadAttention(4, 2)(x, x, x, key_padding_mask=tk.zeros(3, 3).bool())


def test_attention_dropout_only_in_training():
    m = nn.MultiheadAttention(4, 2, dropout=0.5, batch_first=True)
    x = tk.randn(2, 5, 4)
    m.eval()
    a, _ = m(x)
    b, _ = m(x, need_weights=False)
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    m.train()
    c, w = m(x)
    assert not np.allclose(c.detach().numpy(), a.detach().numpy())
    assert (w.detach().numpy() == 0).any()  # PyTorch returns the weights after dropout


# ------------------------------------------------------------------------------------------------ blocks
def _block_kwargs(data):
    return dict(dim_feedforward=data.draw(small, label="ff"), dropout=0.0,
                activation=data.draw(st.sampled_from(["relu", "gelu"]), label="activation"),
                batch_first=data.draw(st.booleans(), label="batch_first"),
                norm_first=data.draw(st.booleans(), label="norm_first"), bias=data.draw(st.booleans(), label="bias"),
                layer_norm_eps=data.draw(st.sampled_from([1e-5, 1e-2]), label="eps"))


def _seq(rng, n, length, e, batch_first):
    return rng.standard_normal((n, length, e) if batch_first else (length, n, e))


@SETTINGS
@given(data=st.data())
def test_transformer_encoder_layer_matches_torch(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    heads, e = data.draw(st.integers(1, 2), label="heads"), 2 * data.draw(st.integers(1, 2), label="half width")
    kw = _block_kwargs(data)
    ours, theirs = nn.TransformerEncoderLayer(e, heads, **kw).double(), tnn.TransformerEncoderLayer(e, heads,
                                                                                                  **kw).double()
    assert repr(ours) == repr(theirs)
    _random_parameters(ours, rng)
    n, length = data.draw(small, label="N"), data.draw(small, label="L")
    masks = {}
    if data.draw(st.booleans(), label="causal"):
        masks.update(src_mask=np.triu(np.full((length, length), -np.inf), 1), is_causal=True)
    if data.draw(st.booleans(), label="key padding"):
        masks["src_key_padding_mask"] = _float_mask(rng, (n, length))
    check_module_against_torch(ours, theirs, [_seq(rng, n, length, e, kw["batch_first"])], masks)


@SETTINGS
@given(data=st.data())
def test_transformer_decoder_layer_matches_torch(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    heads, e = data.draw(st.integers(1, 2), label="heads"), 2 * data.draw(st.integers(1, 2), label="half width")
    kw = _block_kwargs(data)
    ours, theirs = nn.TransformerDecoderLayer(e, heads, **kw).double(), tnn.TransformerDecoderLayer(e, heads,
                                                                                                  **kw).double()
    assert repr(ours) == repr(theirs)
    _random_parameters(ours, rng)
    n, length, source = data.draw(small, label="N"), data.draw(small, label="L"), data.draw(small, label="S")
    masks = {"tgt_mask": np.triu(np.full((length, length), -np.inf), 1), "tgt_is_causal": True}
    if data.draw(st.booleans(), label="memory padding"):
        masks["memory_key_padding_mask"] = _float_mask(rng, (n, source))
    b = kw["batch_first"]
    check_module_against_torch(ours, theirs, [_seq(rng, n, length, e, b), _seq(rng, n, source, e, b)], masks)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_decoder_stacks_and_transformer_match_torch(norm_first):
    rng = np.random.default_rng(5)
    kw = dict(dim_feedforward=8, dropout=0.0, norm_first=norm_first)
    causal = np.triu(np.full((4, 4), -np.inf), 1)
    enc_layer = nn.TransformerEncoderLayer(6, 2, **kw).double()
    ours = nn.TransformerEncoder(enc_layer, 2, norm=nn.LayerNorm(6)).double()
    theirs = tnn.TransformerEncoder(tnn.TransformerEncoderLayer(6, 2, **kw), 2, norm=tnn.LayerNorm(6),
                                    enable_nested_tensor=False).double()
    assert repr(ours) == repr(theirs)
    _random_parameters(ours, rng)
    check_module_against_torch(ours, theirs, [rng.standard_normal((4, 3, 6))],
                               {"mask": causal, "src_key_padding_mask": _float_mask(rng, (3, 4))})
    dec_layer = nn.TransformerDecoderLayer(6, 2, **kw).double()
    ours = nn.TransformerDecoder(dec_layer, 2, norm=nn.LayerNorm(6)).double()
    theirs = tnn.TransformerDecoder(tnn.TransformerDecoderLayer(6, 2, **kw), 2, norm=tnn.LayerNorm(6)).double()
    _random_parameters(ours, rng)
    check_module_against_torch(ours, theirs, [rng.standard_normal((4, 3, 6)), rng.standard_normal((5, 3, 6))],
                               {"tgt_mask": causal})
    ours, theirs = nn.Transformer(6, 2, 2, 2, **kw).double(), tnn.Transformer(6, 2, 2, 2, **kw).double()
    assert repr(ours) == repr(theirs)
    _random_parameters(ours, rng)
    check_module_against_torch(ours, theirs, [rng.standard_normal((5, 3, 6)), rng.standard_normal((4, 3, 6))],
                               {"tgt_mask": causal})


def test_transformer_encoder_clones_its_layer_and_errors():
    layer_ = nn.TransformerEncoderLayer(4, 2, 8)
    enc = nn.TransformerEncoder(layer_, 3)
    w0, w2 = enc.layers[0].linear1.weight, enc.layers[2].linear1.weight
    assert w0 is not w2 and np.array_equal(w0.detach().numpy(), w2.detach().numpy())
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(4, 2, activation="tanh")
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        nn.Transformer(4, 2, 1, 1, 8)(tk.randn(3, 2, 4), tk.randn(3, 5, 4))
    custom = nn.TransformerEncoderLayer(4, 2, 8, activation=nn.GELU())
    assert "(activation): GELU" in repr(custom)


# ------------------------------------------------------------------------------------------------ YAML
def test_yaml_declarations_of_attention_and_transformer_blocks():
    mha = LAYERS["multihead_attention"].infer({"embed_dim": 8, "num_heads": 2}, (5, 8))
    assert mha.shape == (5, 8) and dict(mha.outputs) == {"output": (5, 8), "weights": (5, 5)}
    assert mha.params == sum(p.numel() for p in nn.MultiheadAttention(8, 2).parameters())
    with pytest.raises(ShapeProblem, match="do not split into 3 heads"):
        LAYERS["multihead_attention"].infer({"embed_dim": 8, "num_heads": 3}, (5, 8))
    enc = LAYERS["transformer_encoder_layer"]
    args = {"d_model": 8, "nhead": 2, "dim_feedforward": 16}
    assert enc.infer(args, (5, 8)).params == sum(p.numel() for p in nn.TransformerEncoderLayer(8, 2, 16).parameters())
    stack = LAYERS["transformer_encoder"].infer({**args, "num_layers": 3, "norm": True}, (5, 8))
    from trainkit.nn.transformer_model import TransformerEncoderStack
    built = TransformerEncoderStack(8, 2, 3, 16, norm=True)
    assert stack.params == sum(p.numel() for p in built.parameters())
    assert "layers.2.self_attn.in_proj_weight" in built.state_dict() and "norm.weight" in built.state_dict()
    assert repr(built).startswith("TransformerEncoder(\n  (layers): ModuleList(\n    (0-2): 3 x TransformerEncoderLayer(")
    dec = LAYERS["transformer_decoder_layer"]
    assert dec.merges and dec.infer(args, (5, 8), (7, 8)).shape == (5, 8)
    with pytest.raises(ShapeProblem, match="the memory must be"):
        dec.infer(args, (5, 8), (7, 4))
    with pytest.raises(ShapeProblem, match="batch_first: true"):
        enc.infer({**args, "batch_first": False}, (5, 8))


def test_a_yaml_gpt_block_stack_builds_and_is_causal(tmp_path):
    from trainkit.assemble import build_model_and_plan
    from trainkit.config import load_config

    path = tmp_path / "gpt.yaml"
    path.write_text("data: {dataset: iris}\noptimizer: {type: sgd}\nmodel:\n  layers:\n"
                    "    - transformer_encoder: {nhead: 2, num_layers: 2, dim_feedforward: 32, dropout: 0.0,\n"
                    "                           activation: gelu, norm_first: true, norm: true, causal: true}\n"
                    "    - linear: {out_features: 5}\n")
    model, plan = build_model_and_plan(load_config(path), (6, 8))
    assert plan.output_shape == (6, 5)
    model.eval()
    x = tk.randn(2, 6, 8)
    y = model(x).detach().numpy()
    x2 = x.numpy().copy()
    x2[:, 4:] = 0  # later positions changed: earlier outputs stay
    y2 = model(tk.tensor(x2)).detach().numpy()
    np.testing.assert_allclose(y[:, :4], y2[:, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(y[:, 4:], y2[:, 4:])


def test_functional_multi_head_attention_forward_matches_torch():
    rng = np.random.default_rng(7)
    e, heads, length, n = 6, 2, 4, 3
    w_in, b_in = rng.standard_normal((3 * e, e)), rng.standard_normal(3 * e)
    w_out, b_out = rng.standard_normal((e, e)), rng.standard_normal(e)
    x = rng.standard_normal((length, n, e))
    kpm = _bool_mask(rng, (n, length))

    def ours(x, w_in, b_in, w_out, b_out):
        return F.multi_head_attention_forward(x, x, x, e, heads, w_in, b_in, None, None, False, 0.0, w_out, b_out,
                                              key_padding_mask=tk.tensor(kpm), need_weights=False)

    def theirs(x, w_in, b_in, w_out, b_out):
        return tnn.functional.multi_head_attention_forward(x, x, x, e, heads, w_in, b_in, None, None, False, 0.0,
                                                           w_out, b_out, key_padding_mask=torch.tensor(kpm),
                                                           need_weights=False)

    check_against_torch(ours, theirs, [x, w_in, b_in, w_out, b_out], rtol=1e-6, atol=1e-9)
    with pytest.raises(NotImplementedError, match="bias_k"):
        F.multi_head_attention_forward(tk.tensor(x), tk.tensor(x), tk.tensor(x), e, heads, tk.tensor(w_in), None,
                                       tk.zeros(1, 1, e), tk.zeros(1, 1, e), False, 0.0, tk.tensor(w_out), None)
