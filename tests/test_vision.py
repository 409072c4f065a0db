"""trainkit.vision: torchvision's names for datasets/transforms, the ResNet family and the image helpers.

The golden values were produced by torchvision 0.28 (with torch 2.13) from the same inputs; torchvision
itself is not needed to run these tests.
"""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

import trainkit as torch
import trainkit.data
import trainkit.nn as nn
import trainkit.vision as torchvision
from trainkit.vision import models
from trainkit.vision.utils import make_grid, save_image

#: name -> (sha256[:16] of the "key:shape" lines of the state dict, parameter count, state-dict entries),
#: from ``torchvision.models.<name>(weights=None)``.
TORCHVISION = {
    "resnet18": ("3e58b0798c806a0c", 11689512, 122),
    "resnet34": ("97e365907d64da74", 21797672, 218),
    "resnet50": ("781bb16f43b8f96f", 25557032, 320),
    "resnext50_32x4d": ("7140c3dbddac5382", 25028904, 320),
}


def _layout(model) -> tuple:
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    return (hashlib.sha256(lines.encode()).hexdigest()[:16], sum(p.numel() for p in model.parameters()),
            len(model.state_dict()))


def test_torchvision_import_paths_reach_trainkit_data():
    import trainkit.vision.datasets as datasets
    import trainkit.vision.transforms as transforms

    assert transforms is trainkit.data.transforms and datasets is trainkit.data.datasets
    assert torchvision.datasets.MNIST is trainkit.data.datasets.MNIST
    assert torchvision.transforms.Lambda is trainkit.data.transforms.Lambda


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_resnet_state_dict_layout_is_torchvisions(name):
    assert _layout(getattr(models, name)()) == TORCHVISION[name]


def test_resnet18_initialisation_follows_torchvision():
    torch.manual_seed(0)
    m = models.resnet18(num_classes=10)
    assert [n for n, _ in m.named_children()] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                                                  "layer4", "avgpool", "fc"]
    w = m.layer3[0].conv2.weight.detach().numpy()
    assert w.std() == pytest.approx(np.sqrt(2 / (256 * 9)), rel=0.03)  # kaiming_normal_, fan_out, relu
    assert (m.layer1[0].bn1.weight.detach().numpy() == 1).all() and (m.bn1.bias.detach().numpy() == 0).all()
    assert m.fc.out_features == 10 and m.layer1[0].downsample is None and m.layer2[0].downsample is not None
    assert m.layer2[0].conv1.stride == (2, 2) and m.maxpool.padding == 1 and m.layer1[0].relu.inplace
    z = models.resnet18(zero_init_residual=True)
    assert (z.layer4[1].bn2.weight.detach().numpy() == 0).all()


def test_resnet18_as_the_siamese_example_uses_it():
    """Swap conv1 for one input channel, drop fc by slicing children(), run a batch forward and backward."""
    torch.manual_seed(0)
    resnet = models.resnet18(weights=None)
    resnet.conv1 = nn.Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)
    fc_in = resnet.fc.in_features
    trunk = nn.Sequential(*(list(resnet.children())[:-1]))
    x = torch.randn(3, 1, 28, 28)
    out = trunk(x)
    assert fc_in == 512 and out.shape == (3, 512, 1, 1)
    out.sum().backward()
    assert trunk[0].weight.grad is not None and trunk[0].weight.grad.shape == (64, 1, 7, 7)
    trunk.eval()
    with torch.no_grad():
        a, b = trunk(x[:1]), trunk(x)[:1]
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)  # eval: per-sample, batch-independent


def test_resnet_refuses_pretrained_weights_and_builds_grouped_and_dilated_variants():
    with pytest.raises(ValueError, match="no pretrained weights"):
        models.resnet18(weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="no pretrained weights"):
        models.resnet18(pretrained=True)
    rx = models.resnext50_32x4d(num_classes=3)
    assert rx.layer1[0].conv2.groups == 32 and rx.layer1[0].conv2.weight.shape == (128, 4, 3, 3)
    dil = models.resnet50(num_classes=3, replace_stride_with_dilation=[False, True, True])
    assert dil.layer4[1].conv2.dilation == (4, 4) and dil.layer4[1].conv2.padding == (4, 4)
    assert dil.layer4[0].conv2.dilation == (2, 2) and dil.layer4[0].downsample[0].stride == (1, 1)
    assert dil(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1"):
        models.ResNet(models.BasicBlock, [2, 2, 2, 2], groups=2)


def test_make_grid_matches_torchvision():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).reshape(2, 1, 3, 3) / 17
    g = make_grid(x, nrow=1, padding=1, normalize=True, pad_value=0.25)
    expected = np.full((9, 5), 0.25, np.float32)
    expected[1:4, 1:4] = np.arange(9).reshape(3, 3) / 17
    expected[5:8, 1:4] = np.arange(9, 18).reshape(3, 3) / 17
    assert g.shape == (3, 9, 5) and g.dtype == torch.float32
    for c in range(3):  # one channel repeated to RGB
        np.testing.assert_allclose(g[c].numpy(), expected, rtol=1e-6)
    # a list of images, several per row, value_range clamps, scale_each normalises each image alone
    imgs = [torch.full((3, 2, 2), v) for v in (0.0, 2.0, 4.0)]
    g = make_grid(imgs, nrow=2, padding=0, normalize=True, value_range=(0.0, 2.0))
    assert g.shape == (3, 4, 4)
    np.testing.assert_array_equal(g[0].numpy(), [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]])
    y = torch.stack([torch.tensor([[0.0, 1.0]]), torch.tensor([[10.0, 30.0]])]).unsqueeze(1)
    np.testing.assert_allclose(make_grid(y, padding=0, normalize=True, scale_each=True)[0].numpy(), [[0, 1, 0, 1]])
    assert make_grid(torch.ones(1, 3, 4, 5)).shape == (3, 4, 5)  # a batch of one is returned as the image
    with pytest.raises(TypeError, match="tensor or list of tensors expected"):
        make_grid(np.zeros((2, 3, 4, 4)))


def test_save_image_writes_torchvisions_pixels(tmp_path):
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).reshape(2, 1, 3, 3) / 17
    buf = io.BytesIO()
    save_image(x, buf, format="png", nrow=2, padding=1)
    img = np.array(Image.open(io.BytesIO(buf.getvalue())))
    assert img.shape == (5, 9, 3) and img.dtype == np.uint8
    assert img[:, :, 0].tolist() == [[0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 15, 30, 0, 135, 150, 165, 0],
                                     [0, 45, 60, 75, 0, 180, 195, 210, 0], [0, 90, 105, 120, 0, 225, 240, 255, 0],
                                     [0, 0, 0, 0, 0, 0, 0, 0, 0]]
    save_image(torch.tensor([[[-1.0, 0.5, 2.0]]]), tmp_path / "clamped.png")  # out of [0, 1] is clamped
    assert np.array(Image.open(tmp_path / "clamped.png"))[0, :, 0].tolist() == [0, 128, 255]
