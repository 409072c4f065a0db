"""DataLoader, datasets, splits and transforms: batching, dtypes, exact resume, item/batch agreement."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trainkit.autograd.tensor import Tensor
from trainkit.data import ArrayDataset, DataLoader, Subset, TensorDataset, holdout_split, random_split
from trainkit.data import transforms as T


def _images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8), np.arange(n) % 4)


def _epoch(loader):
    return [(x.numpy().copy(), y.numpy().copy()) for x, y in loader]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x1, x2) and np.array_equal(y1, y2)
                                    for (x1, y1), (x2, y2) in zip(a, b))


def test_batches_cover_dataset_once_with_dtypes():
    x = np.random.default_rng(0).standard_normal((10, 3))
    ds = TensorDataset(x, np.arange(10))
    loader = DataLoader(ds, batch_size=4, shuffle=True, seed=1)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[1].numpy()) for b in batches] == [4, 4, 2]
    xb, yb = batches[0]
    # A TensorDataset batch is what default_collate builds in PyTorch: dtypes kept (float64 stays float64).
    assert isinstance(xb, Tensor) and xb.numpy().dtype == np.float64 and yb.numpy().dtype == np.int64
    seen = np.concatenate([b[1].numpy() for b in batches])
    assert sorted(seen) == list(range(10)) and list(seen) != list(range(10))
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x[seen])
    assert len(DataLoader(ds, batch_size=4, drop_last=True)) == 2
    assert [len(b[1].numpy()) for b in DataLoader(ds, batch_size=4, drop_last=True)] == [4, 4]


def test_unshuffled_order_and_uint8_scaled():
    ds = _images(10)
    xs = [x.numpy() for x, _ in DataLoader(ds, batch_size=3)]
    np.testing.assert_allclose(np.concatenate(xs), ds.data.astype(np.float32) / 255, rtol=1e-6)


def test_generic_per_item_path_for_user_datasets():
    class Squares:
        def __len__(self):
            return 7

        def __getitem__(self, i):
            return np.full(2, i, dtype=np.float64), i * i

    batches = list(DataLoader(Squares(), batch_size=3, transform=T.Normalize(1.0, 2.0)))
    x, y = batches[0]
    assert x.numpy().shape == (3, 2) and x.numpy().dtype == np.float32
    np.testing.assert_allclose(x.numpy()[:, 0], (np.arange(3) - 1) / 2)
    assert list(y.numpy()) == [0, 1, 4] and y.numpy().dtype == np.int64


def test_subset_and_random_split():
    ds = TensorDataset(np.arange(10.0)[:, None], np.arange(10))
    a, b = random_split(ds, [7, 3], seed=0)
    a2, _ = random_split(ds, [7, 3], seed=0)
    assert len(a) == 7 and len(b) == 3 and list(a.indices) == list(a2.indices)
    assert set(a.indices) | set(b.indices) == set(range(10))
    parts = random_split(ds, [0.5, 0.3, 0.2], seed=1)
    assert [len(p) for p in parts] == [5, 3, 2]
    ys = np.concatenate([y.numpy() for _, y in DataLoader(b, batch_size=2)])
    assert list(ys) == list(b.indices)
    with pytest.raises(ValueError, match="do not add up"):
        random_split(ds, [5, 4])
    assert Subset(_images(10), [1, 2]).classes is None  # metadata forwarded


def test_stratified_holdout_keeps_class_shares():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    keep, held = holdout_split(labels, 100, 0.2, seed=3)
    assert np.bincount(labels[held]).tolist() == [10, 6, 4]
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == 100
    keep2, held2 = holdout_split(labels, 100, 0.2, seed=3)
    assert np.array_equal(held, held2)
    assert not np.array_equal(held, holdout_split(labels, 100, 0.2, seed=4)[1])


def test_state_dict_is_json_and_resume_at_epoch_boundary_reproduces_order_and_augmentation():
    aug = T.Compose([T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(), T.ToTensor()])
    ds = _images(40)
    loader = DataLoader(ds, batch_size=8, shuffle=True, seed=5, transform=aug)
    _epoch(loader)
    state = json.loads(json.dumps(loader.state_dict()))
    expected = _epoch(loader)
    expected2 = _epoch(loader)
    fresh = DataLoader(ds, batch_size=8, shuffle=True, seed=123, transform=aug)
    fresh.load_state_dict(state)
    assert _same(_epoch(fresh), expected) and _same(_epoch(fresh), expected2)
    # The augmentation really is random: a different seed gives different crops.
    other = DataLoader(ds, batch_size=8, shuffle=False, seed=6, transform=aug)
    plain = DataLoader(ds, batch_size=8, shuffle=False, seed=5, transform=aug)
    assert not _same(_epoch(other), _epoch(plain))


def test_resume_mid_epoch_continues_exactly():
    aug = T.Compose([T.RandomHorizontalFlip(), T.ToTensor()])
    ds = _images(40)
    ref = DataLoader(ds, batch_size=8, shuffle=True, seed=9, transform=aug)
    full = _epoch(ref)
    loader = DataLoader(ds, batch_size=8, shuffle=True, seed=9, transform=aug)
    it = iter(loader)
    next(it), next(it)
    state = json.loads(json.dumps(loader.state_dict()))
    assert state["batches_done"] == 2
    resumed = DataLoader(ds, batch_size=8, shuffle=True, seed=0, transform=aug)
    resumed.load_state_dict(state)
    assert _same(_epoch(resumed), full[2:])
    assert _same(_epoch(resumed), _epoch(ref))  # and the following epoch matches too


def test_load_state_dict_rejects_garbage():
    loader = DataLoader(_images(8), batch_size=2)
    with pytest.raises(ValueError, match="not a DataLoader state"):
        loader.load_state_dict({"nope": 1})
    state = loader.state_dict()
    state["batches_done"] = 99
    with pytest.raises(ValueError, match="batches done"):
        loader.load_state_dict(state)


def test_transforms_item_and_batch_agree():
    ds = _images(6)
    norm = T.Compose([T.ToTensor(), T.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])])
    batch = norm.apply_batch(ds.data)
    for i in range(6):
        np.testing.assert_allclose(norm(ds.data[i]), batch[i], rtol=1e-6)
    # The same generator state gives the same random draws item-wise and batch-wise.
    crop = T.RandomCrop(8, padding=3)
    one = crop(ds.data[0], rng=np.random.default_rng(1))
    assert one.shape == (3, 8, 8)
    np.testing.assert_array_equal(one, crop.apply_batch(ds.data[:1], np.random.default_rng(1))[0])


def test_to_tensor_hwc_and_grey():
    hwc = np.random.default_rng(0).integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    out = T.ToTensor().apply_batch(hwc)
    assert out.shape == (2, 3, 5, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[1, 2], hwc[1, :, :, 2] / 255, rtol=1e-6)
    assert T.ToTensor()(hwc[0]).shape == (3, 5, 6)
    assert T.ToTensor()(np.zeros((4, 4), np.uint8)).shape == (1, 4, 4)


def test_random_crop_and_flip_semantics():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    crops = T.RandomCrop(4, padding=1).apply_batch(x, np.random.default_rng(0))
    assert crops.shape == x.shape
    for c, orig in zip(crops, x):  # every crop is a shifted window of the zero-padded image
        padded = np.pad(orig[0], 1)
        assert any(np.array_equal(c[0], padded[i:i + 4, j:j + 4]) for i in range(3) for j in range(3))
    flipped = T.RandomHorizontalFlip(p=1.0).apply_batch(x)
    np.testing.assert_array_equal(flipped, x[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0).apply_batch(x), x)
    before = x.copy()
    T.RandomHorizontalFlip(p=1.0)(x[0])
    np.testing.assert_array_equal(x, before)  # input never modified in place
    with pytest.raises(ValueError):
        T.RandomHorizontalFlip(p=2)
    with pytest.raises(ValueError):
        T.Normalize([0.5], [0.0])


def test_matches_torchvision_semantics_of_to_tensor_and_normalize():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 5, 5), dtype=np.uint8)
    mean, std = [0.4914, 0.4822, 0.4465], [0.247, 0.243, 0.261]
    ours = T.Compose([T.ToTensor(), T.Normalize(mean, std)]).apply_batch(x)
    ref = (torch.from_numpy(x).float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_utils_data_mirror():
    from trainkit.utils.data import DataLoader as DL, Dataset, Subset as S, TensorDataset as TD

    assert DL is DataLoader and S is Subset and TD is TensorDataset and Dataset is not None


def test_every_sample_once_per_epoch_for_any_sizes():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.integers(0, 50), st.integers(1, 20), st.booleans(), st.booleans())
    def check(n, batch_size, shuffle, drop_last):
        ds = TensorDataset(np.arange(n, dtype=np.float32)[:, None], np.arange(n))
        loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=0)
        ys = [y.numpy() for _, y in loader]
        assert len(ys) == len(loader)
        seen = np.concatenate(ys) if ys else np.arange(0)
        expected = n - n % batch_size if drop_last else n
        assert len(seen) == expected and len(set(seen.tolist())) == expected
        assert all(len(y) == batch_size for y in ys[:-1])

    check()
