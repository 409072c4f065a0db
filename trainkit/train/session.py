"""One training or evaluation session: everything between the CLI and the Trainer.

Every check that can fail on user input (config, overrides, data files, model
shapes) runs *before* a run directory is created, so a refused config leaves
nothing behind.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..autograd.random import manual_seed
from ..errors import CheckpointError, ConfigError, DivergedError, RunDirError, TrainkitError
from .atomic import StorageError, atomic_write_json, atomic_write_text
from .checkpoint import check_state_fits, find_checkpoint, load_model_weights
from .console import RunLog
from .evaluate import evaluate
from .report import report_tables, write_plots, write_report
from .rundir import MetricsLog, RunInfo, create_run_dir, open_run
from .trainer import Interrupted, Trainer

RESUMABLE_KEYS = ("train.",)


@dataclass
class Prepared:
    """A validated config with its data and model built (nothing written yet)."""

    config: object
    bundle: object
    model: object
    loss_fn: object
    optimizer: object
    scheduler: object


def model_fingerprint(data: dict) -> str:
    """Hash of everything but ``train`` (which --resume may change): the checkpoint must match it."""
    core = {k: v for k, v in data.items() if k not in ("train", "name")}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()


def prepare(config_path, overrides=(), *, with_optimizer: bool = True) -> Prepared:
    """Load and validate the config, build the data and the model: all before touching disk."""
    from ..assemble import build_data, build_loss, build_model, build_optimizer, build_scheduler
    from ..config import load_config

    config = load_config(config_path, list(overrides))
    manual_seed(config.resolved.seed)
    bundle = build_data(config)
    model = build_model(config, bundle.input_shape, num_classes=bundle.num_classes)
    loss_fn = build_loss(config)
    optimizer = scheduler = None
    if with_optimizer:
        optimizer = build_optimizer(config, model)
        steps = len(bundle.train_loader())
        scheduler = build_scheduler(config, optimizer, steps_per_epoch=steps)
    return Prepared(config, bundle, model, loss_fn, optimizer, scheduler)


def resolved_yaml(config) -> str:
    """The resolved config for the run directory, with file-based custom layers made absolute."""
    from ..assemble.custom import absolutize_layer_paths
    from ..config.yamlsafe import dump_yaml
    return dump_yaml(absolutize_layer_paths(config))


def prepare_model(config_path, overrides=()):
    """For ``trainkit summary``: the model from the config alone when its input shape is known
    without reading data (downloadable sets need not be present), else via the data."""
    from ..assemble import build_model, static_input_shape
    from ..config import load_config

    config = load_config(config_path, list(overrides))
    shape = static_input_shape(config)
    if shape is None:
        prep = prepare(config_path, overrides, with_optimizer=False)
        return prep.config, prep.model, prep.bundle.input_shape
    manual_seed(config.resolved.seed)
    return config, build_model(config, shape), shape


def _show_summary(log: RunLog, prep: Prepared) -> None:
    from ..views.summary import render_summary, summarize

    summary = summarize(prep.config, prep.model, prep.bundle.input_shape)
    if not log.quiet:
        render_summary(summary, log.console)
    if log.file_console is not None:
        render_summary(summary, log.file_console)


def train(config_path, overrides=(), *, run_dir=None, runs_dir=None, resume=None, quiet=False, console=None,
          command=None) -> int:
    """``trainkit train``: returns the exit code (0 done, 3 diverged, 130 interrupted)."""
    from rich.console import Console
    console = console or Console()
    command = list(command if command is not None else sys.argv)
    if resume is not None:
        rdir = Path(resume)
        info = open_run(rdir)
        bad = [o for o in overrides if not o.strip().startswith(RESUMABLE_KEYS)]
        if bad:
            raise ConfigError(f"--set {bad[0]}: only train.* keys can change when resuming a run "
                              "(the model, data and optimizer must stay as they were)")
        prep = prepare(rdir / "config.yaml", overrides)
        ckpt = find_checkpoint(rdir / "checkpoints" / "last")
    else:
        prep = prepare(config_path, overrides)
        rdir = create_run_dir(runs_dir, prep.config.name, exact=run_dir)
    cfg = prep.config.data
    log = RunLog(console, rdir / "train.log", quiet=quiet)
    trainer = None
    started = None  # the RunInfo to mark failed/interrupted: only once this command owns the run
    try:
        if resume is None:
            atomic_write_text(rdir / "config.yaml", resolved_yaml(prep.config))
        metrics_log = MetricsLog(rdir)
        fingerprint = model_fingerprint(cfg)
        if resume is not None:
            trainer = Trainer(resolved=cfg, model=prep.model, loss_fn=prep.loss_fn, optimizer=prep.optimizer,
                              scheduler=prep.scheduler, bundle=prep.bundle, run_dir=rdir, log=log, info=info,
                              metrics_log=metrics_log, config_hash=fingerprint)
            meta = trainer.restore(ckpt)
            if meta.get("config_hash") != fingerprint:
                raise CheckpointError(f"{ckpt}: the checkpoint was written for a different model/data/optimizer "
                                      "config than this run's config.yaml")
            done = trainer.state.epoch
            if done >= cfg["train"]["epochs"] and trainer.state.in_epoch is None:
                raise RunDirError(f"{rdir} already completed {done} of {cfg['train']['epochs']} epochs; "
                                  f"to train further: trainkit train --resume {rdir} --set train.epochs=N (N > {done})")
            # Only now, with the checkpoint accepted, may the run's files change: a refused resume
            # must leave a completed (or interrupted) run exactly as it was.
            atomic_write_text(rdir / "config.yaml", resolved_yaml(prep.config))
            metrics_log.truncate_after(done)
            info.resume(command=command, epochs_planned=cfg["train"]["epochs"])
            started = info
            log.print(f"resuming {rdir} after epoch {done}" + (" (mid-epoch)" if trainer.state.in_epoch else ""))
        else:
            info = RunInfo.create(rdir, name=prep.config.name, seed=cfg["seed"], epochs_planned=cfg["train"]["epochs"],
                                  command=command, config_file=str(config_path), data=prep.bundle.info())
            trainer = Trainer(resolved=cfg, model=prep.model, loss_fn=prep.loss_fn, optimizer=prep.optimizer,
                              scheduler=prep.scheduler, bundle=prep.bundle, run_dir=rdir, log=log, info=info,
                              metrics_log=metrics_log, config_hash=fingerprint)
            started = info
            log.print(f"run directory: {rdir}")
        _show_summary(log, prep)
        trainer.fit()
    except Interrupted:
        info.finish("interrupted", message="interrupted by a signal")
        log.print(f"\n[yellow]interrupted.[/] Resume with:  trainkit train --resume {rdir}", always=True)
        log.close()
        return 130
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint on disk stays valid
        _finish_quietly(started, "interrupted", "aborted by a second Ctrl-C")
        log.print(f"\n[yellow]aborted.[/] Resume from the last checkpoint with:  trainkit train --resume {rdir}",
                  always=True)
        log.close()
        return 130
    except DivergedError as exc:
        info.finish("diverged", message=str(exc))
        log.print(f"[bold red]diverged:[/] {exc}", always=True)
        log.close()
        return 3
    except TrainkitError as exc:
        _finish_quietly(started, "failed", str(exc))
        log.close()
        raise
    except BaseException as exc:
        _finish_quietly(started, "failed", f"{type(exc).__name__}: {exc}")
        log.close()
        raise
    try:
        report = finish_report(rdir, prep, trainer)
        info.finish("completed", test=report.get(report["split"], {}).get("accuracy") if report else None)
    except TrainkitError as exc:
        _finish_quietly(info, "failed", str(exc))
        log.close()
        raise
    if report is not None:
        for r in report_tables(report):
            log.print(r, always=True)
    log.print(f"run directory: {rdir}", always=True)
    log.close()
    return 0


def _finish_quietly(info, status, message):
    if info is None:
        return
    try:
        info.finish(status, message=message)
    except StorageError:
        pass


def finish_report(rdir: Path, prep: Prepared, trainer: Trainer):
    """At the end of training: report.json/md on the test split with the best checkpoint, plots."""
    split = "test" if prep.bundle.test is not None else ("val" if prep.bundle.val is not None else None)
    report = None
    if split is not None:
        which = "best" if (rdir / "checkpoints" / "best").exists() else "last"
        report = build_report(rdir, prep, which, split)
        write_report(rdir, report)
    write_plots(rdir, MetricsLog(rdir).rows(), report)
    return report


def _load_weights(rdir: Path, prep: Prepared, checkpoint: str) -> tuple[str, int | None]:
    if checkpoint in ("best", "last"):
        path = find_checkpoint(rdir / "checkpoints" / checkpoint)
        label = checkpoint
    else:
        path = Path(checkpoint)
        if not path.exists():
            raise CheckpointError(f"{path}: no such checkpoint (use best, last, or a path to a checkpoint folder or "
                                  ".safetensors file)")
        label = str(path)
    weights = load_model_weights(path)
    expected = {k: (tuple(v.shape), v.dtype) for k, v in prep.model.state_dict().items()}
    check_state_fits(weights, expected, source=str(path / "model.safetensors" if path.is_dir() else path))
    prep.model.load_state_dict({k: weights[k] for k in expected})
    epoch = None
    state_json = path / "state.json" if path.is_dir() else None
    if state_json is not None and state_json.exists():
        try:
            epoch = json.loads(state_json.read_text()).get("epoch")
        except (OSError, ValueError):
            epoch = None
    return label, epoch


def build_report(rdir: Path, prep: Prepared, checkpoint: str, split: str) -> dict:
    """Evaluate ``checkpoint`` on ``split``: the dict behind report.json and ``trainkit eval --json``."""
    label, epoch = _load_weights(rdir, prep, checkpoint)
    loader = prep.bundle.eval_loader(split)
    if loader is None:
        raise TrainkitError(f"{rdir}: this run's data has no {split} split")
    meter = evaluate(prep.model, loader, prep.loss_fn, prep.bundle.task, prep.bundle.num_classes)
    return {"run": rdir.name, "task": prep.bundle.task, "dataset": prep.bundle.name, "split": split,
            "checkpoint": label, "epoch": epoch, split: meter.report(prep.bundle.class_names)}


def eval_run(run_dir, checkpoint: str = "best", split: str = "test") -> dict:
    """``trainkit eval``: rebuild the run's model, load a checkpoint, evaluate, write eval-<split>-<ckpt>.json."""
    rdir = Path(run_dir)
    open_run(rdir)
    if not (rdir / "config.yaml").exists():
        raise RunDirError(f"{rdir}: no config.yaml; not a complete trainkit run directory")
    prep = prepare(rdir / "config.yaml", with_optimizer=False)
    report = build_report(rdir, prep, checkpoint, split)
    name = checkpoint if checkpoint in ("best", "last") else "custom"
    atomic_write_json(rdir / f"eval-{split}-{name}.json", report)
    return report
