"""trainkit.save / trainkit.load: round trips of the native format, and PyTorch-written .pt files (oracle)."""
from __future__ import annotations

import io
import json
import math
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit
from trainkit import nn
from trainkit.serialization import SerializationError, UnsafePickleError

torch = pytest.importorskip("torch")


def _np(t):
    """The values of a trainkit or torch tensor as numpy (bfloat16 widened)."""
    if isinstance(t, torch.Tensor):
        t = t.detach()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    return t.detach().numpy()


def _same_tree(ours, ref):
    """Structural equality of a loaded object against the torch object it came from."""
    if isinstance(ref, torch.Tensor):
        assert isinstance(ours, trainkit.Tensor), type(ours)
        assert tuple(ours.shape) == tuple(ref.shape)
        assert ours.requires_grad == ref.requires_grad
        assert isinstance(ours, nn.Parameter) == isinstance(ref, torch.nn.Parameter)
        np.testing.assert_array_equal(_np(ours), _np(ref))
    elif isinstance(ref, dict):
        assert type(ours) is type(ref) and list(ours) == list(ref)
        for k in ref:
            _same_tree(ours[k], ref[k])
    elif isinstance(ref, (list, tuple)):
        assert type(ours) is type(ref) and len(ours) == len(ref)
        for a, b in zip(ours, ref):
            _same_tree(a, b)
    elif isinstance(ref, float) and math.isnan(ref):
        assert math.isnan(ours)
    else:
        assert ours == ref and type(ours) is type(ref), (ours, ref)


# ----------------------------------------------------------------------------- native format
def test_native_round_trip_nested_values_and_tensors(tmp_path):
    t = trainkit.arange(6).reshape(2, 3)
    p = nn.Parameter(trainkit.ones(3, dtype=trainkit.float64))
    obj = {
        "state": OrderedDict([("w", t), ("p", p)]),
        0: [1, -2.5, float("nan"), float("inf"), None, True, "text", b"\x00\xff", (1, (2, 3))],
        (1, "k"): {"nested": [trainkit.zeros(0), trainkit.tensor(3.5)]},
        "meta": [trainkit.Size([2, 3]), trainkit.float16, trainkit.device("cpu"), 1 + 2j, {4, 5}],
        "np": np.arange(4, dtype=np.int16), "scalar": np.float64(0.25),
    }
    path = tmp_path / "obj.pt"
    trainkit.save(obj, path)
    back = trainkit.load(path)
    assert list(back) == list(obj) and isinstance(back["state"], OrderedDict)
    assert back["state"]["w"].dtype == trainkit.int64 and back["state"]["w"].tolist() == t.tolist()
    assert isinstance(back["state"]["p"], nn.Parameter) and back["state"]["p"].requires_grad
    assert back["state"]["p"].dtype == trainkit.float64
    vals = back[0]
    assert vals[:2] == [1, -2.5] and math.isnan(vals[2]) and vals[3] == math.inf
    assert vals[4:] == [None, True, "text", b"\x00\xff", (1, (2, 3))]
    assert back[(1, "k")]["nested"][0].shape == (0,) and back[(1, "k")]["nested"][1].item() == 3.5
    size, dt, dev, c, s = back["meta"]
    assert isinstance(size, trainkit.Size) and size == (2, 3) and dt is trainkit.float16
    assert dev == trainkit.device("cpu") and c == 1 + 2j and s == {4, 5}
    assert back["np"].dtype == np.int16 and back["scalar"] == 0.25 and isinstance(back["scalar"], np.float64)


def test_native_file_is_plain_safetensors_and_keeps_sharing(tmp_path):
    from safetensors.numpy import load_file

    model = nn.Linear(3, 2)
    sd = model.state_dict()
    path = tmp_path / "sd.pt"
    trainkit.save({"a": sd, "again": sd}, path)
    raw = load_file(str(path))
    assert len(raw) == 2  # the repeated state dict shares its arrays: stored once
    back = trainkit.load(path)
    back["a"]["weight"][0, 0] = 42.0  # in-place writes through one reference show in the other
    assert back["again"]["weight"][0, 0].item() == 42.0
    assert model.load_state_dict(back["a"]) is not None and model.weight[0, 0].item() == 42.0


def test_native_save_to_file_objects_and_plain_safetensors_load(tmp_path):
    buf = io.BytesIO()
    trainkit.save([trainkit.ones(2)], buf)
    buf.seek(0)
    assert trainkit.load(buf)[0].tolist() == [1.0, 1.0]
    from safetensors.numpy import save_file

    save_file({"b": np.zeros(2, np.float32), "a": np.ones(1, np.int32)}, str(tmp_path / "w.safetensors"))
    sd = trainkit.load(tmp_path / "w.safetensors")
    assert list(sd) == ["a", "b"] and sd["a"].dtype == trainkit.int32


def test_native_save_refuses_objects_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "x.pt"
    trainkit.save({"ok": 1}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="cannot store"):
        trainkit.save({"bad": object()}, path)
    with pytest.raises(TypeError, match="cannot store"):
        trainkit.save(trainkit.zeros(2, dtype=trainkit.complex128), path)
    with pytest.raises(ValueError, match="deeper"):
        deep: list = []
        for _ in range(300):
            deep = [deep]
        trainkit.save(deep, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]


def _tree(depth=3):
    leaves = st.one_of(
        st.integers(-2**70, 2**70), st.floats(allow_nan=True, width=64), st.booleans(), st.none(),
        st.text(max_size=8), st.binary(max_size=8),
        st.builds(lambda shape, dt, seed: trainkit.tensor(np.random.default_rng(seed).normal(size=shape) * 5)
                  .to(dt), st.lists(st.integers(0, 3), max_size=3),
                  st.sampled_from([trainkit.float32, trainkit.float64, trainkit.int64, trainkit.uint8,
                                   trainkit.bool, trainkit.float16, trainkit.int8]), st.integers(0, 99)),
    )
    keys = st.one_of(st.integers(-5, 5), st.text(max_size=5), st.tuples(st.integers(0, 3), st.text(max_size=2)))
    return st.recursive(leaves, lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.tuples(kids, kids), st.dictionaries(keys, kids, max_size=4)),
        max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(obj=_tree())
def test_native_round_trip_random_trees(obj):
    buf = io.BytesIO()
    trainkit.save(obj, buf)
    buf.seek(0)
    back = trainkit.load(buf)

    def same(a, b):
        if isinstance(b, trainkit.Tensor):
            assert isinstance(a, trainkit.Tensor) and a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        elif isinstance(b, dict):
            assert type(a) is type(b) and list(a) == list(b)
            for k in b:
                same(a[k], b[k])
        elif isinstance(b, (list, tuple)):
            assert type(a) is type(b) and len(a) == len(b)
            for x, y in zip(a, b):
                same(x, y)
        elif isinstance(b, float) and math.isnan(b):
            assert isinstance(a, float) and math.isnan(a)
        else:
            assert type(a) is type(b) and a == b

    same(back, obj)


def test_native_hostile_headers_are_refused(tmp_path):
    import safetensors.numpy as stn

    def write(meta_tree, arrays=None):
        data = stn.save(arrays or {"0": np.zeros(1, np.float32)},
                        metadata={"trainkit.save": json.dumps({"version": 1, "tree": meta_tree})})
        path = tmp_path / "h.pt"
        path.write_bytes(data)
        return path

    for tree, msg in [({"$tensor": "7", "grad": False}, "missing tensor"),
                      ({"$eval": "os.system('x')"}, "unknown tag"),
                      ({"$tensor": "0", "grad": "yes"}, "requires_grad"),
                      ({"$dict": [[1]]}, "pairs"),
                      ({"$dict": [[{"$list": []}, 1]]}, "unhashable"),
                      ({"$float": "1e999999"}, "bad float")]:
        with pytest.raises(SerializationError, match=msg):
            trainkit.load(write(tree))
    deep: object = 1
    for _ in range(400):
        deep = {"$list": [deep]}
    with pytest.raises(SerializationError, match="deeper"):
        trainkit.load(write(deep))
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(write([1]).read_bytes()[:-3])
    with pytest.raises(SerializationError, match="safetensors"):
        trainkit.load(bad)
    (tmp_path / "junk").write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(SerializationError, match="not a file written by"):
        trainkit.load(tmp_path / "junk")
    with pytest.raises(SerializationError, match="no such file"):
        trainkit.load(tmp_path / "missing.pt")
    with pytest.raises(SerializationError, match="directory"):
        trainkit.load(tmp_path)


def test_map_location_forms(tmp_path):
    trainkit.save({"x": trainkit.ones(1)}, tmp_path / "a.pt")
    torch.save({"x": torch.ones(1)}, tmp_path / "b.pt")
    for path in (tmp_path / "a.pt", tmp_path / "b.pt"):
        for ml in (None, "cpu", trainkit.device("cpu"), {"cuda:0": "cpu"}, lambda storage, loc: storage):
            assert trainkit.load(path, map_location=ml, weights_only=True)["x"].tolist() == [1.0]
        for ml in ("cuda", trainkit.device("cuda", 0), {"cpu": "cuda:1"}):
            with pytest.raises(RuntimeError, match="CPU only"):
                trainkit.load(path, map_location=ml)


# ----------------------------------------------------------------------------- PyTorch files (oracle)
def _torch_round_trip(tmp_path, obj, name="t.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return trainkit.load(path)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8,
                                   torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool,
                                   torch.complex64, torch.complex128, torch.uint16])
def test_torch_tensors_of_each_dtype(tmp_path, dtype):
    ref = (torch.arange(-6, 6).reshape(3, 4) * 1.25).to(dtype)
    ours = _torch_round_trip(tmp_path, ref)
    assert tuple(ours.shape) == (3, 4)
    expected = np.float32 if dtype == torch.bfloat16 else _np(ref).dtype
    assert ours.numpy().dtype == expected
    np.testing.assert_array_equal(ours.numpy(), _np(ref))


def test_torch_views_offsets_strides_and_shared_storage(tmp_path):
    base = torch.arange(24.0).reshape(4, 6)
    views = {"base": base, "slice": base[1:, ::2], "t": base.t(), "col": base[:, 3], "expand": base[0, :1].expand(5, 3),
             "empty": base[4:], "scalar": base[2, 2], "narrow": base.narrow(1, 2, 3)}
    ours = _torch_round_trip(tmp_path, views)
    for k, v in views.items():
        assert tuple(ours[k].shape) == tuple(v.shape), k
        np.testing.assert_array_equal(ours[k].numpy(), v.numpy(), err_msg=k)
    ours["base"][1, 2] = -1.0  # one storage in torch: one buffer here
    assert ours["slice"][0, 1].item() == -1.0 and ours["t"][2, 1].item() == -1.0


def test_torch_nested_containers_and_plain_values(tmp_path):
    t = torch.randn(2, 2)
    ref = {"model": OrderedDict([("w", t)]), "epoch": 3, "lr": 0.5, "name": "run", "flags": [True, None],
           "tup": (t, 1, (2.5, "x")), 7: {"k": [torch.tensor(1), torch.tensor([1.5])]}, "bytes": b"ab",
           "set": {1, 2}, "c": 1 - 2j, "size": t.shape, "dtype": torch.float64, "dev": torch.device("cpu"),
           "param": torch.nn.Parameter(torch.ones(2)), "frozen": torch.nn.Parameter(torch.ones(1), requires_grad=False),
           "nan": float("nan")}
    ours = _torch_round_trip(tmp_path, ref)
    for k in ("model", "epoch", "lr", "name", "flags", "tup", 7, "bytes", "set", "c", "param", "frozen", "nan"):
        _same_tree(ours[k], ref[k])
    assert ours["size"] == (2, 2) and isinstance(ours["size"], trainkit.Size)
    assert ours["dtype"] is trainkit.float64 and ours["dev"] == trainkit.device("cpu")


def test_torch_optimizer_state_dict(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.9), weight_decay=0.01, amsgrad=True)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    ref = opt.state_dict()
    ours = _torch_round_trip(tmp_path, ref)
    _same_tree(ours, ref)
    assert list(ours["state"]) == [0, 1, 2, 3] and ours["param_groups"][0]["betas"] == (0.8, 0.9)


def test_torch_model_state_dict_loads_into_the_same_trainkit_model(tmp_path):
    torch.manual_seed(1)
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 3))
    ref.train()
    ref(torch.randn(8, 3, 5, 5))  # running statistics move away from their defaults
    ref.eval()
    sd = _torch_round_trip(tmp_path, ref.state_dict())
    assert isinstance(sd, OrderedDict) and sd._metadata["1"]["version"] == 2
    ours = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 3))
    ours.load_state_dict(sd)
    ours.eval()
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(ours(trainkit.tensor(x)).detach().numpy(),
                               ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_torch_file_objects_and_parameters_requires_grad(tmp_path):
    buf = io.BytesIO()
    torch.save({"w": torch.nn.Parameter(torch.ones(2, 2))}, buf)
    buf.seek(0)
    out = trainkit.load(buf)
    assert isinstance(out["w"], nn.Parameter) and out["w"].requires_grad
    out["w"].sum().backward()
    assert out["w"].grad.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_torch_tensors_with_python_attributes_use_rebuild_from_type(tmp_path):
    t = torch.ones(2)
    t.note = "kept by torch"  # pickled through _rebuild_from_type_v2 with a state
    with pytest.raises(UnsafePickleError, match="extra Python attributes"):
        _torch_round_trip(tmp_path, {"t": t})


def test_load_weights_file_finds_nested_state_dicts(tmp_path):
    from trainkit.serialization import load_weights_file

    sd = {"w": torch.ones(2)}
    for name, obj in (("flat.pt", sd), ("ckpt.pth", {"epoch": 3, "model_state_dict": sd, "opt": {"lr": 1}})):
        torch.save(obj, tmp_path / name)
        got = load_weights_file(tmp_path / name)
        assert list(got) == ["w"] and got["w"].tolist() == [1.0, 1.0]
    torch.save({"epoch": 1}, tmp_path / "none.pt")
    with pytest.raises(SerializationError, match="no state dict"):
        load_weights_file(tmp_path / "none.pt")
    trainkit.save(OrderedDict(w=trainkit.zeros(1)), tmp_path / "ours.pt")
    assert list(load_weights_file(tmp_path / "ours.pt")) == ["w"]
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(1, np.float32)}, str(tmp_path / "plain.safetensors"))
    assert load_weights_file(tmp_path / "plain.safetensors") is None  # left to the checkpoint reader


def test_errors_are_checkpoint_errors_and_torch_types():
    from trainkit.errors import CheckpointError

    assert issubclass(UnsafePickleError, pickle.UnpicklingError) and issubclass(UnsafePickleError, CheckpointError)
    assert issubclass(SerializationError, RuntimeError) and issubclass(SerializationError, CheckpointError)


@pytest.mark.parametrize("make", [lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.95)),
                                  lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)])
def test_a_torch_training_checkpoint_resumes_in_trainkit_step_for_step(tmp_path, make):
    torch.manual_seed(0)
    ref = torch.nn.Linear(3, 2)
    opt = make(ref.parameters())
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(4)]
    for x in batches[:2]:
        opt.zero_grad()
        ref(torch.from_numpy(x)).pow(2).sum().backward()
        opt.step()
    torch.save({"model": ref.state_dict(), "optimizer": opt.state_dict(), "epoch": 2}, tmp_path / "ckpt.pt")
    ckpt = trainkit.load(tmp_path / "ckpt.pt", weights_only=True)
    ours = nn.Linear(3, 2)
    ours.load_state_dict(ckpt["model"])
    ours_opt = getattr(trainkit.optim, type(opt).__name__)(ours.parameters(), lr=123.0)
    ours_opt.load_state_dict(ckpt["optimizer"])
    for x in batches[2:]:
        opt.zero_grad()
        ref(torch.from_numpy(x)).pow(2).sum().backward()
        opt.step()
        ours_opt.zero_grad()
        ours(trainkit.tensor(x)).pow(2).sum().backward()
        ours_opt.step()
    np.testing.assert_allclose(ours.weight.detach().numpy(), ref.weight.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert ours_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
