"""PyTorch as an oracle (skipped without torch): same weights in both -> same outputs, gradients,
running statistics, state_dict keys/shapes and reprs."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tnn = torch.nn

import trainkit.nn as nn  # noqa: E402
from trainkit.autograd.tensor import Tensor  # noqa: E402

# (trainkit factory, torch factory, input shape)
PAIRS = [
    ("linear", lambda m: m.Linear(5, 3), (4, 5)),
    ("linear_nobias", lambda m: m.Linear(5, 3, bias=False), (2, 3, 5)),
    ("conv2d", lambda m: m.Conv2d(3, 4, 3), (2, 3, 7, 7)),
    ("conv2d_strided", lambda m: m.Conv2d(2, 3, (3, 2), stride=2, padding=1), (2, 2, 8, 7)),
    ("conv2d_same", lambda m: m.Conv2d(2, 3, 3, padding="same"), (1, 2, 6, 5)),
    ("maxpool2d", lambda m: m.MaxPool2d(2, 2), (2, 3, 8, 8)),
    ("maxpool2d_pad", lambda m: m.MaxPool2d(3, 2, 1), (2, 2, 7, 7)),
    ("avgpool2d", lambda m: m.AvgPool2d(3, 2, 1), (2, 2, 7, 7)),
    ("avgpool2d_nopadcount", lambda m: m.AvgPool2d(3, 2, 1, count_include_pad=False), (1, 2, 6, 6)),
    ("adaptive_avgpool2d", lambda m: m.AdaptiveAvgPool2d((3, 2)), (2, 2, 7, 5)),
    ("batchnorm1d", lambda m: m.BatchNorm1d(4), (6, 4)),
    ("batchnorm1d_3d", lambda m: m.BatchNorm1d(4), (3, 4, 5)),
    ("batchnorm2d", lambda m: m.BatchNorm2d(3), (2, 3, 4, 4)),
    ("batchnorm2d_noaffine", lambda m: m.BatchNorm2d(3, affine=False, momentum=None), (2, 3, 4, 4)),
    ("batchnorm2d_nobias", lambda m: m.BatchNorm2d(3, bias=False), (2, 3, 4, 4)),
    ("batchnorm1d_untracked", lambda m: m.BatchNorm1d(4, track_running_stats=False), (6, 4)),
    ("flatten", lambda m: m.Flatten(), (2, 3, 4, 5)),
    ("relu", lambda m: m.ReLU(), (3, 7)),
    ("leaky_relu", lambda m: m.LeakyReLU(0.2), (3, 7)),
    ("gelu", lambda m: m.GELU(), (3, 7)),
    ("gelu_tanh", lambda m: m.GELU(approximate="tanh"), (3, 7)),
    ("sigmoid", lambda m: m.Sigmoid(), (3, 7)),
    ("tanh", lambda m: m.Tanh(), (3, 7)),
    ("softmax", lambda m: m.Softmax(dim=1), (3, 7)),
    ("log_softmax", lambda m: m.LogSoftmax(dim=-1), (3, 7)),
    ("identity", lambda m: m.Identity(), (3, 7)),
]


def _copy_weights(ours: nn.Module, theirs) -> None:
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})


def _compare(ours, theirs, shape, train: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    cot = None
    ours.train(train), theirs.train(train)
    xt = Tensor(x.copy(), requires_grad=True)
    xr = torch.tensor(x, requires_grad=True)
    yt, yr = ours(xt), theirs(xr)
    np.testing.assert_allclose(yt.numpy() if not yt.requires_grad else yt.detach().numpy(),
                               yr.detach().numpy(), rtol=1e-9, atol=1e-12)
    cot = rng.standard_normal(yr.shape)
    (yt * Tensor(cot)).sum().backward()
    (yr * torch.from_numpy(cot)).sum().backward()
    np.testing.assert_allclose(xt.grad._array, xr.grad.numpy(), rtol=1e-8, atol=1e-11)
    ours_params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(ours_params[name].grad._array, p.grad.numpy(), rtol=1e-8, atol=1e-11,
                                   err_msg=name)


@pytest.mark.parametrize("name,make,shape", PAIRS, ids=[p[0] for p in PAIRS])
def test_layer_matches_torch(name, make, shape):
    ours, theirs = make(nn).double(), make(tnn).double()
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    _copy_weights(ours, theirs)
    _compare(ours, theirs, shape, train=True)
    # Twice more in training (running stats move), then in eval (running stats used).
    _compare(ours, theirs, shape, train=True, seed=1)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k].numpy(), v.numpy(), rtol=1e-9, err_msg=k)
    _compare(ours, theirs, shape, train=False, seed=2)


def test_float32_default_layers_agree_with_torch_in_float32():
    ours = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 5))
    theirs = tnn.Sequential(tnn.Conv2d(3, 4, 3), tnn.BatchNorm2d(4), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                            tnn.Linear(4 * 3 * 3, 5))
    _copy_weights(ours, theirs)
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    yt = ours(Tensor(x))
    assert yt.dtype == np.float32
    np.testing.assert_allclose(yt._array, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


LOSS_CASES = [
    ("ce", lambda m: m.CrossEntropyLoss(), "class"),
    ("ce_sum_smooth", lambda m: m.CrossEntropyLoss(reduction="sum", label_smoothing=0.2), "class"),
    ("ce_none", lambda m: m.CrossEntropyLoss(reduction="none"), "class"),
    ("ce_weight_smooth", lambda m: m.CrossEntropyLoss(weight=m_weight(m), label_smoothing=0.1), "class"),
    ("ce_ignore", lambda m: m.CrossEntropyLoss(ignore_index=1), "class"),
    ("ce_probs", lambda m: m.CrossEntropyLoss(label_smoothing=0.1), "probs"),
    ("nll", lambda m: m.NLLLoss(), "class"),
    ("nll_weight", lambda m: m.NLLLoss(weight=m_weight(m), reduction="mean"), "class"),
    ("mse", lambda m: m.MSELoss(), "real"),
    ("mse_sum", lambda m: m.MSELoss(reduction="sum"), "real"),
    ("l1", lambda m: m.L1Loss(), "real"),
    ("l1_none", lambda m: m.L1Loss(reduction="none"), "real"),
    ("bce", lambda m: m.BCEWithLogitsLoss(), "unit"),
    ("bce_pos_weight", lambda m: m.BCEWithLogitsLoss(pos_weight=m_pos_weight(m)), "unit"),
    ("bce_weight_sum", lambda m: m.BCEWithLogitsLoss(weight=m_pos_weight(m), reduction="sum"), "unit"),
]


def m_weight(m):
    w = np.array([0.5, 2.0, 1.0, 3.0])
    return torch.from_numpy(w) if m is tnn else w


def m_pos_weight(m):
    w = np.array([1.0, 3.0, 0.5, 2.0])
    return torch.from_numpy(w) if m is tnn else Tensor(w)


@pytest.mark.parametrize("name,make,kind", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_matches_torch(name, make, kind):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 4))
    if kind == "class":
        y = rng.integers(0, 4, 6)
    elif kind == "probs":
        y = rng.dirichlet(np.ones(4), 6)
    elif kind == "unit":
        y = rng.uniform(size=(6, 4))
    else:
        y = rng.standard_normal((6, 4))
    if name.startswith("nll"):
        x = x - np.log(np.exp(x).sum(1, keepdims=True))
    ours, theirs = make(nn), make(tnn)
    assert repr(ours) == repr(theirs)
    if name in ("ce_weight_smooth", "nll_weight"):
        ours.double()
    xt, xr = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    lt, lr = ours(xt, Tensor(y.copy())), theirs(xr, torch.from_numpy(y.copy()))
    np.testing.assert_allclose(lt._array, lr.detach().numpy(), rtol=1e-7, atol=1e-10)
    cot = rng.standard_normal(lr.shape)
    (lt * Tensor(cot)).sum().backward()
    (lr * torch.from_numpy(cot)).sum().backward()
    np.testing.assert_allclose(xt.grad._array, xr.grad.numpy(), rtol=1e-7, atol=1e-10)


def test_lenet_state_dict_and_repr_match_torch():
    def build(m):
        return m.Sequential(
            m.Conv2d(3, 6, 5), m.ReLU(), m.MaxPool2d(2, 2), m.Conv2d(6, 16, 5), m.BatchNorm2d(16), m.ReLU(),
            m.MaxPool2d(2, 2), m.Flatten(), m.Linear(16 * 5 * 5, 120), m.ReLU(), m.Dropout(0.25),
            m.Linear(120, 84), m.ReLU(), m.Linear(84, 10), m.LogSoftmax(dim=1))

    ours, theirs = build(nn), build(tnn)
    assert repr(ours) == repr(theirs)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    # A torch state dict (as numpy arrays) loads into trainkit and gives the same eval outputs.
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(ours.eval()(Tensor(x))._array, theirs.eval()(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_container_reprs_match_torch():
    def build(m):
        return m.ModuleDict({"blocks": m.ModuleList([m.Linear(3, 3) for _ in range(3)] + [m.ReLU(), m.ReLU()]),
                             "head": m.Sequential(m.Dropout(), m.Softmax(dim=1))})

    assert repr(build(nn)) == repr(build(tnn))
    assert repr(nn.ModuleList()) == repr(tnn.ModuleList())


def test_default_init_distribution_matches_torch_bounds():
    torch.manual_seed(0)
    theirs = tnn.Linear(300, 200)
    ours = nn.Linear(300, 200)
    bound = 1 / np.sqrt(300)
    for name in ("weight", "bias"):
        a, b = getattr(ours, name)._array, getattr(theirs, name).detach().numpy()
        assert abs(np.abs(a).max() - np.abs(b).max()) < 2e-3
        # Both close to the std of U(-bound, bound), within ~4 standard errors of a sample std.
        tol = 4 * 0.45 / np.sqrt(a.size) * bound / np.sqrt(3)
        assert abs(a.std() - bound / np.sqrt(3)) < tol and abs(b.std() - bound / np.sqrt(3)) < tol
