"""Assembly: a validated config to the objects a run trains, every builder derived from the declarations.

    config = load_config("configs/cifar_cnn.yaml")
    bundle = build_data(config)                                   # datasets, transforms, loaders
    model = build_model(config, bundle.input_shape, num_classes=bundle.num_classes)
    loss_fn = build_loss(config)
    optimizer = build_optimizer(config, model)
    schedule = build_scheduler(config, optimizer, steps_per_epoch=len(bundle.train_loader()))

:mod:`.model` checks the model against the data's shape with the layers' shape
rules and builds it; :mod:`.components` builds the loss, optimizer and
scheduler; :mod:`.custom` imports ``module:Class`` layers.
"""
from .components import Schedule, build_loss, build_optimizer, build_scheduler
from .custom import absolutize_layer_paths
from .model import ModelPlan, PlannedNode, build_model, build_model_and_plan, plan_model, total_macs
from .run_length import run_length_problem

__all__ = ["Schedule", "build_loss", "build_optimizer", "build_scheduler", "build_model", "build_model_and_plan",
           "plan_model", "ModelPlan", "PlannedNode", "total_macs", "build_data", "static_input_shape",
           "absolutize_layer_paths", "check_task", "run_length_problem"]


def static_input_shape(config) -> tuple[int, ...] | None:
    """The per-sample input shape known from the config alone, or None (csv, npz: read the file).

    Lets ``trainkit summary`` work before a data set is downloaded.
    """
    return config.resolved.data.static_shape()


def check_task(config, task: str, unavailable: tuple[str, ...] = ()) -> None:
    """Refuse metric names that the data's task does not have (when only the data could tell the task).

    The first pass checks them when the config decides the task (a CSV with
    ``task: null`` leaves it to the data); the problem is placed in the file.
    ``unavailable`` names metrics of the task these data cannot give (``bpc`` of
    a word vocabulary), which are refused too.
    """
    from trainkit.registry import find_metric, metric_names

    problems = []
    resolved = config.resolved
    watched = []
    if resolved.train.early_stopping is not None:
        watched.append((("train", "early_stopping", "metric"), resolved.train.early_stopping.metric))
    sched = resolved.scheduler
    if sched is not None and sched.metric is not None:
        watched.append((("scheduler", "metric"), sched.metric))
    for path, name in watched:
        if find_metric(name, task) is None:
            problems.append((path, f"unknown metric '{name}' for this {task} data (known for {task}: "
                                   f"{', '.join(metric_names(task))})"))
        elif find_metric(name, task)[1].name in unavailable:
            others = [n for n in metric_names(task) if find_metric(n, task)[1].name not in unavailable]
            problems.append((path, f"'{name}' cannot be measured on these data ({find_metric(name, task)[1].doc}); "
                                   f"watch another metric ({', '.join(others)})"))
    if problems:
        raise config.error(problems)


def build_data(config):
    """The data bundle of the config; problems the loaded data reveals are placed in the config file."""
    from trainkit.data import build

    return build(config.resolved.data, seed=config.resolved.seed, locate=config.problem)
