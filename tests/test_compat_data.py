"""trainkit.utils.data against torch.utils.data: collation, samplers, DataLoader arguments, datasets, transforms."""
from __future__ import annotations

import collections
import gzip
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainkit
from trainkit.data import transforms as T
from trainkit.utils import data as tkd

torch = pytest.importorskip("torch")
tud = torch.utils.data
Point = collections.namedtuple("Point", ["x", "y"])


def _to_torch(obj):
    """The same sample built with torch tensors (for the oracle)."""
    if isinstance(obj, trainkit.Tensor):
        return torch.from_numpy(obj.numpy().copy())
    if isinstance(obj, Point):
        return Point(*map(_to_torch, obj))
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_torch(v) for v in obj)
    return obj


def _same(ours, ref):
    if isinstance(ref, torch.Tensor):
        assert isinstance(ours, trainkit.Tensor), type(ours)
        assert str(ours.dtype).split(".")[1] == str(ref.dtype).split(".")[1]
        assert tuple(ours.shape) == tuple(ref.shape)
        np.testing.assert_array_equal(ours.numpy(), ref.numpy())
    elif isinstance(ref, dict):
        assert type(ours) is type(ref) and list(ours) == list(ref)
        for k in ref:
            _same(ours[k], ref[k])
    elif isinstance(ref, (list, tuple)):
        assert type(ours) is type(ref) and len(ours) == len(ref)
        for a, b in zip(ours, ref):
            _same(a, b)
    else:
        assert type(ours) is type(ref) and ours == ref


def _samples():
    shapes = st.lists(st.integers(1, 3), max_size=2)
    dtypes = st.sampled_from(["float32", "float64", "int64", "int32", "uint8", "bool"])
    arrays = st.builds(lambda s, d, seed: (np.random.default_rng(seed).normal(size=s) * 4).astype(d),
                       shapes, dtypes, st.integers(0, 9))
    leaf = st.one_of(
        st.integers(-10, 10), st.floats(-5, 5), st.booleans(), st.text(max_size=3),
        arrays, arrays.map(trainkit.from_numpy), arrays.map(lambda a: a.reshape(-1)[0] if a.size else np.float32(0)),
    )
    return st.recursive(leaf, lambda kids: st.one_of(
        st.tuples(kids, kids), st.lists(kids, min_size=1, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), kids, min_size=1, max_size=3),
        st.builds(Point, kids, kids)), max_leaves=6)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_default_collate_and_convert_match_torch(data):
    template = data.draw(_samples())
    # A batch of samples with the template's structure and dtypes, different values.
    n = data.draw(st.integers(1, 4))

    def vary(obj, k):
        if isinstance(obj, trainkit.Tensor):
            return trainkit.from_numpy((obj.numpy() + k).astype(obj.numpy().dtype))
        if isinstance(obj, np.ndarray):
            return (obj + k).astype(obj.dtype)
        if isinstance(obj, np.generic):
            return type(obj)(obj + k)
        if isinstance(obj, bool):
            return obj
        if isinstance(obj, (int, float)):
            return obj + k
        if isinstance(obj, Point):
            return Point(vary(obj.x, k), vary(obj.y, k))
        if isinstance(obj, dict):
            return {kk: vary(v, k) for kk, v in obj.items()}
        if isinstance(obj, tuple):
            return tuple(vary(v, k) for v in obj)
        return obj

    batch = [vary(template, k) for k in range(n)]
    ours = tkd.default_collate(batch)
    ref = tud.default_collate(_to_torch(batch))
    _same(ours, ref)
    _same(tkd.default_convert(template), tud.default_convert(_to_torch(template)))


def test_default_collate_errors_like_torch():
    for bad in ([object(), object()], [np.array(["a"]), np.array(["b"])]):
        with pytest.raises(TypeError) as ref:
            tud.default_collate(bad)
        with pytest.raises(TypeError) as ours:
            tkd.default_collate(bad)
        assert str(ours.value) == str(ref.value).replace("<class 'object'>", "<class 'object'>")
    with pytest.raises(RuntimeError, match="equal size"):
        tkd.default_collate([[1, 2], [3]])


# ----------------------------------------------------------------------------- DataLoader arguments
_DS = tkd.TensorDataset(trainkit.arange(10.0))
_TDS = tud.TensorDataset(torch.arange(10.0))


class _Stream(tkd.IterableDataset):
    def __iter__(self):
        return iter(range(7))


class _TStream(tud.IterableDataset):
    def __iter__(self):
        return iter(range(7))


@pytest.mark.parametrize("kwargs", [
    {"num_workers": -1}, {"timeout": -1}, {"prefetch_factor": 2}, {"num_workers": 2, "prefetch_factor": -1},
    {"persistent_workers": True}, {"shuffle": True, "sampler": "S"}, {"batch_sampler": "B", "batch_size": 2},
    {"batch_sampler": "B", "shuffle": True}, {"batch_sampler": "B", "sampler": "S"},
    {"batch_sampler": "B", "drop_last": True}, {"batch_size": None, "drop_last": True},
    {"multiprocessing_context": "spawn"}, {"iterable": True, "shuffle": True}, {"iterable": True, "sampler": "S"},
    {"iterable": True, "batch_sampler": "B"}, {"batch_size": 0}, {"batch_size": -3},
])
def test_dataloader_argument_conflicts_match_torch(kwargs):
    kwargs = dict(kwargs)
    iterable = kwargs.pop("iterable", False)
    ours_kw, ref_kw = dict(kwargs), dict(kwargs)
    for name, ours_v, ref_v in (("sampler", tkd.SequentialSampler(_DS), tud.SequentialSampler(_TDS)),
                                ("batch_sampler", tkd.BatchSampler(tkd.SequentialSampler(_DS), 2, False),
                                 tud.BatchSampler(tud.SequentialSampler(_TDS), 2, False))):
        if name in kwargs:
            ours_kw[name], ref_kw[name] = ours_v, ref_v
    with pytest.raises(ValueError) as ref:
        tud.DataLoader(_TStream() if iterable else _TDS, **ref_kw)
    with pytest.raises(ValueError) as ours:
        tkd.DataLoader(_Stream() if iterable else _DS, **ours_kw)
    strip = lambda m: m.split(", but got sampler=")[0].split(", but got batch_sampler=")[0]  # noqa: E731
    assert strip(str(ours.value)) == strip(str(ref.value))


def test_dataloader_accepts_worker_and_memory_arguments_and_loads_in_process():
    calls = []
    loader = tkd.DataLoader(_DS, batch_size=4, num_workers=3, pin_memory=True, timeout=5, prefetch_factor=4,
                            persistent_workers=True, worker_init_fn=calls.append, pin_memory_device="cpu",
                            multiprocessing_context="spawn", in_order=False)
    assert [b[0].tolist() for b in loader] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0]]
    assert calls == [] and tkd.get_worker_info() is None
    with pytest.raises(ValueError, match="should not be set"):
        loader.batch_size = 2


@pytest.mark.parametrize("make", [
    lambda m: m.DataLoader(m.TensorDataset(_t(m, 10)), batch_size=3),
    lambda m: m.DataLoader(m.TensorDataset(_t(m, 10)), batch_size=3, drop_last=True),
    lambda m: m.DataLoader(m.TensorDataset(_t(m, 10)), batch_size=None),
    lambda m: m.DataLoader(m.TensorDataset(_t(m, 10)), batch_sampler=m.BatchSampler(m.SequentialSampler(range(10)), 4,
                                                                                     False)),
    lambda m: m.DataLoader(m.TensorDataset(_t(m, 10)), sampler=m.SequentialSampler(range(5)), batch_size=2),
    lambda m: m.DataLoader(list(range(10)), batch_size=4, collate_fn=lambda b: sum(b)),
    lambda m: m.DataLoader([{"a": i, "b": float(i)} for i in range(5)], batch_size=2),
])
def test_deterministic_loaders_give_torchs_batches(make):
    ours, ref = list(make(tkd)), list(make(tud))
    assert len(make(tkd)) == len(make(tud)) == len(ref)
    _same(ours, ref)


def _t(m, n):
    return (trainkit if m is tkd else torch).arange(n * 1.0)


def test_iterable_datasets_like_torch():
    for kw in ({"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None}):
        _same(list(tkd.DataLoader(_Stream(), **kw)), list(tud.DataLoader(_TStream(), **kw)))
    with pytest.raises(TypeError):
        len(tkd.DataLoader(_Stream(), batch_size=2))
    chained = _Stream() + _Stream()
    assert list(tkd.DataLoader(chained, batch_size=None)) == list(range(7)) * 2


# ----------------------------------------------------------------------------- samplers (properties)
def test_random_sampler_properties_and_generators():
    assert sorted(tkd.RandomSampler(range(20))) == list(range(20))
    g1, g2 = trainkit.Generator().manual_seed(3), trainkit.Generator().manual_seed(3)
    assert list(tkd.RandomSampler(range(20), generator=g1)) == list(tkd.RandomSampler(range(20), generator=g2))
    long = list(tkd.RandomSampler(range(5), num_samples=13, generator=g1))
    assert len(long) == 13 and sorted(long[:5]) == sorted(long[5:10]) == list(range(5))  # whole permutations
    draws = np.array(list(tkd.RandomSampler(range(4), replacement=True, num_samples=4000, generator=g1)))
    assert np.all(np.abs(np.bincount(draws, minlength=4) / 4000 - 0.25) < 0.04)
    trainkit.manual_seed(5)
    a = list(tkd.RandomSampler(range(30)))
    trainkit.manual_seed(5)
    assert list(tkd.RandomSampler(range(30))) == a  # the global seed governs samplers without a generator
    for bad, exc in (({"replacement": 1}, TypeError), ({"num_samples": 0}, ValueError)):
        with pytest.raises(exc) as ours:
            tkd.RandomSampler(range(3), **bad)
        with pytest.raises(exc) as ref:
            tud.RandomSampler(range(3), **bad)
        assert str(ours.value) == str(ref.value)


def test_weighted_and_subset_samplers():
    g = trainkit.Generator().manual_seed(0)
    draws = np.array(list(tkd.WeightedRandomSampler([1.0, 0.0, 3.0], 8000, generator=g)))
    freq = np.bincount(draws, minlength=3) / 8000
    assert freq[1] == 0 and abs(freq[0] - 0.25) < 0.03 and abs(freq[2] - 0.75) < 0.03
    once = list(tkd.WeightedRandomSampler([1, 2, 3, 4], 4, replacement=False, generator=g))
    assert sorted(once) == [0, 1, 2, 3]
    with pytest.raises(RuntimeError):
        list(tkd.WeightedRandomSampler([1, 0], 2, replacement=False))
    with pytest.raises(ValueError, match="1d sequence"):
        tkd.WeightedRandomSampler([[1.0]], 1)
    assert sorted(tkd.SubsetRandomSampler([5, 7, 9], generator=g)) == [5, 7, 9]
    assert list(tkd.BatchSampler(range(7), 3, False)) == list(tud.BatchSampler(range(7), 3, False))
    assert len(tkd.BatchSampler(range(7), 3, True)) == len(tud.BatchSampler(range(7), 3, True)) == 2
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        tkd.BatchSampler(range(3), 0, False)


def test_shuffling_loader_with_generator_is_reproducible_and_resumable():
    ds = tkd.TensorDataset(trainkit.arange(20.0), trainkit.arange(20))
    run = lambda seed: [b[1].tolist() for b in tkd.DataLoader(  # noqa: E731
        ds, batch_size=6, shuffle=True, generator=trainkit.Generator().manual_seed(seed))]
    assert run(1) == run(1) and run(1) != run(2)
    assert sorted(sum(run(1), [])) == list(range(20))
    loader = tkd.DataLoader(ds, batch_size=6, shuffle=True, generator=trainkit.Generator().manual_seed(4))
    it = iter(loader)
    first = next(it)[1].tolist()
    state = json.loads(json.dumps(loader.state_dict()))
    rest = [b[1].tolist() for b in it]
    again = tkd.DataLoader(ds, batch_size=6, shuffle=True, generator=trainkit.Generator())
    again.load_state_dict(state)
    assert [b[1].tolist() for b in again] == rest and first not in rest
    trainkit.manual_seed(9)
    a = [b[1].tolist() for b in tkd.DataLoader(ds, batch_size=5, shuffle=True)]
    trainkit.manual_seed(9)
    assert [b[1].tolist() for b in tkd.DataLoader(ds, batch_size=5, shuffle=True)] == a
    with pytest.raises(TypeError, match="state_dict"):
        tkd.DataLoader(ds, sampler=tkd.SequentialSampler(ds)).state_dict()


# ----------------------------------------------------------------------------- datasets
def test_random_split_like_torch():
    parts = tkd.random_split(range(30), [0.3, 0.3, 0.4], generator=trainkit.Generator().manual_seed(42))
    ref = tud.random_split(range(30), [0.3, 0.3, 0.4], generator=torch.Generator().manual_seed(42))
    assert [len(p) for p in parts] == [len(p) for p in ref] == [9, 9, 12]
    assert sorted(sum((list(p) for p in parts), [])) == list(range(30))
    assert [len(p) for p in tkd.random_split(range(11), [0.5, 0.5])] == [len(p) for p in
                                                                         tud.random_split(range(11), [0.5, 0.5])]
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        tkd.random_split(range(2), [0.99, 0.01])
    for bad in ([5, 4], [0.5, 1.5]):
        with pytest.raises(ValueError) as ours:
            tkd.random_split(range(10), bad)
        with pytest.raises(ValueError) as ref_e:
            tud.random_split(range(10), bad)
        assert str(ref_e.value).split("!")[0] in str(ours.value)
    a = tkd.random_split(range(10), [5, 5], generator=trainkit.Generator().manual_seed(1))
    b = tkd.random_split(range(10), [5, 5], generator=trainkit.Generator().manual_seed(1))
    assert list(a[0]) == list(b[0])


def test_concat_stack_and_tensor_datasets_like_torch():
    a, b = tkd.TensorDataset(trainkit.arange(3.0)), tkd.TensorDataset(trainkit.arange(3.0, 5.0))
    ta, tb = tud.TensorDataset(torch.arange(3.0)), tud.TensorDataset(torch.arange(3.0, 5.0))
    cat, tcat = tkd.ConcatDataset([a, b]), tud.ConcatDataset([ta, tb])
    assert len(cat) == len(tcat) == 5 and cat.cumulative_sizes == tcat.cumulative_sizes
    for i in range(-5, 5):
        _same(cat[i], tcat[i])
    _same(list(tkd.DataLoader(a + b, batch_size=2)), list(tud.DataLoader(ta + tb, batch_size=2)))
    st_, tst = tkd.StackDataset(x=a, y=a), tud.StackDataset(x=ta, y=ta)
    _same(st_[1], tst[1])
    item = a[1]
    assert isinstance(item, tuple) and isinstance(item[0], trainkit.Tensor) and item[0].item() == 1.0
    with pytest.raises(ValueError, match="Size mismatch"):
        tkd.TensorDataset(trainkit.zeros(3), trainkit.zeros(4))


# ----------------------------------------------------------------------------- transforms
def test_torchvision_style_per_sample_transforms():
    img = np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4).transpose(1, 2, 0)  # HWC, as a PIL image gives
    to_t = T.ToTensor()(img)
    assert isinstance(to_t, trainkit.Tensor) and to_t.shape == (3, 5, 4) and to_t.dtype == trainkit.float32
    np.testing.assert_allclose(to_t.numpy(), img.transpose(2, 0, 1) / 255, rtol=1e-6)
    norm = T.Normalize((0.5, 0.25, 0.1), (0.5, 0.5, 0.2))(to_t)
    assert isinstance(norm, trainkit.Tensor)
    ref = (torch.from_numpy(img.transpose(2, 0, 1).copy()).float() / 255
           - torch.tensor([0.5, 0.25, 0.1]).view(3, 1, 1)) / torch.tensor([0.5, 0.5, 0.2]).view(3, 1, 1)
    np.testing.assert_allclose(norm.numpy(), ref.numpy(), rtol=1e-6, atol=1e-7)
    pipeline = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,)), T.Lambda(lambda x: trainkit.flatten(x))])
    out = pipeline(np.full((1, 4, 4), 128, np.uint8))
    assert isinstance(out, trainkit.Tensor) and out.shape == (16,)
    batch = pipeline.apply_batch(np.full((3, 1, 4, 4), 128, np.uint8))
    assert batch.shape == (3, 16)
    np.testing.assert_allclose(batch[0], out.numpy())
    with pytest.raises(TypeError, match="should be callable"):
        T.Lambda(3)
    assert T.Lambda(lambda x: x + 1)(1) == 2


def _idx(arr: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


def _mnist(root, n=12):
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images, 2051)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels, 2049)))
    return images, labels


def test_mnist_has_torchvisions_attributes_and_items(tmp_path):
    from trainkit.data import datasets

    images, labels = _mnist(tmp_path)
    ds = datasets.MNIST(tmp_path, train=True, download=False,
                        transform=T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]),
                        target_transform=lambda y: y * 10)
    assert isinstance(ds.data, trainkit.Tensor) and ds.data.shape == (12, 28, 28) and ds.data.dtype == trainkit.uint8
    assert isinstance(ds.targets, trainkit.Tensor) and ds.targets.dtype == trainkit.int64
    np.testing.assert_array_equal(ds.data.numpy(), images)
    x, y = ds[3]
    assert isinstance(x, trainkit.Tensor) and x.shape == (1, 28, 28) and y == 30 and type(y) is int
    np.testing.assert_allclose(x.numpy()[0], (images[3] / 255 - 0.1307) / 0.3081, rtol=1e-5)
    # The siamese example's use: data.unsqueeze(1).clone() and targets.clone() as numpy.
    pairs = ds.data.unsqueeze(1).clone()
    assert pairs.shape == (12, 1, 28, 28) and np.array(ds.targets.clone()).tolist() == labels.tolist()
    xb, yb = next(iter(tkd.DataLoader(ds, batch_size=4)))  # target_transform: item by item, still collated
    assert xb.shape == (4, 1, 28, 28) and yb.tolist() == [0, 10, 20, 30] and yb.dtype == trainkit.int64
    ds.data, ds.targets = ds.data[:5], ds.targets[:5]  # the tutorials' way of taking a subset
    assert len(ds) == 5 and ds.input_shape == (1, 28, 28)
    plain = datasets.MNIST(tmp_path, train=False)
    raw_x, raw_y = plain[0]
    assert raw_x.shape == (1, 28, 28) and raw_x.dtype == np.uint8 and raw_y == 0
    fast = next(iter(tkd.DataLoader(plain, batch_size=12)))  # fast batch path: built-in conventions
    assert fast[0].dtype == trainkit.float32 and float(fast[0].numpy().max()) <= 1.0


def test_cifar_data_and_targets_are_torchvision_shaped(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fakedata import write_cifar10

    from trainkit.data import datasets

    write_cifar10(tmp_path, per_batch=4, test=6)
    ds = datasets.CIFAR10(tmp_path, train=False)
    assert isinstance(ds.data, np.ndarray) and ds.data.shape == (6, 32, 32, 3) and ds.data.dtype == np.uint8
    assert isinstance(ds.targets, list) and ds.targets == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(ds.data[2], ds.input_array[2].transpose(1, 2, 0))
    x, y = datasets.CIFAR10(tmp_path, train=False, transform=T.ToTensor())[2]
    np.testing.assert_allclose(x.numpy(), ds.data[2].transpose(2, 0, 1) / 255, rtol=1e-6)
    sub = tkd.Subset(ds, [1, 3])
    assert sub.targets == [1, 3]
    ds.data = ds.data[:2]
    ds.targets = ds.targets[:2]
    assert len(ds) == 2 and ds.input_array.shape == (2, 3, 32, 32)
