"""nn.functional activations, losses, pad, interpolate, normalize, cosine_similarity, embedding, layer_norm,
conv1d, one_hot, and the new activation and loss classes, against PyTorch: float64 values and gradients (of
every input) to 1e-7 on hypothesis-drawn shapes, plus constructor arguments, parameters, state dicts and reprs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import trainkit as tk
import trainkit.nn as nn
import trainkit.nn.functional as F

torch = pytest.importorskip("torch")
tnn = torch.nn
TF = torch.nn.functional

from trainkit.testing.oracle import check_against_torch  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


def floats(shape, lo=-4.0, hi=4.0):
    # magnitudes below 1e-30 become 0: their squares underflow, where torch's p-norm gradients turn NaN
    elements = st.floats(lo, hi, allow_nan=False, width=64).map(lambda v: 0.0 if abs(v) < 1e-30 else v)
    return hnp.arrays(np.float64, shape, elements=elements)


ACTIVATIONS = [
    ("silu", {}), ("elu", {}), ("elu", {"alpha": 0.3}), ("selu", {}), ("celu", {"alpha": 1.7}),
    ("softplus", {}), ("softplus", {"beta": 2.0, "threshold": 3.0}), ("mish", {}), ("hardswish", {}),
    ("hardtanh", {}), ("hardtanh", {"min_val": -0.5, "max_val": 2.0}), ("relu6", {}), ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
]


@pytest.mark.parametrize("name,kw", ACTIVATIONS, ids=[f"{n}{kw}" for n, kw in ACTIVATIONS])
@SETTINGS
@given(data=st.data())
def test_activation_functions_match_torch(name, kw, data):
    x = data.draw(floats(data.draw(shapes)))
    if name in ("hardswish", "hardtanh", "relu6"):
        x = np.where(np.isin(np.round(x), [-3, -1, 0, 1, 3, 6]) & (np.abs(x - np.round(x)) < 1e-9), x + 0.25, x)
    check_against_torch(lambda t: getattr(F, name)(t, **kw), lambda t: getattr(TF, name)(t, **kw), [x])


@SETTINGS
@given(data=st.data())
def test_prelu_matches_torch(data):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4))
    x = data.draw(floats(shape))
    w = data.draw(floats((data.draw(st.sampled_from([1, shape[1]])),), 0.05, 1.0))
    check_against_torch(F.prelu, TF.prelu, [x, w])


def test_activation_boundaries_match_torch():
    x = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0, 20.0, 25.0, -20.0])
    for f, g in [(F.elu, TF.elu), (F.hardswish, TF.hardswish), (F.hardtanh, TF.hardtanh), (F.relu6, TF.relu6),
                 (lambda t: F.softplus(t, 1.0, 20.0), lambda t: TF.softplus(t, 1.0, 20.0)), (F.mish, TF.mish),
                 (F.silu, TF.silu), (F.selu, TF.selu)]:
        check_against_torch(f, g, [x])


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(data=st.data())
def test_smooth_l1_and_huber_losses_match_torch(reduction, data):
    shape = data.draw(shapes)
    x, y = data.draw(floats(shape)), data.draw(floats(shape))
    beta = data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
    check_against_torch(lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
                        lambda a, b: TF.smooth_l1_loss(a, b, reduction=reduction, beta=beta), [x, y])
    delta = data.draw(st.sampled_from([0.5, 1.0, 3.0]))
    check_against_torch(lambda a, b: F.huber_loss(a, b, reduction=reduction, delta=delta),
                        lambda a, b: TF.huber_loss(a, b, reduction=reduction, delta=delta), [x, y])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(data=st.data())
def test_binary_cross_entropy_matches_torch_including_target_gradient(reduction, data):
    shape = data.draw(shapes)
    p = data.draw(floats(shape, 0.01, 0.99))
    t = data.draw(floats(shape, 0.0, 1.0))
    check_against_torch(lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction),
                        lambda a, b: TF.binary_cross_entropy(a, b, reduction=reduction), [p, t])
    w = data.draw(floats(shape[-1:], 0.1, 2.0))
    check_against_torch(lambda a, b: F.binary_cross_entropy(a, b, tk.tensor(w), reduction=reduction),
                        lambda a, b: TF.binary_cross_entropy(a, b, torch.tensor(w), reduction=reduction), [p, t])


def test_binary_cross_entropy_clamps_logs_and_checks_range():
    p = np.array([0.0, 1.0, 0.5])
    t = np.array([1.0, 0.0, 1.0])
    check_against_torch(F.binary_cross_entropy, TF.binary_cross_entropy, [p, t], grad=[False, False])
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(tk.tensor([1.5]), tk.tensor([1.0]))


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
@SETTINGS
@given(data=st.data())
def test_kl_div_matches_torch(reduction, log_target, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = data.draw(floats(shape, -3, 0))
    t = data.draw(floats(shape, -3, 0)) if log_target else data.draw(floats(shape, 0.01, 1.0))
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_against_torch(lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target),
                                lambda a, b: TF.kl_div(a, b, reduction=reduction, log_target=log_target), [x, t])


def test_kl_div_zero_target_contributes_nothing():
    x = np.log(np.array([[0.2, 0.3, 0.5]]))
    t = np.array([[0.0, 0.4, 0.6]])
    check_against_torch(lambda a, b: F.kl_div(a, b, reduction="batchmean"),
                        lambda a, b: TF.kl_div(a, b, reduction="batchmean"), [x, t], grad=[True, False])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(data=st.data())
def test_margin_losses_match_torch(reduction, data):
    n = data.draw(st.integers(1, 5))
    d = data.draw(st.integers(1, 4))
    a, b, c = (data.draw(floats((n, d))) for _ in range(3))
    y = data.draw(hnp.arrays(np.float64, (n,), elements=st.sampled_from([-1.0, 1.0])))
    margin = data.draw(st.sampled_from([0.0, 0.3, -0.2]))
    check_against_torch(lambda p, q, t: F.margin_ranking_loss(p, q, t, margin, reduction=reduction),
                        lambda p, q, t: TF.margin_ranking_loss(p, q, t, margin, reduction=reduction),
                        [a[:, 0], b[:, 0] + 0.01, y], grad=[True, True, False])
    check_against_torch(lambda p, q, t: F.cosine_embedding_loss(p, q, t, margin, reduction=reduction),
                        lambda p, q, t: TF.cosine_embedding_loss(p, q, t, margin, reduction=reduction),
                        [a, b, y], grad=[True, True, False])
    p = data.draw(st.sampled_from([1.0, 2.0, 3.0]))
    swap = data.draw(st.booleans())
    check_against_torch(
        lambda x1, x2, x3: F.triplet_margin_loss(x1, x2, x3, margin=1.0 + abs(margin), p=p, swap=swap,
                                                 reduction=reduction),
        lambda x1, x2, x3: TF.triplet_margin_loss(x1, x2, x3, margin=1.0 + abs(margin), p=p, swap=swap,
                                                  reduction=reduction), [a, b, c])


@SETTINGS
@given(data=st.data())
def test_cosine_similarity_pairwise_distance_normalize_match_torch(data):
    a_shape, b_shape = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3,
                                                                   min_side=1, max_side=4)).input_shapes
    # values 0 or at least 1e-3 in size: near-zero norms make gradients of ~1/norm that cancel, leaving
    # rounding noise far above any absolute tolerance (zero vectors have their own test below)
    a, b = (np.where(np.abs(v) < 1e-3, 0.0, v) for v in (data.draw(floats(a_shape)), data.draw(floats(b_shape))))
    nd = max(len(a_shape), len(b_shape))
    dim = data.draw(st.integers(-nd, nd - 1))
    check_against_torch(lambda x, y: F.cosine_similarity(x, y, dim), lambda x, y: TF.cosine_similarity(x, y, dim),
                        [a, b])
    same = data.draw(floats(a_shape))
    check_against_torch(lambda x, y: F.pairwise_distance(x, y), lambda x, y: TF.pairwise_distance(x, y), [a, same])
    d = data.draw(st.integers(-len(a_shape), len(a_shape) - 1))
    p = data.draw(st.sampled_from([1.0, 2.0, 3.0]))
    check_against_torch(lambda x: F.normalize(x, p, d), lambda x: TF.normalize(x, p, d), [a])


def test_normalize_and_cosine_similarity_of_zero_vectors_match_torch():
    z = np.zeros((2, 3))
    z[1] = [1.0, 2.0, 2.0]
    check_against_torch(lambda x: F.normalize(x), lambda x: TF.normalize(x), [z])
    check_against_torch(lambda x, y: F.cosine_similarity(x, y), lambda x, y: TF.cosine_similarity(x, y),
                        [z, np.ones((2, 3))])


# ------------------------------------------------------------------------------------------------ pad, interpolate
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@SETTINGS
@given(data=st.data())
def test_pad_matches_torch(mode, data):
    k = data.draw(st.integers(1, 3))
    shape = (2, 2) + tuple(data.draw(st.integers(2, 5)) for _ in range(k))
    x = data.draw(floats(shape))
    pads = []
    for n in reversed(shape[2:]):
        lo_min = -n + 1 if mode == "constant" else 0
        hi = n - 1 if mode == "reflect" else n
        lo = data.draw(st.integers(lo_min, hi))
        pads += [lo, data.draw(st.integers(max(lo_min, -n - lo + 1), hi))]  # at least one element left
    kw = {"value": 0.7} if mode == "constant" else {}
    check_against_torch(lambda t: F.pad(t, pads, mode=mode, **kw), lambda t: TF.pad(t, pads, mode=mode, **kw), [x])


INTERP = [("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True), ("linear", False),
          ("linear", True), ("trilinear", False), ("nearest", None)]


@pytest.mark.parametrize("mode,align", INTERP[:7], ids=[f"{m}-{a}" for m, a in INTERP[:7]])
@SETTINGS
@given(data=st.data())
def test_interpolate_matches_torch(mode, align, data):
    k = {"linear": 1, "bilinear": 2, "trilinear": 3}.get(mode, data.draw(st.integers(1, 3)))
    spatial = tuple(data.draw(st.integers(1, 5)) for _ in range(k))
    x = data.draw(floats((2, 2) + spatial))
    kw = {} if align is None else {"align_corners": align}
    if data.draw(st.booleans()):
        kw["size"] = tuple(data.draw(st.integers(1, 7)) for _ in range(k))
    else:
        kw["scale_factor"] = data.draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 0.7]))
        kw["recompute_scale_factor"] = data.draw(st.sampled_from([None, True]))
        if any(int(np.floor(n * kw["scale_factor"])) < 1 for n in spatial):
            kw["scale_factor"] = 2.0
    check_against_torch(lambda t: F.interpolate(t, mode=mode, **kw), lambda t: TF.interpolate(t, mode=mode, **kw), [x])


def test_interpolate_float32_stays_float32_and_rejects_what_torch_rejects():
    x = tk.randn(1, 2, 4, 4)
    assert F.interpolate(x, scale_factor=2, mode="bilinear").dtype == np.float32
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x)


# ------------------------------------------------------------------------------------------------ layers
@SETTINGS
@given(data=st.data())
def test_layer_norm_matches_torch(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    k = data.draw(st.integers(1, len(shape)))
    norm_shape = shape[len(shape) - k:]
    x = data.draw(floats(shape))
    w, b = data.draw(floats(norm_shape)), data.draw(floats(norm_shape))
    eps = data.draw(st.sampled_from([1e-5, 1e-3]))
    check_against_torch(lambda t, ww, bb: F.layer_norm(t, norm_shape, ww, bb, eps),
                        lambda t, ww, bb: TF.layer_norm(t, norm_shape, ww, bb, eps), [x, w, b], atol=1e-9)
    check_against_torch(lambda t: F.layer_norm(t, norm_shape), lambda t: TF.layer_norm(t, norm_shape), [x],
                        atol=1e-9)
    check_against_torch(lambda t, bb: F.layer_norm(t, norm_shape, None, bb),
                        lambda t, bb: TF.layer_norm(t, norm_shape, None, bb), [x, b], atol=1e-9)


@SETTINGS
@given(data=st.data())
def test_conv1d_matches_torch(data):
    n, c, o = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    k = data.draw(st.integers(1, 4))
    length = data.draw(st.integers(k, 9))
    x, w, b = data.draw(floats((n, c, length))), data.draw(floats((o, c, k))), data.draw(floats((o,)))
    stride = data.draw(st.integers(1, 3))
    padding = data.draw(st.sampled_from([0, 1, 2, "valid", "same"]))
    if padding == "same":
        stride = 1
    check_against_torch(lambda *t: F.conv1d(*t, stride=stride, padding=padding),
                        lambda *t: TF.conv1d(*t, stride=stride, padding=padding), [x, w, b])
    check_against_torch(lambda t, ww: F.conv1d(t, ww), lambda t, ww: TF.conv1d(t, ww), [x[0], w])  # unbatched


def test_one_hot_matches_torch():
    y = np.array([[0, 3], [2, 1]])
    check_against_torch(F.one_hot, TF.one_hot, [y], grad=[False])
    check_against_torch(lambda t: F.one_hot(t, 6), lambda t: TF.one_hot(t, 6), [y], grad=[False])
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(tk.tensor([3]), 3)


# ------------------------------------------------------------------------------------------------ classes
ACT_CLASSES = [
    ("SiLU", (), ()), ("SiLU", (True,), ()), ("ELU", (), ()), ("ELU", (0.5, True), ()), ("SELU", (), ()),
    ("PReLU", (), ()), ("PReLU", (3, 0.1), ()), ("Softplus", (), ()), ("Softplus", (2, 10), ()), ("Mish", (), ()),
    ("Hardswish", (True,), ()), ("Hardtanh", (), ()), ("Hardtanh", (-2.0, 2.0, True), ()),
]


@pytest.mark.parametrize("name,args,_", ACT_CLASSES, ids=[f"{n}{a}" for n, a, _ in ACT_CLASSES])
def test_activation_classes_match_torch(name, args, _):
    ours, theirs = getattr(nn, name)(*args).double(), getattr(tnn, name)(*args).double()
    assert repr(ours) == repr(theirs)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    for k, v in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k].numpy(), v.numpy())
    x = np.random.default_rng(0).standard_normal((4, 3, 5)) * 3
    params = dict(ours.named_parameters())
    # (t * 1.0): torch's inplace=True may not write into a leaf that requires grad
    check_against_torch(lambda t: ours(t * 1.0), lambda t: theirs(t * 1.0), [x])
    for pname, p in theirs.named_parameters():
        np.testing.assert_allclose(params[pname].grad.numpy(), p.grad.numpy(), rtol=1e-7, err_msg=pname)


def test_prelu_is_float32_by_default_and_rejects_a_wrong_channel_count():
    m = nn.PReLU(4)
    assert m.weight.dtype == np.float32 and m.weight.tolist() == [0.25] * 4 and m.num_parameters == 4
    with pytest.raises(RuntimeError, match="channel size"):
        m(tk.randn(2, 3))
    with pytest.raises(ValueError):
        nn.Hardtanh(1.0, -1.0)


LOSS_CLASSES = [
    ("SmoothL1Loss", {}, 2), ("SmoothL1Loss", {"beta": 0.3, "reduction": "sum"}, 2), ("HuberLoss", {"delta": 0.5}, 2),
    ("HuberLoss", {"reduction": "none"}, 2), ("BCELoss", {}, 2), ("BCELoss", {"reduction": "sum"}, 2),
    ("KLDivLoss", {"reduction": "batchmean"}, 2), ("KLDivLoss", {"log_target": True, "reduction": "sum"}, 2),
    ("CosineEmbeddingLoss", {"margin": 0.2}, 3), ("MarginRankingLoss", {"margin": 0.1}, 3),
    ("TripletMarginLoss", {"margin": 0.5, "p": 1.0, "swap": True}, 3),
]


@pytest.mark.parametrize("name,kw,n_in", LOSS_CLASSES, ids=[f"{n}{kw}" for n, kw, _ in LOSS_CLASSES])
def test_loss_classes_match_torch(name, kw, n_in):
    ours, theirs = getattr(nn, name)(**kw), getattr(tnn, name)(**kw)
    assert repr(ours) == repr(theirs)
    rng = np.random.default_rng(3)
    if name == "BCELoss":
        inputs, grad = [rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(size=(4, 3))], [True, True]
    elif name == "KLDivLoss":
        inputs, grad = [np.log(rng.dirichlet(np.ones(3), 4)), rng.dirichlet(np.ones(3), 4)], [True, True]
        if kw.get("log_target"):
            inputs[1] = np.log(inputs[1])
    elif name == "MarginRankingLoss":
        inputs, grad = [rng.standard_normal(5), rng.standard_normal(5), rng.choice([-1.0, 1.0], 5)], [True, True, False]
    elif name == "CosineEmbeddingLoss":
        inputs, grad = [rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), rng.choice([-1.0, 1.0], 5)], \
            [True, True, False]
    else:
        inputs, grad = [rng.standard_normal((4, 3)) for _ in range(n_in)], [True] * n_in
    check_against_torch(lambda *t: ours(*t), lambda *t: theirs(*t), inputs, grad=grad)


def test_bce_loss_weight_is_a_buffer_like_torch():
    ours, theirs = nn.BCELoss(weight=[1.0, 2.0]), tnn.BCELoss(weight=torch.tensor([1.0, 2.0]))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    assert nn.HuberLoss("sum").reduction == "sum"  # reduction is positional in HuberLoss, as in torch
    with pytest.raises(ValueError, match="margin"):
        nn.TripletMarginLoss(margin=0.0)
    with pytest.raises(ValueError, match="reduction"):
        nn.KLDivLoss(reduction="avg")
