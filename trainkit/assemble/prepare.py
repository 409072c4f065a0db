"""Everything a run needs, built from a config before anything is written: :func:`prepare`.

Every check that can fail on user input (config, overrides, data files, model
shapes, metric names against the data's task) runs here, *before* a run
directory is created, so a refused config leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..autograd.random import manual_seed
from .memory import data_problem, model_problem

__all__ = ["Prepared", "prepare", "prepare_model", "model_fingerprint", "resolved_yaml"]


@dataclass
class Prepared:
    """A validated config with its data, model, loss, optimizer and scheduler built (nothing written yet)."""

    config: object
    bundle: object
    model: object
    loss_fn: object
    optimizer: object
    scheduler: object

    @property
    def fingerprint(self) -> str:
        """The hash a checkpoint of this model/data/optimizer config carries (see :func:`model_fingerprint`).

        Taken over the config as the run directory stores it (``./file.py`` layer paths made
        absolute), so the run's own config.yaml gives the same hash as the file it was trained from.
        """
        from .custom import absolutize_layer_paths

        return model_fingerprint(absolutize_layer_paths(self.config))

    def matches(self, config_hash) -> bool:
        """Whether a checkpoint's ``config_hash`` belongs to this config.

        Either the hash of the config as this trainkit resolves it (:attr:`fingerprint`), or of the
        document as written: a run directory's config.yaml holds the config resolved by the trainkit
        that trained the run, so a default added to trainkit since (which changes the resolved config,
        not the model) does not lock the run out of ``--resume`` and ``trainkit eval``; any edit of the
        file still changes both.
        """
        if config_hash == self.fingerprint:
            return True
        written = getattr(self.config, "written", None)
        return isinstance(written, dict) and config_hash == model_fingerprint(written)


#: ``data`` keys that change only how a model is evaluated, never its weights: left out of the fingerprint,
#: so that a run trained before such a key existed keeps its fingerprint (and stays evaluable and resumable).
EVALUATION_ONLY_DATA_KEYS = ("tta",)


def model_fingerprint(data: dict) -> str:
    """Hash of everything but ``train`` (which --resume may change) and the evaluation-only data keys:
    the checkpoint must match it."""
    core = {k: v for k, v in data.items() if k not in ("train", "name")}
    if isinstance(core.get("data"), dict):
        core["data"] = {k: v for k, v in core["data"].items() if k not in EVALUATION_ONLY_DATA_KEYS}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()


def prepare(config_path, overrides=(), *, with_optimizer: bool = True) -> Prepared:
    """Load and validate the config, build the data and the model: all before touching disk."""
    from . import (build_data, build_loss, build_model, build_optimizer, build_scheduler, check_task,
                   run_length_problem)
    from ..config import load_config

    config = load_config(config_path, list(overrides))
    _within_budget(config, data_problem(config))
    manual_seed(config.resolved.seed)
    bundle = build_data(config)
    check_task(config, bundle.task, getattr(bundle, "unavailable_metrics", ()))
    model = build_model(config, bundle.input_shape, num_classes=bundle.num_classes,
                        before_build=lambda plan: _within_budget(config, model_problem(config, plan,
                                                                                       bundle.batch_size)))
    loss_fn = build_loss(config)
    optimizer = scheduler = None
    if with_optimizer:
        optimizer = build_optimizer(config, model)
        steps = len(bundle.train_loader())
        scheduler = build_scheduler(config, optimizer, steps_per_epoch=steps)
        problem = run_length_problem(config, scheduler, steps)
        if problem is not None:
            raise config.error([problem])
    return Prepared(config, bundle, model, loss_fn, optimizer, scheduler)


def _within_budget(config, problem) -> None:
    """Refuse, at the key that asks for it, what would not fit in the memory budget (:mod:`.memory`)."""
    if problem is not None:
        raise config.error([problem])


def prepare_model(config_path, overrides=()):
    """For ``trainkit summary``: the model from the config alone when its input shape is known
    without reading data (downloadable sets need not be present), else via the data."""
    from . import build_model, static_input_shape
    from ..config import load_config

    config = load_config(config_path, list(overrides))
    shape = static_input_shape(config)
    if shape is None:
        prep = prepare(config_path, overrides, with_optimizer=False)
        return prep.config, prep.model, prep.bundle.input_shape
    manual_seed(config.resolved.seed)
    return config, build_model(config, shape), shape


def resolved_yaml(config) -> str:
    """The resolved config for the run directory, with file-based custom layers made absolute."""
    from .custom import absolutize_layer_paths
    from ..config.yamlsafe import dump_yaml
    return dump_yaml(absolutize_layer_paths(config))
