"""How far two trainings of one config drift apart when they round differently: the bar a data-parallel
run can be held to.

    python benchmarks/rounding_sensitivity.py configs/digits_cnn.yaml
    python benchmarks/rounding_sensitivity.py configs/cifar_cnn.yaml --epochs 1 \\
        --set data.root=../shared/data --set data.download=false

Trains the config twice in this process: once as is, once with every
gradient multiplied by ``1 + noise * N(0, 1)`` before each optimizer step (a
stand-in for summing the batch in another order, as data-parallel ranks
do), and prints the largest ``max|w_noisy - w| / max|w|`` over the tensors
after each epoch. A config whose figure stays near the noise level can be
compared across numbers of ranks to tight tolerances; one whose figure grows
to 1e-3 or more cannot, by any implementation. Not a test.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainkit.assemble.prepare import prepare  # noqa: E402
from trainkit.train.evaluate import align_target  # noqa: E402


def train(config: str, overrides: list[str], epochs: int, noise: float) -> list[dict]:
    """Weights after each epoch, training with relative gradient noise ``noise`` (0: none)."""
    prep = prepare(config, overrides)
    model, opt, loss_fn, sched = prep.model, prep.optimizer, prep.loss_fn, prep.scheduler
    loader = prep.bundle.train_loader(seed=prep.config.resolved.seed)
    rng = np.random.default_rng(1)
    out = []
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            logits = model(x)
            loss = loss_fn(logits, align_target(logits, y))
            opt.zero_grad()
            loss.backward()
            if noise:
                for p in model.parameters():
                    if p.grad is not None:
                        g = p.grad._array
                        g *= (1 + noise * rng.standard_normal(g.shape)).astype(g.dtype)
            opt.step()
            if sched is not None:
                sched.after_step()
        if sched is not None:
            sched.after_epoch({"train_loss": float(loss.item())})
        out.append({k: v.numpy().copy() for k, v in model.state_dict().items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--epochs", type=int, default=None, help="default: the config's train.epochs")
    ap.add_argument("--noise", type=float, default=1e-7)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    epochs = args.epochs or prepare(args.config, args.overrides, with_optimizer=False).config.resolved.train.epochs
    clean = train(args.config, args.overrides, epochs, 0.0)
    noisy = train(args.config, args.overrides, epochs, args.noise)
    for e, (a, b) in enumerate(zip(clean, noisy), 1):
        gap = max(float(np.abs(b[k].astype(np.float64) - a[k]).max() / max(np.abs(a[k]).max(), 1e-30))
                  for k in a if a[k].dtype.kind == "f")
        print(f"epoch {e}: gradient noise {args.noise:g} per step -> weights {gap:.2e} x max|w| apart", flush=True)


if __name__ == "__main__":
    main()
