"""``torch.save(model, f)`` / ``torch.load(f)`` of whole modules under PyTorch's ``safe_globals`` API
(pytorch/examples word_language_model saves and reloads its model this way), and ``torch.nn.modules``
paths. Nothing in a file is imported or run: names are compared as strings against the allowlist."""
from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import safetensors.numpy
import torch as th

import trainkit as torch
import trainkit.nn as nn
import trainkit.nn.functional as F
from trainkit.serialization import UnsafePickleError

CALLS = {"init": 0, "setstate": 0}


class TiedLM(nn.Module):
    """Embedding and decoder sharing one weight, a submodule used twice, a function attribute."""

    def __init__(self, n=7, d=4):
        super().__init__()
        CALLS["init"] += 1
        self.encoder = nn.Embedding(n, d)
        self.block = nn.Linear(d, d)
        self.stack = nn.ModuleList([self.block, self.block])
        self.decoder = nn.Linear(d, n)
        self.decoder.weight = self.encoder.weight
        self.activation = F.relu
        self.note = {"steps": 3, "names": ("a", "b")}

    def __setstate__(self, state):  # pragma: no cover - must never run on load
        CALLS["setstate"] += 1
        self.__dict__.update(state)

    def forward(self, x):
        h = self.encoder(x)
        for layer in self.stack:
            h = self.activation(layer(h))
        return self.decoder(h)


def _roundtrip(model) -> io.BytesIO:
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    return buf


def test_whole_module_roundtrip_keeps_sharing_and_runs_no_class_code():
    torch.manual_seed(0)
    model = TiedLM()
    model.eval()
    buf = _roundtrip(model)
    CALLS.update(init=0, setstate=0)
    with torch.serialization.safe_globals([TiedLM, F.relu]):
        back = torch.load(buf)
    assert torch.serialization.get_safe_globals() == []  # the context manager removed them
    assert CALLS == {"init": 0, "setstate": 0} and type(back) is TiedLM and not back.training
    assert back.decoder.weight is back.encoder.weight and back.stack[0] is back.stack[1] is back.block
    assert len(list(back.parameters())) == len(list(model.parameters())) == 4
    assert back.activation is F.relu and back.note == {"steps": 3, "names": ("a", "b")}
    x = torch.tensor([[1, 2, 3]])
    np.testing.assert_array_equal(back(x).detach().numpy(), model(x).detach().numpy())
    back.train()
    loss = back(x).sum()
    loss.backward()
    assert back.encoder.weight.grad is not None  # a working module: autograd, train(), parameters()


def test_unlisted_classes_and_functions_are_refused_by_name():
    buf = _roundtrip(TiedLM())
    with pytest.raises(UnsafePickleError, match=r"names .*TiedLM, which is not an allowed global.*add_safe_globals"):
        torch.load(buf)
    buf.seek(0)
    with pytest.raises(UnsafePickleError, match=r"trainkit\.nn\.functional\.relu.*not an allowed global"):
        with torch.serialization.safe_globals([TiedLM]):
            torch.load(buf)
    buf.seek(0)
    torch.serialization.add_safe_globals([TiedLM, (F.relu, "trainkit.nn.functional.relu")])
    try:
        assert type(torch.load(buf)) is TiedLM
    finally:
        torch.serialization.clear_safe_globals()
    assert torch.serialization.get_safe_globals() == []


def test_trainkits_own_layers_need_no_allowlist_and_lambdas_cannot_be_saved():
    seq = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.LSTM(2, 2))
    back = torch.load(_roundtrip(seq))
    assert [type(m) for m in back] == [nn.Linear, nn.ReLU, nn.LSTM]
    np.testing.assert_array_equal(back[0].weight.detach().numpy(), seq[0].weight.detach().numpy())
    seq.fn = lambda t: t
    with pytest.raises(TypeError, match="lambda"):
        torch.save(seq, io.BytesIO())


def _file(tree) -> io.BytesIO:
    meta = {"trainkit.save": json.dumps({"version": 1, "tree": tree})}
    return io.BytesIO(safetensors.numpy.save({"0": np.zeros(2, np.float32)}, metadata=meta))


@pytest.mark.parametrize("tree,match", [
    ({"$object": ["os.system", {"$dict": []}]}, "os.system, which is not an allowed global"),
    ({"$global": "never_imported_mod.evil"}, "never_imported_mod.evil, which is not an allowed global"),
    ({"$object": ["trainkit.nn.functional.relu", {"$dict": []}]}, "not an allowed global"),
    ({"$ref": 0}, "not read before"),
    ({"$object": ["trainkit.nn.linear.Linear", {"$dict": [["training", True]]}]}, "no _parameters dict"),
    ({"$object": ["trainkit.nn.linear.Linear"]}, "not \\[class name, state\\]"),
])
def test_hostile_object_trees_are_refused_without_importing(tree, match):
    with pytest.raises(torch.serialization.SerializationError, match=match):
        torch.load(_file(tree))
    assert "never_imported_mod" not in sys.modules


def test_a_function_allowlisted_is_not_taken_for_a_module_class():
    with torch.serialization.safe_globals([F.relu]):
        with pytest.raises(torch.serialization.SerializationError, match="is not an nn.Module class"):
            torch.load(_file({"$object": ["trainkit.nn.functional.relu", {"$dict": []}]}))


def test_torch_nn_modules_paths_name_the_same_classes_as_torch():
    from trainkit.nn.modules import TORCH_LAYOUT

    found = 0
    for file, names in TORCH_LAYOUT.items():
        ours = getattr(torch.nn.modules, file)
        for name in names:
            if hasattr(ours, name):
                found += 1
                assert hasattr(getattr(th.nn.modules, file), name), f"torch.nn.modules.{file}.{name}"
                assert getattr(ours, name) is getattr(nn, name, getattr(ours, name))
    assert found >= 60 and torch.nn.modules.rnn.LSTM is nn.LSTM and torch.nn.modules.linear.Linear is nn.Linear
    import trainkit.nn.modules.sparse as sparse

    assert sparse.Embedding is nn.Embedding
