"""``trainkit.load_run``: a finished run's model, evaluation transforms and class names, for Python code.

::

    import trainkit

    model, transform, classes = trainkit.load_run("runs/20261127-101500-shapes")
    run = trainkit.load_run("runs/20261127-101500-shapes", checkpoint="last")
    x = run.decode("photo.jpg")                       # uint8 (C, H, W), decoded as the training images were
    probs = trainkit.softmax(trainkit.tensor(run.outputs(x[None])), dim=1)

These are the building blocks ``trainkit predict`` uses
(:mod:`trainkit.train.predict`): the model is rebuilt from the run's
``config.yaml`` with the checkpoint's weights and put in eval mode, and
``transform`` is the evaluation pipeline (``ToTensor`` and the deterministic
transforms, without the training augmentations).
"""
from __future__ import annotations

import os

from trainkit.train.predict import LoadedRun
from trainkit.train.predict import load_run as _load_run

__all__ = ["load_run", "LoadedRun"]


def load_run(run: str | os.PathLike, checkpoint: str = "best", trust_code: bool = False) -> LoadedRun:
    """Load a run directory's model (``checkpoint``: best, last, or a checkpoint path).

    Returns a :class:`~trainkit.train.predict.LoadedRun`, which unpacks as
    ``model, transform, class_names`` and also carries the task, how an image
    file becomes a sample (``decode``), the training file's feature names, and
    ``outputs(batch)``: the model's outputs for a batch of raw samples.

    Custom layer code the run's config names is imported only if it is the file the run trained
    with (its SHA-256 is recorded in run.json), unless ``trust_code`` is True.

    Raises:
        RunDirError, CheckpointError, DataError: the run, its checkpoint or its
            training data cannot be used (the CLI reports these with exit code 2).
    """
    return _load_run(run, checkpoint=checkpoint, trust_code=trust_code)
