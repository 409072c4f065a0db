"""``trainkit export RUN``: a run's checkpoint as an ONNX model, checked in onnxruntime before it is kept.

The model is rebuilt from the run's config (as ``trainkit eval`` does), the
checkpoint loaded, and the layer graph traced on a real batch of the run's
evaluation split; every layer must have an export rule (a custom ``module:Class``
layer without one is refused by name). The batch axis is dynamic.

Input normalization is *recorded*, not baked in: the graph takes what the
model takes (the output of the run's evaluation transforms), and the model's
``metadata_props`` say what that is: ``trainkit.preprocessing`` (the
transforms, with the statistics a ``normalize`` computed from the training
data), ``trainkit.normalize`` (its mean and std as JSON), ``trainkit.class_names``,
``trainkit.task``, the run, checkpoint and epoch. Keeping the graph to the
layers keeps it equal to ``trainkit eval``'s logits, and lets a deployment
choose where to decode and normalize images.

Before the file is written, onnxruntime runs the exported graph on the traced
batch and on a single sample and must match trainkit's outputs (1e-4); the
file is then written atomically (a failed export leaves nothing).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..autograd.function import no_grad
from ..errors import RunDirError, TrainkitError
from ..onnx.errors import require_onnx
from .run import Run

__all__ = ["export_run", "Exported", "TOLERANCE"]

#: The largest |onnxruntime - trainkit| accepted on the check batch.
TOLERANCE = 1e-4


@dataclass
class Exported:
    """What ``export_run`` wrote: the file, its opset, its size and the check it passed."""

    path: Path
    opset: int
    bytes: int
    checkpoint: str
    epoch: int | None
    max_abs_diff: float
    inputs: list
    outputs: list


def _normalize_of(transform) -> dict | None:
    found = None
    for t in getattr(transform, "transforms", [transform]):
        if type(t).__name__ == "Normalize":
            found = {"mean": np.asarray(t.mean).tolist(), "std": np.asarray(t.std).tolist()}
    return found


def _output_path(run: Run, output, checkpoint: str) -> Path:
    if output is None:
        return run.path / ("model.onnx" if checkpoint == "best" else
                           f"model-{checkpoint if checkpoint == 'last' else 'custom'}.onnx")
    path = Path(output)
    if path.is_dir():
        raise TrainkitError(f"{path}: -o names a folder; give the path of the .onnx file to write")
    if not path.parent.is_dir():
        raise TrainkitError(f"{path}: its folder {path.parent} does not exist")
    return path


def export_run(run_dir, *, checkpoint: str = "best", output=None, opset: int | None = None, fmt: str = "onnx",
               trust_code: bool = False) -> Exported:
    """Export a run's checkpoint as ONNX (see the module docstring); returns what was written."""
    if fmt != "onnx":
        raise TrainkitError(f"--format {fmt!r} is not supported; the format is onnx")
    require_onnx(runtime=True)

    from ..assemble.prepare import prepare
    from ..onnx.export import build_model_proto, check_layers, check_opset
    from ..utils.atomic import atomic_write_bytes
    from .evaluate import with_tta
    from .session import _check_run_code, _load_weights, _report_split

    opset = check_opset(opset)
    if not str(checkpoint).strip():
        raise TrainkitError("--checkpoint is empty; give best, last, or the path of a checkpoint folder or "
                            ".safetensors file")
    run = Run.open(run_dir)
    if not run.config_path.exists():
        raise RunDirError(f"{run.path}: no config.yaml; not a complete trainkit run directory")
    path = _output_path(run, output, checkpoint)
    _check_run_code(run, trust_code)
    prep = prepare(run.config_path, with_optimizer=False)
    label, epoch = _load_weights(run.path, prep, checkpoint)
    model = prep.model
    model.eval()
    tta = getattr(prep.bundle, "tta", "none")
    check_layers(model)  # every layer of the config has a rule of its own (the wrapper below is engine ops)
    model = with_tta(model, tta)  # the graph computes what trainkit eval and predict do
    split = _report_split(prep) or "train"
    loader = prep.bundle.eval_loader(split, batch_size=8) if split != "train" else None
    if loader is None:
        raise TrainkitError(f"{run.path}: the run's data have no val or test split to trace the model on")
    x, _ = next(iter(loader))
    transform = getattr(prep.bundle, "eval_transform", None)  # text data: token ids, no transforms
    meta = {
        "trainkit.run": run.path.name, "trainkit.checkpoint": label, "trainkit.epoch": "" if epoch is None else epoch,
        "trainkit.task": prep.bundle.task,
        "trainkit.input": "the model input after the run's evaluation transforms (trainkit.preprocessing); "
                          "normalization is not part of the graph",
        "trainkit.preprocessing": repr(transform) if transform is not None else "none (token ids)",
        "trainkit.normalize": json.dumps(_normalize_of(transform) if transform is not None else None),
        "trainkit.class_names": json.dumps(getattr(prep.bundle, "class_names", None)),
        "trainkit.tta": tta,
    }
    # Token ids (N, seq): the sequence axis is dynamic too when the graph allows it (an LSTM does; a GPT's
    # position table and causal mask are cut at the traced length, so there it stays fixed).
    tries = [(0,)]
    if x.dtype.kind in "iu" and x.ndim >= 2 and x.shape[1] > 1:
        tries.insert(0, (0, 1))
    for axes in tries:
        labels = {0: "batch", 1: "seq"}
        dyn = {"input": {a: labels[a] for a in axes}, "output": {a: labels[a] for a in axes}}
        proto = build_model_proto(model, (x,), input_names=["input"], output_names=["output"], dynamic_axes=dyn,
                                  opset_version=opset, metadata={**meta, "trainkit.dynamic_axes": json.dumps(dyn)},
                                  strict_layers=False, doc=f"trainkit run {run.path.name}, checkpoint {label}")
        data = proto.SerializeToString()
        checks = [x, x[:1]] + ([x[:, :x.shape[1] // 2]] if 1 in axes else [])
        worst = _max_diff(model, data, checks, fatal=len(axes) == 1)
        if worst is not None:
            break
    atomic_write_bytes(path, data)
    io = [(i.name, _dims(i)) for i in proto.graph.input], [(o.name, _dims(o)) for o in proto.graph.output]
    return Exported(path, opset, len(data), label, epoch, worst, *io)


def _max_diff(model, data: bytes, batches, fatal: bool) -> float | None:
    """The largest |onnxruntime - trainkit| over ``batches``; None (or, when ``fatal``, an error) past TOLERANCE."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in batches:
        with no_grad():
            want = model(batch).numpy()
        try:
            got = session.run(None, {"input": batch.numpy()})[0]
        except Exception:  # noqa: BLE001 - onnxruntime's own error types: this shape does not run
            if fatal:
                raise
            return None
        if got.shape != want.shape:
            return None
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0)
    if not worst <= TOLERANCE:
        if fatal:  # a rule that computes something else: a bug, keep the traceback
            raise RuntimeError(f"the exported model's outputs differ from trainkit's by {worst:.3g} (> {TOLERANCE})")
        return None
    return worst


def _dims(value_info) -> str:
    dims = value_info.type.tensor_type.shape.dim
    return "x".join(d.dim_param or str(d.dim_value) for d in dims)

