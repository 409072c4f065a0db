"""``import trainkit as torch``: submodules as attributes, lazily, without importing the config stage."""
from __future__ import annotations

import subprocess
import sys

import pytest

import trainkit


def _run(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_import_is_light_and_never_touches_config():
    out = _run("import sys, trainkit; print(sorted(m for m in sys.modules if m.startswith('trainkit.') and "
               "m.split('.')[1] in ('config', 'nn', 'optim', 'data', 'utils', 'train', 'serialization')) or 'none')")
    assert out == "none"
    assert _run("import sys, trainkit; print('yaml' in sys.modules, 'safetensors' in sys.modules)") == "False False"


def test_submodules_are_attributes_like_torch():
    code = ("import trainkit as torch\n"
            "print(torch.nn.Linear.__name__, torch.optim.SGD.__name__, torch.optim.lr_scheduler.StepLR.__name__,\n"
            "      torch.utils.data.DataLoader.__name__, torch.autograd.Function.__name__, torch.nn.functional.relu.__name__,\n"
            "      torch.utils.data.sampler.RandomSampler.__name__, torch.utils.data.dataloader.default_collate.__name__,\n"
            "      torch.cuda.is_available(), torch.backends.cudnn.benchmark, torch.save.__module__)")
    assert _run(code).split() == ["Linear", "SGD", "StepLR", "DataLoader", "Function", "relu", "RandomSampler",
                                  "default_collate", "False", "False", "trainkit.serialization"]
    import trainkit.utils.data as tud
    from trainkit.utils.data import DataLoader, TensorDataset  # noqa: F401

    assert tud.DataLoader is trainkit.utils.data.DataLoader
    assert {"nn", "optim", "utils", "save", "load"} <= set(dir(trainkit))
    with pytest.raises(AttributeError, match="no attribute 'not_a_thing'"):
        trainkit.not_a_thing  # noqa: B018


def test_register_layer_needs_no_config_stage():
    """``trainkit.register_layer`` comes from the declaration registry, below the config stage."""
    assert callable(trainkit.register_layer)
    out = _run("import sys, trainkit; f = trainkit.register_layer; print('trainkit.config' in sys.modules)")
    assert out == "False"
