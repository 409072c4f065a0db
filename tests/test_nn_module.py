"""Module mechanics: registration, traversal, modes, state_dict, containers and repr."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import trainkit.nn as nn
from trainkit.autograd.tensor import Tensor
from trainkit.errors import CheckpointError


def _x(*shape, seed=0, dtype=np.float32):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
        self.register_buffer("steps", Tensor(np.zeros((), dtype=np.int64)))
        self.register_buffer("cache", Tensor(np.zeros(2, dtype=np.float32)), persistent=False)
        self.plain = Tensor(np.zeros(3, dtype=np.float32))  # not registered: a plain attribute
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(3, 2))

    def forward(self, x):
        return self.head(self.bn(self.fc1(x))) * self.scale


# ------------------------------------------------------------------ Parameter
def test_parameter_shares_storage_keeps_dtype_and_requires_grad():
    arr = np.arange(6, dtype=np.float64).reshape(2, 3)
    p = nn.Parameter(arr)
    assert isinstance(p, Tensor) and p.requires_grad and p.dtype == np.float64
    arr[0, 0] = 42.0
    assert p._array[0, 0] == 42.0
    t = Tensor(np.zeros(2, dtype=np.float32))
    q = nn.Parameter(t, requires_grad=False)
    assert q._array is t._array and not q.requires_grad
    assert repr(p).startswith("Parameter containing:\n")


# --------------------------------------------------------------- registration
def test_registration_and_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "head.1.weight", "head.1.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "steps", "cache", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [n for n, _ in net.named_children()] == ["fc1", "bn", "head"]
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "bn", "head", "head.0", "head.1"]
    assert len(list(net.modules())) == 6
    assert net.fc1 is net._modules["fc1"] and net.scale is net._parameters["scale"]
    assert "plain" not in dict(net.named_parameters()) and "plain" not in dict(net.named_buffers())
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'nope'"):
        net.nope


def test_shared_parameter_listed_once_and_state_dict_keeps_both_names():
    a = nn.Linear(3, 3)
    model = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_reassignment_keeps_position_and_type_checks():
    net = Net()
    net.fc1 = nn.Linear(4, 3)
    assert [n for n, _ in net.named_children()] == ["fc1", "bn", "head"]
    with pytest.raises(TypeError, match="parameter 'scale'"):
        net.scale = Tensor(np.ones(1, dtype=np.float32))
    with pytest.raises(TypeError, match="child module 'fc1'"):
        net.fc1 = 3
    net.fc1 = None  # allowed, like PyTorch
    assert "fc1.weight" not in dict(net.named_parameters())
    del net.head
    assert "head" not in dict(net.named_children())


def test_assignment_before_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1, dtype=np.float32))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()


def test_register_buffer_and_parameter_validate():
    m = nn.Module()
    with pytest.raises(KeyError):
        m.register_buffer("a.b", None)
    with pytest.raises(TypeError):
        m.register_parameter("w", Tensor(np.zeros(1)))
    m.register_parameter("w", None)
    assert m.w is None and list(m.parameters()) == []


def test_forward_missing_raises():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


# -------------------------------------------------------------------- modes
def test_train_eval_recursive_and_apply_order():
    net = Net()
    assert net.training and net.head[1].training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError):
        net.train("yes")
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "BatchNorm1d", "ReLU", "Linear", "Sequential", "Net"]


def test_zero_grad_and_requires_grad():
    net = Net()
    net(_x(5, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad._array.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_double_casts_in_place_keeping_parameter_objects():
    net = Net()
    before = list(net.parameters())
    net.double()
    assert list(net.parameters()) == before
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.bn.num_batches_tracked.dtype == np.int64
    assert net(_x(3, 4, dtype=np.float64)).dtype == np.float64
    net.to(np.float32)
    assert net.fc1.weight.dtype == np.float32
    assert net.to("cpu") is net and net.cpu() is net and net.fc1.weight.dtype == np.float32
    net.to("cpu", dtype=np.float64)
    assert net.fc1.weight.dtype == np.float64
    with pytest.raises(RuntimeError, match="CPU only"):
        net.to("cuda:0")


# --------------------------------------------------------------- state dict
def test_state_dict_order_sharing_and_no_grad():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == ["scale", "steps", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "bn.running_mean",
                        "bn.running_var", "bn.num_batches_tracked", "head.1.weight", "head.1.bias"]
    assert "cache" not in sd  # non-persistent
    assert not any(v.requires_grad for v in sd.values())
    assert not any(isinstance(v, nn.Parameter) for v in sd.values())
    net.fc1.weight._array[0, 0] = 7.0
    assert sd["fc1.weight"]._array[0, 0] == 7.0  # shares storage
    assert sd["bn.num_batches_tracked"].dtype == np.int64


def test_state_dict_round_trip_gives_identical_outputs():
    a, b = Net(), Net()
    a.train()(_x(8, 4))  # move the running stats away from their initial values
    a.eval(), b.eval()
    x = _x(4, 4, seed=1)
    assert not np.allclose(a(x)._array, b(x)._array)
    result = b.load_state_dict({k: Tensor(v._array.copy()) for k, v in a.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    np.testing.assert_array_equal(a(x)._array, b(x)._array)
    assert b.bn.num_batches_tracked._array == 1


def test_load_state_dict_casts_to_model_dtype_in_place():
    m = nn.Linear(2, 2)
    w = m.weight
    storage = m.weight._array
    m.load_state_dict({"weight": np.ones((2, 2), dtype=np.float64), "bias": Tensor(np.zeros(2))})
    assert m.weight is w and m.weight._array is storage
    assert m.weight.dtype == np.float32 and np.all(storage == 1)


def test_strict_load_reports_everything_at_once_and_changes_nothing():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    before = m[0].weight._array.copy()
    bad = {"0.weight": np.zeros((3, 5), np.float32), "2.weight": np.zeros((2, 3), np.float32),
           "2.bias": np.zeros(2, np.float32), "extra.thing": np.zeros(1, np.float32)}
    with pytest.raises(nn.StateDictError) as info:
        m.load_state_dict(bad)
    msg = str(info.value)
    assert msg == (
        "Error(s) in loading state_dict for Sequential:\n"
        '\tMissing key(s) in state_dict: "0.bias". \n'
        '\tUnexpected key(s) in state_dict: "extra.thing". \n'
        "\tsize mismatch for 0.weight: copying a param with shape (3, 5) from checkpoint, "
        "the shape in current model is (3, 4)."
    )
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, CheckpointError)
    np.testing.assert_array_equal(m[0].weight._array, before)


def test_non_strict_load_returns_keys_but_still_rejects_shape_mismatch():
    m = nn.Linear(2, 2)
    res = m.load_state_dict({"weight": np.ones((2, 2), np.float32), "foo": np.ones(1)}, strict=False)
    assert res.missing_keys == ["bias"] and res.unexpected_keys == ["foo"]
    assert np.all(m.weight._array == 1)
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        m.load_state_dict({"weight": np.ones((3, 2), np.float32)}, strict=False)


# --------------------------------------------------------------- containers
def test_sequential_indexing_slicing_and_editing():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    s = nn.Sequential(*layers)
    assert len(s) == 3 and list(s) == layers and s[-1] is layers[2]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub._modules) == ["1", "2"] and sub[0] is layers[1]
    with pytest.raises(IndexError):
        s[3]
    s.append(nn.Sigmoid())
    assert list(s._modules) == ["0", "1", "2", "3"]
    del s[1]
    assert list(s._modules) == ["0", "1", "2"] and s[1] is layers[2]
    s.insert(0, nn.Identity())
    assert isinstance(s[0], nn.Identity) and s[1] is layers[0]
    s[0] = nn.Tanh()
    assert isinstance(s[0], nn.Tanh)
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and named.fc is named[0]
    out = nn.Sequential(nn.Linear(2, 3), nn.ReLU())(_x(5, 2))
    assert out.shape == (5, 3) and out._array.min() >= 0


def test_modulelist_and_moduledict():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    ml.append(nn.ReLU())
    assert len(ml) == 4 and [n for n, _ in ml.named_parameters()][:2] == ["0.weight", "0.bias"]
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    del ml[0]
    assert list(ml._modules) == ["0", "1", "2"]
    md = nn.ModuleDict({"enc": nn.Linear(2, 3), "dec": nn.Linear(3, 2)})
    assert list(md) == ["enc", "dec"] and "enc" in md and len(md) == 2
    assert [n for n, _ in md.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert isinstance(md.pop("enc"), nn.Linear) and list(md.keys()) == ["dec"]


def test_deepcopy_gives_an_independent_model():
    import copy

    net = Net()
    twin = copy.deepcopy(net)
    assert isinstance(twin.fc1.weight, nn.Parameter) and twin.fc1.weight.requires_grad
    twin.fc1.weight._array[...] = 0
    assert net.fc1.weight._array.any()
    assert list(twin.state_dict()) == list(net.state_dict())


# --------------------------------------------------------------------- repr
LENET_REPR = """LeNet(
  (conv1): Conv2d(3, 6, kernel_size=(5, 5), stride=(1, 1))
  (pool): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (conv2): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
  (fc1): Linear(in_features=400, out_features=120, bias=True)
  (fc2): Linear(in_features=120, out_features=84, bias=True)
  (fc3): Linear(in_features=84, out_features=10, bias=True)
  (head): Sequential(
    (0): BatchNorm1d(10, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    (1): Dropout(p=0.5, inplace=False)
    (2): LogSoftmax(dim=1)
  )
)"""


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
        self.head = nn.Sequential(nn.BatchNorm1d(10), nn.Dropout(), nn.LogSoftmax(dim=1))

    def forward(self, x):
        import trainkit.nn.functional as F

        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.head(self.fc3(x))


def test_lenet_repr_matches_pytorch_format_and_runs():
    net = LeNet()
    assert repr(net) == LENET_REPR
    assert net(_x(2, 3, 32, 32)).shape == (2, 10)


def test_layer_reprs():
    assert repr(nn.Conv2d(1, 2, (3, 1), stride=2, padding=1, bias=False)) == \
        "Conv2d(1, 2, kernel_size=(3, 1), stride=(2, 2), padding=(1, 1), bias=False)"
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.AvgPool2d(2)) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"
    assert repr(nn.AdaptiveAvgPool2d((1, 1))) == "AdaptiveAvgPool2d(output_size=(1, 1))"
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(nn.Sequential()) == "Sequential()"
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()])
    assert repr(ml) == ("ModuleList(\n  (0-1): 2 x Linear(in_features=2, out_features=2, bias=True)\n"
                        "  (2): ReLU()\n)")
