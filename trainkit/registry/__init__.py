"""Declarations of every component YAML can name, and the registries they fill.

Each layer, loss, optimizer, scheduler, data set and transform declares itself
once, with a decorator on its class, beside its code::

    from trainkit.registry import layer, Example, Inferred, Int

    @layer("scale", args={"factor": Float()}, example=Example((2, 3), {"factor": 2.0}))
    class Scale(nn.Module):
        def __init__(self, factor: float = 1.0): ...
        @staticmethod
        def infer_shape(args, x):
            return Inferred(x, macs=math.prod(x))

Importing the module fills the registry of its kind (the command line also
imports the modules installed packages name in the ``trainkit.plugins``
entry-point group, :func:`load_plugins`) (:data:`LAYERS`,
:data:`LOSSES`, :data:`OPTIMIZERS`, :data:`SCHEDULERS`, :data:`DATASETS`,
:data:`TRANSFORMS`); the config schema, the builders, did-you-mean messages,
``trainkit gradcheck``, ``trainkit summary`` and ``docs/`` all read them.
:mod:`.tasks` holds the one table of metric names per task, and :mod:`.spec`
the value specs (``Int(lo=1)``, ``Float(0, 1)``, ``Nullable(...)``) that
arguments use. This package imports nothing of trainkit above it.
"""
from .components import (DATASETS, LOSSES, OPTIMIZERS, SCHEDULERS, TRANSFORMS, DatasetDeclaration,
                         LossDeclaration, SchedulerDeclaration, TransformDeclaration, dataset, loss, optimizer,
                         scheduler, transform)
from .core import PLUGIN_GROUP, Argument, Declaration, DeclarationError, PluginError, Registry, load_plugins
from .layer import (CONV_PADDING, LAYERS, PADDING, SIZE, Example, Inferred, LayerDeclaration, Shape, ShapeProblem,
                    batched_dim, fmt, layer, need_image, need_rank, numel, pair, register_layer, same_shape, window)
from .spec import (INVALID, REQUIRED, AnyOf, Bool, Checker, Field, Float, Int, ListOf, Nullable, Raw, Record,
                   Spec, Str, found, suggest, unknown_key, unknown_name)
from .tasks import TASKS, Metric, Task, find_metric, metric_mode, metric_names

#: Every registry by kind.
REGISTRIES = {"layer": LAYERS, "loss": LOSSES, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS,
              "dataset": DATASETS, "transform": TRANSFORMS}

__all__ = [
    "REGISTRIES", "LAYERS", "LOSSES", "OPTIMIZERS", "SCHEDULERS", "DATASETS", "TRANSFORMS",
    "Registry", "Declaration", "DeclarationError", "Argument", "LayerDeclaration", "LossDeclaration",
    "SchedulerDeclaration", "DatasetDeclaration", "TransformDeclaration",
    "layer", "loss", "optimizer", "scheduler", "dataset", "transform", "register_layer", "load_plugins",
    "PluginError", "PLUGIN_GROUP",
    "Example", "Inferred", "Shape", "ShapeProblem", "fmt", "pair", "need_rank", "need_image", "window",
    "batched_dim", "numel", "same_shape", "SIZE", "PADDING", "CONV_PADDING",
    "Spec", "Int", "Float", "Bool", "Str", "ListOf", "Nullable", "AnyOf", "Raw", "Record", "Field", "Checker",
    "INVALID", "REQUIRED", "found", "suggest", "unknown_key", "unknown_name",
    "TASKS", "Task", "Metric", "metric_names", "find_metric", "metric_mode",
]
