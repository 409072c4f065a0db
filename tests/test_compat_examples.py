"""Programs written the way PyTorch's examples are (pytorch/examples: mnist, siamese_network,
mnist_forward_forward), run with ``import trainkit as torch`` on tiny local MNIST files.

They exercise the API surface those programs touch: the device preamble, torchvision-style
datasets and transforms, DataLoader, StepLR, state-dict save/load. Layers and ops that other
parts of the project add (Adadelta, smooth_l1_loss, ...) are used when present.
"""
from __future__ import annotations

import gzip
import random
import struct

import numpy as np
import pytest

import trainkit as torch
import trainkit.nn as nn
import trainkit.nn.functional as F
import trainkit.optim as optim
from trainkit.data import datasets, transforms
from trainkit.optim.lr_scheduler import StepLR
from trainkit.utils.data import DataLoader, Dataset


def _write_mnist(root, n=96, seed=0):
    """MNIST IDX files whose digits are learnable: a bright bar at a label-dependent row."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28), dtype=np.uint8)
    for i, y in enumerate(labels):
        images[i, 2 + 2 * y: 4 + 2 * y, 4:24] = 250
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(
            struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes()))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(
            struct.pack(">II", 2049, n) + labels.tobytes()))
    return root


class Net(nn.Module):
    """The network of pytorch/examples/mnist, layer for layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def train(model, device, train_loader, optimizer, epoch, dry_run):
    model.train()
    losses = []
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if dry_run:
            break
    return losses


def evaluate(model, device, test_loader):
    model.eval()
    test_loss, correct = 0, 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    return test_loss / len(test_loader.dataset), correct


def test_mnist_example_program(tmp_path):
    root = _write_mnist(tmp_path / "data", n=32)
    use_accel = torch.accelerator.is_available()
    device = torch.accelerator.current_accelerator() if use_accel else torch.device("cpu")
    torch.manual_seed(1)
    train_kwargs, test_kwargs = {"batch_size": 16}, {"batch_size": 32}
    if use_accel:  # pragma: no cover - the example's accelerator branch; never taken here
        train_kwargs.update({"num_workers": 1, "pin_memory": True, "shuffle": True})
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    dataset1 = datasets.MNIST(root, train=True, download=False, transform=transform)
    dataset2 = datasets.MNIST(root, train=False, transform=transform)
    train_loader = DataLoader(dataset1, **train_kwargs)
    test_loader = DataLoader(dataset2, **test_kwargs)
    model = Net().to(device)
    make_opt = getattr(optim, "Adadelta", None)
    optimizer = make_opt(model.parameters(), lr=1.0) if make_opt else optim.SGD(model.parameters(), lr=0.05)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    losses = []
    for epoch in range(1, 3):
        losses += train(model, device, train_loader, optimizer, epoch, dry_run=True)  # the example's --dry-run
        test_loss, correct = evaluate(model, device, test_loader)
        scheduler.step()
    assert len(losses) == 2 and np.isfinite(losses).all() and np.isfinite(test_loss) and 0 <= correct <= len(dataset2)
    assert optimizer.param_groups[0]["lr"] == pytest.approx((1.0 if make_opt else 0.05) * 0.7 ** 2)
    torch.save(model.state_dict(), tmp_path / "mnist_cnn.pt")
    again = Net()
    again.load_state_dict(torch.load(tmp_path / "mnist_cnn.pt", map_location=device, weights_only=True))
    again.eval(), model.eval()
    x = next(iter(test_loader))[0][:4]
    np.testing.assert_array_equal(again(x).detach().numpy(), model(x).detach().numpy())


def test_mnist_forward_forward_data_pipeline(tmp_path):
    root = _write_mnist(tmp_path / "data")
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,)),
                                    transforms.Lambda(lambda x: torch.flatten(x))])
    train_loader = DataLoader(datasets.MNIST(root, train=True, download=True, transform=transform),
                              batch_size=50, shuffle=True)
    x, y = next(iter(train_loader))
    assert x.shape == (50, 784) and x.dtype == torch.float32 and y.shape == (50,) and y.dtype == torch.int64
    ds = datasets.MNIST(root, train=True, transform=transform)
    per_sample = torch.stack([ds[int(i)][0] for i in range(96)])
    rows = {tuple(np.round(r, 4)) for r in per_sample.numpy()}
    assert all(tuple(np.round(r, 4)) in rows for r in x.numpy())  # the batch path gives per-sample results
    x_ = x.clone()
    x_[range(x.shape[0]), y] = x.max()  # the overlay of the label, as the example does
    assert x_[0, int(y[0])].item() == x.max().item()
    rnd = torch.randperm(x.size(0))
    assert sorted(rnd.tolist()) == list(range(50))


class APP_MATCHER(Dataset):
    """pytorch/examples/siamese_network's dataset: pairs of images, target 1 for the same class."""

    def __init__(self, root, train, download=False):
        super().__init__()
        self.dataset = datasets.MNIST(root, train=train, download=download)
        self.data = self.dataset.data.unsqueeze(1).clone()
        self.group_examples()

    def group_examples(self):
        np_arr = np.array(self.dataset.targets.clone(), dtype=None, copy=None)
        self.grouped_examples = {}
        for i in range(0, 10):
            self.grouped_examples[i] = np.where((np_arr == i))[0]

    def __len__(self):
        return self.data.shape[0]

    def __getitem__(self, index):
        selected_class = random.randint(0, 9)
        random_index_1 = random.randint(0, self.grouped_examples[selected_class].shape[0] - 1)
        index_1 = self.grouped_examples[selected_class][random_index_1]
        image_1 = self.data[index_1].clone().float()
        if index % 2 == 0:
            random_index_2 = random.randint(0, self.grouped_examples[selected_class].shape[0] - 1)
            index_2 = self.grouped_examples[selected_class][random_index_2]
            image_2 = self.data[index_2].clone().float()
            target = torch.tensor(1, dtype=torch.float)
        else:
            other_selected_class = random.randint(0, 9)
            while other_selected_class == selected_class:
                other_selected_class = random.randint(0, 9)
            random_index_2 = random.randint(0, self.grouped_examples[other_selected_class].shape[0] - 1)
            index_2 = self.grouped_examples[other_selected_class][random_index_2]
            image_2 = self.data[index_2].clone().float()
            target = torch.tensor(0, dtype=torch.float)
        return image_1, image_2, target


def test_siamese_network_dataset_and_loader(tmp_path):
    root = _write_mnist(tmp_path / "data")
    random.seed(0)
    train_dataset = APP_MATCHER(root, train=True, download=False)
    train_loader = DataLoader(train_dataset, batch_size=16, shuffle=True)
    images_1, images_2, targets = next(iter(train_loader))
    assert images_1.shape == images_2.shape == (16, 1, 28, 28) and images_1.dtype == torch.float32
    assert targets.shape == (16,) and targets.dtype == torch.float32 and set(targets.tolist()) <= {0.0, 1.0}
    assert float(images_1.max().item()) == 250.0  # raw pixel values, as the example feeds them


def test_device_preamble_and_checkpoint_dict(tmp_path):
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    use_cuda = torch.cuda.is_available()
    use_mps = torch.backends.mps.is_available()
    device = torch.device("cuda" if use_cuda else "mps" if use_mps else "cpu")
    assert device == torch.device("cpu") and str(device) == "cpu"
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).to(device)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = model(torch.randn(5, 4, device=device) if _accepts_device() else torch.randn(5, 4)).sum()
    loss.backward()
    optimizer.step()
    torch.save({"epoch": 3, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(), "loss": loss.item()}, tmp_path / "ckpt.tar")
    ckpt = torch.load(tmp_path / "ckpt.tar", weights_only=True)
    fresh = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    fresh.load_state_dict(ckpt["model_state_dict"])
    opt2 = optim.SGD(fresh.parameters(), lr=0.5)
    opt2.load_state_dict(ckpt["optimizer_state_dict"])
    assert ckpt["epoch"] == 3 and opt2.param_groups[0]["lr"] == 0.1 and opt2.param_groups[0]["momentum"] == 0.9
    for a, b in zip(fresh.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def _accepts_device() -> bool:
    import inspect

    return "device" in inspect.signature(torch.randn).parameters
