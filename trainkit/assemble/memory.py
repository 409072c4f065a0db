"""The memory budget: what a config would allocate, estimated before anything of that size exists.

A config can ask for more memory than any machine has (``linear:
{out_features: 1000000000}``, ``conv2d: {out_channels: 1000000000}``, a
generated data set of ``n_samples: 1000000000000``); building it used to end in
a ``MemoryError`` traceback, or in swapping for minutes first. The estimates
here come from the declarations alone, without allocating:

* generated data (a data set that declares its sample count from the config,
  such as ``linear``): ``samples x (features + 1) x 16`` bytes (the float64
  values it is drawn in, their float32 copy, the split's index arrays);
* the model, from the layers' shape rules (:class:`~.model.ModelPlan`):
  ``parameters x 4 bytes x 4`` (weights, gradients and two optimizer buffers, as
  Adam keeps) plus ``activations x batch_size x 4 bytes x 2`` (every layer's
  output of a training batch, kept for the backward pass, and its gradient).

Each is checked against ``train.max_memory``: a byte count or a size such as
``"8GiB"``; null (the default) means :func:`default_budget`, 80% of the memory
this machine (or its container's cgroup limit) has. Over budget, the config is
refused with exit 2 and the key that asked for it (``data.n_samples``, the
largest layer's ``out_features``). The estimate errs high on purpose: it is a
guard against configs that cannot possibly run, not a prediction.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from trainkit.config.sizes import parse_size  # noqa: F401  (re-exported: the budget's unit syntax)
from trainkit.utils.units import human_bytes

__all__ = ["parse_size", "default_budget", "budget", "data_problem", "model_problem", "machine_memory",
           "MODEL_FACTOR"]

#: Bytes per parameter while training: float32 weights, gradients and two optimizer buffers.
MODEL_FACTOR = 4 * 4
#: Bytes per activation element of a training batch: the output kept for backward and its gradient.
ACTIVATION_FACTOR = 4 * 2
#: Bytes per generated value (float64 draw + float32 copy) and per sample (split indices).
DATA_FACTOR = 16

def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2 ** 60:  # cgroup v1 writes a huge number for "no limit"
            return int(text)
    return None


def machine_memory() -> int | None:
    """This machine's memory in bytes (the container's cgroup limit when that is lower), or None."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        total = None
    limit = _cgroup_limit()
    values = [v for v in (total, limit) if v]
    return min(values) if values else None


def default_budget() -> tuple[int, str]:
    """80% of :func:`machine_memory` (64 GiB when it cannot be read), with how it was derived."""
    mem = machine_memory()
    if mem is None:
        return 64 * 2 ** 30, "64 GiB, as this machine's memory could not be read"
    return int(mem * 0.8), f"80% of this machine's {human_bytes(mem)}"


def budget(config) -> tuple[int, str]:
    """The run's memory budget in bytes, and a phrase saying where it comes from."""
    value = config.resolved.train.max_memory
    if value is None:
        size, how = default_budget()
        return size, f"train.max_memory: null, {how}"
    return int(value), f"train.max_memory {human_bytes(int(value))}"


def data_problem(config):
    """``(key path, message)`` when generated data would exceed the budget, else None."""
    spec = config.resolved.data
    samples = spec.declaration.static_samples(spec.args)
    if samples is None:
        return None
    shape = spec.declaration.static_shape(spec.args) or ()
    features = math.prod(int(d) for d in shape if d is not None) if shape else 1
    need = int(samples) * (features + 1) * DATA_FACTOR
    limit, how = budget(config)
    if need <= limit:
        return None
    key = next((k for k in ("n_samples", "samples", "size") if k in spec.args), None)
    return (("data",) + ((key,) if key else ()),
            f"{samples:,} generated samples of {features:,} feature{'s' if features != 1 else ''} need about "
            f"{human_bytes(need)} of memory, "
            f"more than the budget ({how}); generate fewer, or raise train.max_memory")


def model_problem(config, plan, batch_size: int):
    """``(key path, message)`` when training the planned model would exceed the budget, else None."""
    params = sum(int(n.params or 0) for n in plan.nodes)
    activations = math.prod(plan.input_shape) + sum(math.prod(n.out_shape) for n in plan.nodes)
    need_params = params * MODEL_FACTOR
    need_acts = activations * int(batch_size) * ACTIVATION_FACTOR
    limit, how = budget(config)
    if need_params + need_acts <= limit:
        return None
    # Name the layer at which the running estimate passes the budget, at the argument that sets its size:
    # in conv2d(out_channels=10**9) -> flatten -> linear, the convolution, not the linear layer it inflates.
    def cost(n):
        return int(n.params or 0) * MODEL_FACTOR + math.prod(n.out_shape) * int(batch_size) * ACTIVATION_FACTOR
    running = math.prod(plan.input_shape) * int(batch_size) * ACTIVATION_FACTOR
    worst = plan.nodes[-1]
    for n in plan.nodes:
        running += cost(n)
        if running > limit:
            worst = n
            break
    key = next((k for k in ("out_features", "out_channels", "hidden_size", "num_embeddings", "embedding_dim")
                if k in worst.kwargs and worst.declaration is not None and k != worst.declaration.input_arg), None)
    where = worst.args_path + ((key,) if key else ())
    return (where,
            f"training this model needs about {human_bytes(need_params + need_acts)} of memory "
            f"({params:,} parameters x {MODEL_FACTOR} bytes for weights, gradients and optimizer state: "
            f"{human_bytes(need_params)}; {activations:,} activations per sample x batch {batch_size} x "
            f"{ACTIVATION_FACTOR} bytes: {human_bytes(need_acts)}), more than the budget ({how}); the estimate "
            f"passes it at layer '{worst.name}' ({worst.type}, {human_bytes(cost(worst))}): make it smaller, "
            "or raise train.max_memory")
