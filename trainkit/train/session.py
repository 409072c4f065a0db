"""One training or evaluation session: everything between the CLI and the Trainer.

``train`` reads as the story of a run: prepare everything (nothing is written
if the config, the data or a resumed checkpoint is refused), open or create the
run directory, train, report, and record how the run ended. What can be built
before writing lives in :mod:`.prepare`, the directory and its logs in
:class:`~.run.Run`, the epochs in :class:`~.trainer.Trainer`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import CheckpointError, ConfigError, DivergedError, RunDirError, TrainkitError
from trainkit.utils.atomic import atomic_write_json
from .checkpoint import check_state_fits, find_checkpoint, load_model_weights
from .evaluate import evaluate
from ..assemble.prepare import Prepared, model_fingerprint, prepare, prepare_model, resolved_yaml
from .report import report_tables, write_plots, write_report
from .run import Run
from .trainer import Interrupted, Trainer

__all__ = ["train", "eval_run", "build_report", "finish_report", "prepare", "prepare_model", "Prepared",
           "model_fingerprint", "resolved_yaml", "RESUMABLE_KEYS"]

#: Keys ``--set`` may change when resuming a run (the model, data and optimizer must stay as they were).
RESUMABLE_KEYS = ("train.",)


def _show_summary(run: Run, prep: Prepared) -> None:
    from ..views.summary import render_summary, summarize

    summary = summarize(prep.config, prep.model, prep.bundle.input_shape)
    if not run.log.quiet:
        render_summary(summary, run.log.console)
    if run.log.file_console is not None:
        render_summary(summary, run.log.file_console)


def _open_for_resume(resume, overrides) -> tuple[Run, Prepared, Path]:
    run = Run.open(resume)
    bad = [o for o in overrides if not o.strip().startswith(RESUMABLE_KEYS)]
    if bad:
        raise ConfigError(f"--set {bad[0]}: only train.* keys can change when resuming a run "
                          "(the model, data and optimizer must stay as they were)")
    prep = prepare(run.config_path, overrides)
    return run, prep, find_checkpoint(run.checkpoints / "last")


def _resume(run: Run, prep: Prepared, trainer: Trainer, checkpoint: Path, command: list[str]) -> None:
    """Restore the trainer from the last checkpoint; only an accepted checkpoint changes the run's files."""
    meta = trainer.restore(checkpoint)
    if meta.get("config_hash") != prep.fingerprint:
        raise CheckpointError(f"{checkpoint}: the checkpoint was written for a different model/data/optimizer "
                              "config than this run's config.yaml")
    done, epochs = trainer.state.epoch, prep.config.resolved.train.epochs
    if done >= epochs and trainer.state.in_epoch is None:
        raise RunDirError(f"{run.path} already completed {done} of {epochs} epochs; "
                          f"to train further: trainkit train --resume {run.path} --set train.epochs=N (N > {done})")
    run.resume(resolved_yaml(prep.config), epochs_done=done, epochs=epochs, command=command)
    run.print(f"resuming {run.path} after epoch {done}" + (" (mid-epoch)" if trainer.state.in_epoch else ""))


def _start(run: Run, prep: Prepared, config_path, command: list[str]) -> None:
    config = prep.config.resolved
    run.start(resolved_yaml(prep.config), name=config.name, seed=config.seed, epochs=config.train.epochs,
              command=command, config_file=str(config_path), data=prep.bundle.info())
    run.print(f"run directory: {run.path}")


def train(config_path, overrides=(), *, run_dir=None, runs_dir=None, resume=None, quiet=False, console=None,
          command=None, parallel=None) -> int:
    """``trainkit train``: returns the exit code (0 done, 3 diverged, 130 interrupted).

    ``parallel``: on rank 0 of a data-parallel job, the job's side of the story
    (:class:`trainkit.distributed.session.Rank0`): the other ranks prepare the
    validated config, the trainer is its data-parallel one, and the started or
    resumed state goes to every rank before training.
    """
    from rich.console import Console
    console = console or Console()
    command = list(command if command is not None else sys.argv)
    if resume is not None:
        run, prep, checkpoint = _open_for_resume(resume, overrides)
    else:
        prep = prepare(config_path, overrides)
    if parallel is not None:
        parallel.prepared(prep)
    if resume is None:
        run = Run.create(runs_dir, prep.config.name, exact=run_dir)
    run.open_log(console, quiet)
    trainer = Trainer(prep, run) if parallel is None else parallel.trainer(prep, run)
    try:
        if resume is not None:
            _resume(run, prep, trainer, checkpoint, command)
        else:
            _start(run, prep, config_path, command)
        if parallel is not None:
            parallel.started(run, trainer)
        _show_summary(run, prep)
        trainer.fit()
    except Interrupted:
        run.finish("interrupted", message="interrupted by a signal")
        return _end(run, f"\n[yellow]interrupted.[/] Resume with:  trainkit train --resume {run.path}", 130)
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint on disk stays valid
        run.fail_quietly("interrupted", "aborted by a second Ctrl-C")
        return _end(run, f"\n[yellow]aborted.[/] Resume from the last checkpoint with:  trainkit train "
                         f"--resume {run.path}", 130)
    except DivergedError as exc:
        run.finish("diverged", message=str(exc))
        return _end(run, f"[bold red]diverged:[/] {exc}", 3)
    except BaseException as exc:
        run.fail_quietly("failed", str(exc) if isinstance(exc, TrainkitError) else f"{type(exc).__name__}: {exc}")
        run.close()
        raise
    try:
        report = finish_report(run.path, prep, trainer)
        run.finish("completed", test=report.get(report["split"], {}).get("accuracy") if report else None)
    except TrainkitError as exc:
        run.fail_quietly("failed", str(exc))
        run.close()
        raise
    for table in report_tables(report) if report is not None else ():
        run.print(table, always=True)
    return _end(run, f"run directory: {run.path}", 0)


def _end(run: Run, message: str, code: int) -> int:
    run.print(message, always=True)
    run.close()
    return code


def finish_report(rdir: Path, prep: Prepared, trainer: Trainer):
    """At the end of training: report.json/md on the test split with the best checkpoint, plots."""
    split = "test" if prep.bundle.test is not None else ("val" if prep.bundle.val is not None else None)
    report = None
    if split is not None:
        which = "best" if (rdir / "checkpoints" / "best").exists() else "last"
        report = build_report(rdir, prep, which, split)
        write_report(rdir, report)
    write_plots(rdir, trainer.run.metrics.rows(), report, prep.bundle.task)
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
    run = Run.open(run_dir)
    if not run.config_path.exists():
        raise RunDirError(f"{run.path}: no config.yaml; not a complete trainkit run directory")
    prep = prepare(run.config_path, with_optimizer=False)
    report = build_report(run.path, prep, checkpoint, split)
    name = checkpoint if checkpoint in ("best", "last") else "custom"
    atomic_write_json(run.path / f"eval-{split}-{name}.json", report)
    return report
