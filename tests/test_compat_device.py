"""The CPU-only device API, dtypes, Size, generators, seeding, inference_mode and printing, against PyTorch."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit
from trainkit import nn

torch = pytest.importorskip("torch")

_DTYPES = ["float16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32", "int64", "uint8",
           "uint16", "uint32", "uint64", "bool"]
_ALIASES = ["float", "double", "half", "cfloat", "cdouble", "long", "int", "short"]


# ----------------------------------------------------------------------------- device
@pytest.mark.parametrize("args", [("cpu",), ("cpu", 0), ("cpu:3",), ("cuda",), ("cuda:1",), ("cuda", 2), ("mps",),
                                  ("meta",)])
def test_device_matches_torch(args):
    ours, ref = trainkit.device(*args), torch.device(*args)
    assert (str(ours), ours.type, ours.index) == (str(ref), ref.type, ref.index)
    assert repr(ours) == repr(ref)
    assert trainkit.device(ours) == ours and hash(trainkit.device(*args)) == hash(ours)
    assert (ours == "cpu") is (ref == "cpu") is False  # a device never equals a string


@pytest.mark.parametrize("args", [("foo",), ("cuda:x",), ("cpu", -1), ("cpu:0", 1), (0,)])
def test_bad_devices_raise_like_torch(args):
    with pytest.raises(RuntimeError) as ref:
        torch.device(*args)
    with pytest.raises(RuntimeError) as ours:
        trainkit.device(*args)
    if args[0] in ("foo", "cuda:x") or args == ("cpu", -1):
        assert str(ours.value) == str(ref.value)


def test_cpu_moves_are_no_ops_and_accelerators_fail_clearly():
    x = trainkit.ones(2, 3)
    for target in ("cpu", trainkit.device("cpu"), trainkit.device("cpu", 0)):
        assert x.to(target) is x and x.to(device=target) is x
    assert x.cpu() is x and x.device == trainkit.device("cpu") and not x.is_cuda
    for bad in ("cuda", "cuda:0", trainkit.device("cuda"), "mps"):
        with pytest.raises(RuntimeError, match="CPU only"):
            x.to(bad)
        with pytest.raises(RuntimeError, match="CPU only"):
            x.to(device=bad, dtype=trainkit.float64)
    with pytest.raises(RuntimeError, match="CPU only"):
        x.cuda()
    with pytest.raises(RuntimeError, match="CPU only"):
        nn.Linear(2, 2).cuda()
    with pytest.raises(RuntimeError, match="CPU only"):
        nn.Linear(2, 2).to("cuda")
    with pytest.raises(RuntimeError, match="CPU only"):
        with trainkit.device("cuda"):
            pass
    with trainkit.device("cpu"):
        assert trainkit.get_default_device() == trainkit.device("cpu")


def test_tensor_to_overloads_match_torch():
    ours, ref = trainkit.arange(6).reshape(2, 3), torch.arange(6).reshape(2, 3)
    cases = [((trainkit.float64,), (torch.float64,)), (("cpu", trainkit.float32), ("cpu", torch.float32)),
             ((), ()), ((trainkit.zeros(1, dtype=trainkit.float16),), (torch.zeros(1, dtype=torch.float16),))]
    for a, b in cases:
        o, r = ours.to(*a), ref.to(*b)
        assert str(o.dtype).split(".")[1] == str(r.dtype).split(".")[1]
    o = ours.to(dtype=trainkit.float32, non_blocking=True)
    assert o.dtype == trainkit.float32
    same = ours.to(trainkit.int64)
    assert same is ours
    copied = ours.to(trainkit.int64, copy=True)
    assert copied is not ours and copied.tolist() == ours.tolist()
    x = trainkit.ones(2, requires_grad=True)
    x.to(trainkit.float64).sum().backward()  # a dtype change stays differentiable
    assert x.grad.tolist() == [1.0, 1.0]


def test_module_to_dtype_device_and_casts():
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    assert m.to("cpu") is m and m.to(trainkit.device("cpu"), trainkit.float64) is m
    assert all(p.dtype == trainkit.float64 for p in m.parameters())
    assert m.state_dict()["1.num_batches_tracked"].dtype == trainkit.int64  # integer buffers untouched
    m.half()
    assert m[0].weight.dtype == trainkit.float16
    m.to(trainkit.zeros(1))  # a tensor: its dtype
    assert m[0].weight.dtype == trainkit.float32
    m.float().double()
    assert m[0].weight.dtype == trainkit.float64
    with pytest.raises(TypeError, match="floating point"):
        m.to(trainkit.int64)
    assert m.cpu() is m


# ----------------------------------------------------------------------------- dtype
@pytest.mark.parametrize("name", _DTYPES + _ALIASES)
def test_dtype_attributes_match_torch(name):
    ours, ref = getattr(trainkit, name), getattr(torch, name)
    assert isinstance(ours, trainkit.dtype)
    assert ours.is_floating_point == ref.is_floating_point
    assert ours.is_complex == ref.is_complex
    assert ours.is_signed == ref.is_signed
    assert ours.itemsize == ref.itemsize
    assert repr(ours).replace("trainkit", "torch") == repr(ref)
    t = trainkit.zeros(2, dtype=ours)
    assert t.dtype is ours and t.dtype == ours and t.dtype == np.dtype(str(ref).split(".")[1])
    assert np.zeros(2, dtype=ours).dtype == t.numpy().dtype  # numpy takes it as a dtype
    assert copy.deepcopy(ours) is ours and pickle.loads(pickle.dumps(ours)) is ours


def test_dtype_equality_hashing_and_numpy_interplay():
    assert trainkit.float32 == np.float32 and np.dtype("float32") == trainkit.float32
    assert trainkit.float32 != trainkit.float64 and trainkit.float32 != "nonsense"
    assert trainkit.float16.name == "float16" and trainkit.float32.kind == "f" and trainkit.int8.type is np.int8
    assert {np.dtype("int64"): "x"}[trainkit.int64] == "x" and {trainkit.int64: "y"}[np.dtype("int64")] == "y"
    assert trainkit.float is trainkit.float32 and trainkit.long is trainkit.int64 and trainkit.int is trainkit.int32
    assert trainkit.float32.to_complex() is trainkit.complex64 and trainkit.complex128.to_real() is trainkit.float64
    assert trainkit.get_default_dtype() is trainkit.float32
    assert trainkit.tensor([1.5]).dtype is trainkit.float32 and trainkit.tensor([1]).dtype is trainkit.int64
    assert trainkit.finfo(trainkit.float32).eps == torch.finfo(torch.float32).eps
    assert trainkit.finfo().max == torch.finfo().max and trainkit.iinfo(trainkit.int16).max == torch.iinfo(torch.int16).max


# ----------------------------------------------------------------------------- Size
@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=4))
def test_size_matches_torch(dims):
    ours, ref = trainkit.zeros(*dims).shape if dims else trainkit.Size(), torch.Size(dims)
    assert isinstance(ours, trainkit.Size) and isinstance(ours, tuple)
    assert ours == ref == tuple(dims) and ours.numel() == ref.numel()
    assert repr(ours).replace("trainkit", "torch") == repr(ref)
    assert isinstance(ours[1:], trainkit.Size) and isinstance(ours + (2,), trainkit.Size)
    assert isinstance((2,) + ours, trainkit.Size)
    if dims:
        assert type(ours[0]) is int and trainkit.zeros(*dims).size() == ours and trainkit.zeros(*dims).size(0) == dims[0]


def test_size_rejects_non_integers_like_torch():
    with pytest.raises(TypeError, match="item 0 is 'float'"):
        trainkit.Size([1.5])
    assert trainkit.Size(np.array([2, 3])) == (2, 3)


# ----------------------------------------------------------------------------- generators and seeds
def test_generator_api_and_reproducibility():
    g = trainkit.Generator()
    assert g.initial_seed() == torch.Generator().initial_seed() and g.device == trainkit.device("cpu")
    assert g.manual_seed(7) is g and g.initial_seed() == 7
    a = trainkit.randn(5, generator=g)
    g.manual_seed(7)
    assert trainkit.randn(5, generator=g).tolist() == a.tolist()
    state = g.get_state()
    assert state.dtype == trainkit.uint8 and state.ndim == 1
    x = trainkit.rand(3, generator=g)
    g.set_state(state)
    assert trainkit.rand(3, generator=g).tolist() == x.tolist()
    assert trainkit.randperm(10, generator=trainkit.Generator().manual_seed(1)).tolist() == \
        trainkit.randperm(10, generator=trainkit.Generator().manual_seed(1)).tolist()
    assert trainkit.randint(0, 100, (6,), generator=trainkit.Generator().manual_seed(2)).tolist() == \
        trainkit.randint(0, 100, (6,), generator=trainkit.Generator().manual_seed(2)).tolist()
    s = g.seed()
    assert g.initial_seed() == s and 0 <= s < 2**64
    clone = copy.deepcopy(g)
    assert isinstance(clone, trainkit.Generator) and clone.random() == g.random()
    with pytest.raises(RuntimeError, match="not a generator state"):
        g.set_state(trainkit.tensor([1, 2, 3], dtype=trainkit.uint8))
    with pytest.raises(RuntimeError, match="CPU only"):
        trainkit.Generator(device="cuda")
    g.manual_seed(-1)
    assert g.initial_seed() == 2**64 - 1  # PyTorch wraps negative seeds the same way
    assert torch.Generator().manual_seed(-1).initial_seed() == 2**64 - 1


def test_global_seed_functions_behave_as_torch():
    g = trainkit.manual_seed(123)
    assert g is trainkit.default_generator and trainkit.initial_seed() == 123
    a = trainkit.rand(4)
    trainkit.manual_seed(123)
    assert trainkit.rand(4).tolist() == a.tolist() and nn.Linear(2, 2) is not None
    s = trainkit.seed()
    assert trainkit.initial_seed() == s
    assert trainkit.random.initial_seed() == s  # the torch.random module's functions too
    with pytest.raises(RuntimeError, match="Overflow"):
        trainkit.manual_seed(2**64)
    trainkit.manual_seed(0)


# ----------------------------------------------------------------------------- cuda / backends / modes
def test_cuda_backends_and_accelerator_answer_cpu_only():
    assert trainkit.cuda.is_available() is False and trainkit.cuda.device_count() == 0
    trainkit.cuda.manual_seed(1), trainkit.cuda.manual_seed_all(1), trainkit.cuda.empty_cache()
    with pytest.raises(RuntimeError, match="CPU only"):
        trainkit.cuda.synchronize()
    assert trainkit.accelerator.is_available() is False and trainkit.accelerator.current_accelerator() is None
    assert trainkit.backends.mps.is_available() is False and trainkit.backends.cudnn.is_available() is False
    import trainkit.backends.cudnn as cudnn

    cudnn.benchmark, cudnn.deterministic = True, True
    assert trainkit.backends.cudnn.deterministic is True
    cudnn.benchmark, cudnn.deterministic = False, False
    trainkit.backends.cuda.matmul.allow_tf32 = True
    trainkit.use_deterministic_algorithms(True)
    assert trainkit.are_deterministic_algorithms_enabled()
    trainkit.use_deterministic_algorithms(False)
    trainkit.set_float32_matmul_precision("high")
    assert trainkit.get_float32_matmul_precision() == "high"
    trainkit.set_float32_matmul_precision("highest")
    with pytest.raises(RuntimeError):
        trainkit.set_float32_matmul_precision("fastest")


def test_inference_mode_as_context_and_decorators():
    w = trainkit.ones(2, requires_grad=True)
    with trainkit.inference_mode():
        assert not trainkit.is_grad_enabled() and trainkit.is_inference_mode_enabled()
        assert not (w * 2).requires_grad
    assert trainkit.is_grad_enabled() and not trainkit.is_inference_mode_enabled()
    with trainkit.inference_mode(False):
        assert (w * 2).requires_grad

    @trainkit.inference_mode()
    def f(x):
        return x * 2

    @trainkit.inference_mode
    def g(x):
        return x * 3

    assert not f(w).requires_grad and not g(w).requires_grad and trainkit.is_grad_enabled()
    with trainkit.no_grad():
        with trainkit.inference_mode():
            pass
        assert not trainkit.is_grad_enabled()  # restores what was there, not "enabled"


# ----------------------------------------------------------------------------- printing
@pytest.mark.parametrize("values", [[1.5, 2.25], [1.0, 2.0], [1e-8, 1.0], [0.123456, -7.0], [3], [True, False]])
def test_repr_matches_torch(values):
    assert repr(trainkit.tensor(values)) == repr(torch.tensor(values))


def test_set_printoptions_matches_torch():
    try:
        for kwargs in ({"precision": 2}, {"sci_mode": True}, {"profile": "short"}):
            trainkit.set_printoptions(**kwargs)
            torch.set_printoptions(**kwargs)
            assert repr(trainkit.tensor([1.23456, 2.5])) == repr(torch.tensor([1.23456, 2.5]))
        trainkit.set_printoptions(profile="default", threshold=5, edgeitems=1)
        torch.set_printoptions(profile="default", threshold=5, edgeitems=1)
        assert "..." in repr(trainkit.arange(10.0)) and "..." in repr(torch.arange(10.0))
        with pytest.raises(ValueError, match="profile"):
            trainkit.set_printoptions(profile="tiny")
    finally:
        trainkit.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")


def test_factories_take_device_and_new_methods_match_torch():
    for name, args in (("zeros", (2, 3)), ("ones", (2,)), ("empty", (1,)), ("rand", (2,)), ("randn", (2,))):
        assert getattr(trainkit, name)(*args, device="cpu").shape == args
        with pytest.raises(RuntimeError, match="CPU only"):
            getattr(trainkit, name)(*args, device="cuda")
    assert trainkit.arange(3, device=trainkit.device("cpu")).tolist() == [0, 1, 2]
    assert trainkit.tensor([1.5], device="cpu").tolist() == [1.5]
    assert trainkit.full((2,), 7, device="cpu").tolist() == [7, 7]
    assert trainkit.zeros_like(trainkit.ones(2), device="cpu").tolist() == [0.0, 0.0]
    assert trainkit.randperm(4, device="cpu", dtype=trainkit.int32).dtype == trainkit.int32
    ours, ref = trainkit.ones(2, dtype=trainkit.float64), torch.ones(2, dtype=torch.float64)
    for method, args in (("new_zeros", (2, 3)), ("new_ones", ((3,),)), ("new_full", ((2,), 4)),
                         ("new_tensor", ([1, 2],)), ("new_empty", (2,))):
        o, r = getattr(ours, method)(*args), getattr(ref, method)(*args)
        assert tuple(o.shape) == tuple(r.shape) and str(o.dtype).split(".")[1] == str(r.dtype).split(".")[1]
        if method != "new_empty":
            assert o.tolist() == r.tolist()
    assert ours.new_zeros(2, dtype=trainkit.int64).dtype == trainkit.int64
    assert ours.is_floating_point() and not trainkit.arange(2).is_floating_point()
    assert ours.element_size() == ref.element_size() and ours.nbytes == ref.nbytes
    assert ours.get_device() == ref.get_device() == -1


def test_randint_takes_torchs_two_overloads():
    """``randint(high, size)`` (nanoGPT's ``torch.randint(len(data) - block, (batch,))``) and
    ``randint(low, high, size)``, with a tuple, a list or a Size: in range, int64 unless ``dtype``."""
    for args, lo, hi in [((10, (500,)), 0, 10), ((10, [500]), 0, 10), ((3, 7, (500,)), 3, 7),
                         ((5, trainkit.Size([20, 25])), 0, 5)]:
        t = trainkit.randint(*args)
        assert t.dtype == trainkit.int64 and t.numel() == 500
        v = t.numpy()
        assert v.min() == lo and v.max() == hi - 1
    assert tuple(trainkit.randint(4, (2, 3), dtype=trainkit.int32).shape) == (2, 3)
    assert trainkit.randint(4, (2, 3), dtype=trainkit.int32).dtype == trainkit.int32
