"""Declarations of the losses, optimizers, schedulers, data sets and transforms (layers: :mod:`.layer`).

Each kind has a registry and a decorator that declares a class into it::

    @optimizer("sgd", args={"lr": LR, "momentum": MOMENTUM}, check=_check_nesterov)
    class SGD(Optimizer): ...

and a declaration type holding what its builders need beyond the arguments
(a scheduler's default interval and run-length argument, a data set's static
shape and task, a transform's shape rule).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .core import Declaration, DeclarationError, Registry, first_line, read_arguments

__all__ = ["LOSSES", "OPTIMIZERS", "SCHEDULERS", "DATASETS", "TRANSFORMS", "loss", "optimizer", "scheduler",
           "dataset", "transform", "LossDeclaration", "SchedulerDeclaration", "DatasetDeclaration",
           "TransformDeclaration", "declarer"]


LOSSES = Registry("loss", "loss")
OPTIMIZERS = Registry("optimizer", "optimizer")
TRANSFORMS = Registry("transform", "transform")


def declarer(registry: Registry, make: Callable):
    """A decorator factory: ``declare(name, **options)`` puts ``make(name, cls, **options)`` into ``registry``."""

    def declare(name: str, **options):
        def decorate(cls):
            registry.add(make(name, cls, **options))
            return cls
        return decorate
    return declare


# ----------------------------------------------------------------------------- losses and optimizers
@dataclass(eq=False)
class LossDeclaration(Declaration):
    """A loss: ``target`` says what it compares the model's output with.

    ``"classes"``: class indices (the output has one value per class, checked
    against the data set); ``"probabilities"``: values in [0, 1] shaped like the
    output; ``"values"``: real values shaped like the output.
    """

    target: str = "values"
    example: Any = None


def _make_loss(name, cls, *, target: str = "values", args=None, defaults=None, exclude=(), docs=None,
               check=None, example=None):
    if target not in ("classes", "probabilities", "values"):
        raise DeclarationError(f"loss '{name}': target must be classes, probabilities or values, not {target!r}")
    arguments = read_arguments("loss", name, cls, args=args, defaults=defaults, exclude=exclude, docs=docs)
    return LossDeclaration("loss", name, cls, arguments, first_line(cls.__doc__), check, target, example)


def _make_optimizer(name, cls, *, args=None, defaults=None, exclude=(), docs=None, check=None):
    arguments = read_arguments("optimizer", name, cls, args=args, defaults=defaults, exclude=exclude, docs=docs)
    return Declaration("optimizer", name, cls, arguments, first_line(cls.__doc__), check)


#: ``@loss("mse")`` on a loss Module class: YAML ``loss: mse``.
loss = declarer(LOSSES, _make_loss)
#: ``@optimizer("sgd", args={...})`` on an Optimizer class: YAML ``optimizer: {type: sgd, ...}``.
optimizer = declarer(OPTIMIZERS, _make_optimizer)


# ----------------------------------------------------------------------------- schedulers
@dataclass(eq=False)
class SchedulerDeclaration(Declaration):
    """A learning-rate scheduler.

    Attributes:
        interval: the default of the YAML ``interval`` (``"epoch"`` or ``"step"``).
        run_length: an argument that, left null, becomes the run's length in the
            scheduler's interval (cosine's ``T_max``, one-cycle's ``total_steps``).
        watches_metric: the scheduler steps on a metric (``step(value)``, plateau);
            its YAML ``metric`` names it and it must step per epoch.
        nested: an argument holding a list of scheduler mappings (sequential's
            ``schedulers``), checked and built recursively.
    """

    interval: str = "epoch"
    run_length: str | None = None
    watches_metric: bool = False
    nested: str | None = None


def _make_scheduler(name, cls, *, args=None, defaults=None, exclude=(), extra=None, docs=None, check=None,
                    interval: str = "epoch", run_length: str | None = None, watches_metric: bool = False,
                    nested: str | None = None):
    if interval not in ("epoch", "step"):
        raise DeclarationError(f"scheduler '{name}': interval must be epoch or step, not {interval!r}")
    arguments = read_arguments("scheduler", name, cls, args=args, defaults=defaults, exclude=exclude,
                               extra=extra, docs=docs)
    for key, what in ((run_length, "run_length"), (nested, "nested")):
        if key is not None and key not in arguments:
            raise DeclarationError(f"scheduler '{name}': {what} names '{key}', which is not one of its arguments")
    if watches_metric and "metric" not in arguments:
        raise DeclarationError(f"scheduler '{name}': watches_metric needs a 'metric' argument (extra=...)")
    return SchedulerDeclaration("scheduler", name, cls, arguments, first_line(cls.__doc__), check, interval,
                                run_length, watches_metric, nested)


SCHEDULERS = Registry("scheduler", "scheduler")
#: ``@scheduler("step", args={...})`` on an LRScheduler class: YAML ``scheduler: {type: step, ...}``.
scheduler = declarer(SCHEDULERS, _make_scheduler)


# ----------------------------------------------------------------------------- data sets and transforms
@dataclass(eq=False)
class DatasetDeclaration(Declaration):
    """A data set YAML can name.

    Attributes:
        shape: the per-sample input shape known from the config alone: a tuple,
            a function of the resolved arguments, or None (read from the file).
            A dimension may be None when only the rank is known (a CSV row).
        task: ``"classification"``/``"regression"``, a function of the arguments
            returning one of them or None (guessed from the data), or None.
        load: ``load(args) -> (train, test or None)``; a missing test part is held
            out from train by ``test_split`` when the data set takes it.
        samples: for generated data, the number of samples from the arguments
            (a function), so the memory budget is checked before generating them.
        summary: one line for the docs.
    """

    shape: Any = None
    task: Any = None
    load: Callable | None = field(default=None, repr=False)
    samples: Callable | None = field(default=None, repr=False)

    def static_samples(self, args: Mapping) -> int | None:
        """How many samples the arguments alone imply (generated data), or None."""
        return int(self.samples(args)) if self.samples is not None else None

    def static_shape(self, args: Mapping) -> tuple | None:
        """The per-sample shape from the arguments alone (None dims: unknown sizes), or None."""
        shape = self.shape(args) if callable(self.shape) else self.shape
        return None if shape is None else tuple(shape)

    def static_task(self, args: Mapping) -> str | None:
        """The task from the arguments alone, or None when the data decides."""
        return self.task(args) if callable(self.task) else self.task


def _make_dataset(name, cls, *, shape=None, task=None, args=None, defaults=None, exclude=(), fields=None,
                  docs=None, check=None, load=None, doc=None, samples=None):
    arguments = read_arguments("dataset", name, cls, args=args, defaults=defaults, exclude=exclude,
                               fields=fields, docs=docs)
    loader = load or getattr(cls, "from_config", None)
    if loader is None:
        def loader(a, _cls=cls):
            return _cls(train=True, **a), _cls(train=False, **a)
    return DatasetDeclaration("dataset", name, cls, arguments, doc or first_line(cls.__doc__), check, shape,
                              task, loader, samples)


DATASETS = Registry("dataset", "dataset")
#: ``@dataset("cifar10", shape=(3, 32, 32), task="classification", ...)`` on a Dataset class.
dataset = declarer(DATASETS, _make_dataset)


@dataclass(eq=False)
class TransformDeclaration(Declaration):
    """A data transform YAML can name.

    The class's optional ``output_shape(args, shape, data) -> shape`` (a staticmethod)
    checks the transform against a per-sample shape and gives the shape after
    it, raising :class:`~trainkit.registry.layer.ShapeProblem`; it runs in the
    config's first pass with the data set's declared shape, and again on the
    loaded data. A transform without one keeps the shape. ``random`` transforms
    apply to training batches only.
    """

    random: bool = False
    image_only: bool = False

    def output_shape(self, args: Mapping, shape: tuple, data: str = "samples") -> tuple:
        """The per-sample shape after the transform (raises ShapeProblem when it does not fit).

        ``data`` names the samples in messages (``"cifar10 images"``).
        """
        rule = getattr(self.cls, "output_shape", None)
        return tuple(rule(args, tuple(shape), data)) if rule is not None else tuple(shape)

    def build(self, args: Mapping, shape: tuple, train):
        """The transform object for resolved ``args`` and the loaded training data."""
        make = getattr(self.cls, "from_config", None)
        if make is not None:
            return make(args, tuple(shape), train)
        return self.cls(**args)


def _make_transform(name, cls, *, args=None, defaults=None, exclude=(), docs=None, check=None,
                    image_only: bool = False):
    arguments = read_arguments("transform", name, cls, args=args, defaults=defaults, exclude=exclude, docs=docs)
    return TransformDeclaration("transform", name, cls, arguments, first_line(cls.__doc__), check,
                                bool(getattr(cls, "random", False)), image_only)


#: ``@transform("random_crop", args={...})`` on a Transform class: YAML ``transforms: [random_crop: {...}]``.
transform = declarer(TRANSFORMS, _make_transform)
