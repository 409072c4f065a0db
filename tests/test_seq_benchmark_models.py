"""The benchmark's sequence workloads (benchmarks/seq_models.py) are one code written against PyTorch's API:
built with trainkit.nn and torch.nn from the same weights they compute the same logits and gradients."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import trainkit  # noqa: E402
import trainkit.nn as tnn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import seq_models  # noqa: E402


@pytest.mark.parametrize("build,make", [
    (seq_models.lstm_lm, lambda rng: rng.integers(0, 65, size=(5, 2))),
    (seq_models.tiny_gpt, lambda rng: rng.integers(0, 65, size=(1, 16))),
    (seq_models.small_vit, lambda rng: rng.standard_normal((1, 3, 32, 32))),
], ids=["lstm_lm", "tiny_gpt", "small_vit"])
def test_benchmark_models_agree_with_torch(build, make):
    ours = build(tnn).double().eval()
    theirs = build(torch.nn).double().eval()
    state = ours.state_dict()
    assert list(state) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.numpy(), copy=True)) for k, v in state.items()})
    x = make(np.random.default_rng(0))
    a = ours(trainkit.tensor(x))
    b = theirs(torch.tensor(x))
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-7, atol=1e-9)
    a.sum().backward()
    b.sum().backward()
    grads = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(grads[name].grad.numpy(), p.grad.numpy(), rtol=1e-6, atol=1e-8, err_msg=name)


def test_throughput_refuses_a_profile_it_cannot_take_before_measuring(capsys):
    """``--profile`` names a training workload: an inference one or an unknown key is a usage error (exit 2,
    the trainable keys listed) before any workload runs, not an AttributeError after the whole benchmark."""
    import throughput
    for key in ("resnet8_infer256", "nope"):
        with pytest.raises(SystemExit) as e:
            throughput.main(["--workloads", "lenet32", "--profile", key])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"--profile '{key}'" in err and "resnet8_128" in err and "resnet8_infer256'," not in err
