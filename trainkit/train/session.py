"""One training or evaluation session: everything between the CLI and the Trainer.

``train`` reads as the story of a run: prepare everything (nothing is written
if the config, the data or a resumed checkpoint is refused), open or create the
run directory, train, report, and record how the run ended. What can be built
before writing lives in :mod:`.prepare`, the directory and its logs in
:class:`~.run.Run`, the epochs in :class:`~.trainer.Trainer`.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import CheckpointError, ConfigError, DivergedError, RunDirError, TrainkitError
from trainkit.utils.atomic import atomic_write_json
from .checkpoint import check_state_fits, find_checkpoint, load_checkpoint, load_model_weights, recover_checkpoint
from .evaluate import evaluate
from ..assemble.prepare import Prepared, model_fingerprint, prepare, prepare_model, resolved_yaml
from .diagnostics import read_rows, write_diagnostics_plot
from .html_report import write_html_report
from .report import report_tables, write_plots, write_report
from .callbacks import run_callbacks
from .run import Run
from .trainer import Interrupted, Trainer
from .trust import check_code, record_code
from trainkit.utils.text import shown

__all__ = ["train", "eval_run", "build_report", "finish_report", "rebuild_report", "prepare", "prepare_model",
           "Prepared", "model_fingerprint", "resolved_yaml", "RESUMABLE_KEYS"]

#: Keys ``--set`` may change when resuming a run (the model, data and optimizer must stay as they were).
RESUMABLE_KEYS = ("train.",)


def _show_summary(run: Run, prep: Prepared) -> None:
    from ..views.summary import render_summary, summarize

    summary = summarize(prep.config, prep.model, prep.bundle.input_shape)
    if not run.log.quiet:
        render_summary(summary, run.log.console)
    if run.log.file_console is not None:
        render_summary(summary, run.log.file_console)


def _open_for_resume(resume, overrides, trust_code: bool) -> tuple[Run, Prepared, Path | None]:
    """Lock the run, check what its config may run, prepare it; nothing of the run changes here."""
    run = Run.open_for_writing(resume)
    try:
        bad = [o for o in overrides if not o.strip().startswith(RESUMABLE_KEYS)]
        if bad:
            raise ConfigError(f"--set {shown_key(bad[0])}: only train.* keys can change when resuming a run "
                              "(the model, data and optimizer must stay as they were)")
        if not run.config_path.exists():
            raise RunDirError(f"{run.path}: no config.yaml; not a complete trainkit run directory")
        _check_run_code(run, trust_code)
        prep = prepare(run.config_path, overrides)
        try:
            checkpoint = find_checkpoint(run.checkpoints / "last")
        except CheckpointError:
            if _started_nothing(run):
                checkpoint = None  # killed before its first checkpoint: the run starts over
            else:
                raise
        return run, prep, checkpoint
    except BaseException:
        run.close()
        raise


def shown_key(text: str) -> str:
    """An override as messages show it (undecodable bytes written as escapes)."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def _check_run_code(run: Run, trust_code: bool) -> None:
    """Before a run directory's config builds anything: its custom layers must be the recorded code."""
    if trust_code:
        return
    from ..config import load_config

    config = load_config(run.config_path, validate_layer=None)  # reading it imports nothing
    check_code(config.data, run.info.data.get("code"), run.path, run.config_path)


def _started_nothing(run: Run) -> bool:
    """A run killed (or failed to write) before its first ``last`` checkpoint: no epoch is recorded as done.

    Such a run starts over from its own config and seed, which gives exactly the run that was meant.
    """
    return run.info.data.get("epochs_done") == 0


def _needs_finishing(run: Run, prep: Prepared) -> bool:
    """The epochs are done but the run did not end as ``completed`` with its report and plots."""
    if run.info.status != "completed":
        return True
    wanted = ["curves.png", "report.html"]  # report.html is written last, after run.json says completed
    if prep.bundle.test is not None or prep.bundle.val is not None:
        wanted.append("report.json")
    return not all((run.path / name).is_file() for name in wanted)


def _resume(run: Run, prep: Prepared, trainer: Trainer, checkpoint: Path | None, command: list[str]) -> bool:
    """Restore the trainer from the last checkpoint; only an accepted checkpoint changes the run's files.

    Returns True when the epochs are all done and only the report and plots remain.
    """
    epochs = prep.config.resolved.train.epochs
    if checkpoint is None:
        run.resume(resolved_yaml(prep.config), epochs_done=0, epochs=epochs, command=command)
        _record_code(run, prep)
        run.print(f"no checkpoint of {shown(run.path)} was written before it stopped; training it from the start")
        return False
    meta = trainer.restore(checkpoint)
    if not prep.matches(meta.get("config_hash")):
        raise CheckpointError(f"{checkpoint}: the checkpoint was written for a different model/data/optimizer "
                              "config than this run's config.yaml")
    check_files = getattr(prep.bundle, "check_run_files", None)  # text data: the vocabulary must be the run's
    if check_files is not None:
        check_files(run.path)
    check_run_length(prep, trainer, resumed=True)
    done = trainer.state.epoch
    finished = trainer.finished
    if finished and not _needs_finishing(run, prep):
        why = f"already completed {done} of {epochs} epochs"
        if done < epochs:
            why = f"stopped early after {done} of {epochs} epochs (train.early_stopping)"
        raise RunDirError(f"{run.path} {why}; to train further: trainkit train --resume {run.path} "
                          f"--set train.epochs=N (N > {done})")
    run.resume(resolved_yaml(prep.config), epochs_done=done, epochs=epochs, command=command)
    _record_code(run, prep)
    for which in ("last", "best"):  # a kill mid-swap leaves leftovers: put them back before using them
        recover_checkpoint(run.checkpoints / which)
    if finished:
        run.print(f"resuming {shown(run.path)}: all {done} epochs are done; writing its report and plots")
    else:
        run.print(f"resuming {shown(run.path)} after epoch {done}" + (" (mid-epoch)" if trainer.state.in_epoch else ""))
    return finished


def check_run_length(prep: Prepared, trainer: Trainer, resumed: bool) -> None:
    """A scheduler with a fixed cycle (onecycle) cannot step past it: refuse an extension longer than the
    cycle the resumed run was started with (a new run is checked by ``prepare``)."""
    from ..assemble import run_length_problem

    problem = run_length_problem(prep.config, trainer.scheduler, len(trainer.train_loader), resumed=resumed)
    if problem is not None:
        raise prep.config.error([problem])


def _record_code(run: Run, prep: Prepared) -> None:
    from ..assemble.custom import absolutize_layer_paths

    run.update(code=record_code(absolutize_layer_paths(prep.config), run.path))


def _start(run: Run, prep: Prepared, config_path, command: list[str]) -> None:
    from ..assemble.custom import absolutize_layer_paths

    config = prep.config.resolved
    run.start(resolved_yaml(prep.config), name=config.name, seed=config.seed, epochs=config.train.epochs,
              command=command, config_file=str(config_path), data=prep.bundle.info(),
              code=record_code(absolutize_layer_paths(prep.config), run.path))
    run_files = getattr(prep.bundle, "run_files", None)  # text data: vocab.json, which generate reads
    for name, content in (run_files() if run_files is not None else {}).items():
        atomic_write_json(run.path / name, content)
    run.print(f"run directory: {shown(run.path)}")


def train(config_path, overrides=(), *, run_dir=None, runs_dir=None, resume=None, quiet=False, console=None,
          command=None, trust_code: bool = False, parallel=None, callbacks=()) -> int:
    """``trainkit train``: returns the exit code (0 done, 3 diverged, 130 interrupted).

    ``callbacks``: more :class:`~.callbacks.Callback` objects for the trainer, after the ones the
    config asks for (``train.tensorboard``).

    ``trust_code`` (``--trust-code``) lets a resumed run's config import custom layers that
    are not the recorded code (see :mod:`.trust`).

    ``parallel``: on rank 0 of a data-parallel job, the job's side of the story
    (:class:`trainkit.distributed.session.Rank0`): the other ranks prepare the
    validated config, the trainer is its data-parallel one, and the started or
    resumed state goes to every rank before training.
    """
    from rich.console import Console
    console = console or Console()
    command = list(command if command is not None else sys.argv)
    if resume is not None:
        run, prep, checkpoint = _open_for_resume(resume, overrides, trust_code)
    else:
        prep = prepare(config_path, overrides)
        observers = run_callbacks(prep)  # a missing optional package is refused before the run exists
    if parallel is not None:
        parallel.prepared(prep)
    if resume is None:
        run = Run.create(runs_dir, prep.config.name, exact=run_dir)
    try:
        if resume is not None:
            observers = run_callbacks(prep)
        run.open_log(console, quiet)
    except BaseException:
        run.close()
        raise
    trainer = Trainer(prep, run) if parallel is None else parallel.trainer(prep, run)
    trainer.callbacks = trainer.callbacks + observers + list(callbacks)
    resume_hint = f"trainkit train --resume {shown(run.path)}"
    try:
        finished = False
        if resume is not None:
            finished = _resume(run, prep, trainer, checkpoint, command)
        else:
            _start(run, prep, config_path, command)
        if parallel is not None:
            parallel.started(run, trainer)
        if not finished:
            _show_summary(run, prep)
            trainer.fit()
        report = finish_report(run.path, prep, trainer)
        run.finish("completed", test=report.get(report["split"], {}).get("accuracy") if report else None)
    except Interrupted:
        run.finish("interrupted", message="interrupted by a signal")
        return _end(run, f"\n[yellow]interrupted.[/] Resume with:  {resume_hint}", 130)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM outside the epochs (the report), or a second Ctrl-C
        run.fail_quietly("interrupted", "interrupted by a signal")
        return _end(run, f"\n[yellow]interrupted.[/] The last checkpoint is intact; resume with:  {resume_hint}", 130)
    except DivergedError as exc:
        run.finish("diverged", message=str(exc))
        return _end(run, f"[bold red]diverged:[/] {shown(exc)}", 3)
    except BaseException as exc:
        run.fail_quietly("failed", str(exc) if isinstance(exc, TrainkitError) else f"{type(exc).__name__}: {exc}")
        run.close()
        raise
    _write_html(run, prep)
    for table in report_tables(report) if report is not None else ():
        run.print(table, always=True)
    return _end(run, f"run directory: {shown(run.path)}", 0)


def _end(run: Run, message: str, code: int) -> int:
    try:
        run.print(message, always=True)
    finally:
        run.close()
    return code


def finish_report(rdir: Path, prep: Prepared, trainer: Trainer):
    """At the end of training: report.json/md on the test split with the best checkpoint, plots."""
    split = _report_split(prep)
    report = None
    if split is not None:
        which = "best" if (rdir / "checkpoints" / "best").exists() else "last"
        report = build_report(rdir, prep, which, split)
        write_report(rdir, report)
    write_plots(rdir, trainer.run.metrics.rows(), report, prep.bundle.task)
    write_diagnostics_plot(rdir, read_rows(rdir))
    return report


def _write_html(run: Run, prep: Prepared) -> None:
    """report.html, once run.json says how the run ended; training succeeded, so a failure here only warns."""
    try:
        summary, dot_text = _model_views(prep.config, prep.model, prep.bundle.input_shape)
        write_html_report(run.path, summary, dot_text)
    except TrainkitError as exc:
        from rich.markup import escape
        run.print(f"[yellow]report.html not written:[/] {escape(str(exc))}; rebuild it with: "
                  f"trainkit report {escape(str(run.path))}", always=True)


def _model_views(config, model, input_shape):
    """The model's summary and layer graph (DOT) for report.html."""
    from ..views.summary import summarize, to_dot

    summary = summarize(config, model, input_shape)
    return summary, to_dot(summary)


def rebuild_report(run_dir) -> list[Path]:
    """``trainkit report``: rewrite report.html (and diagnostics.png) from a run directory's files.

    The model is rebuilt from the run's config.yaml for the summary and layer
    graph; when that is impossible (a custom layer file gone, data needed and
    absent) the page says why and shows everything else.
    """
    run = Run.open(run_dir)
    summary = dot_text = note = None
    try:
        config, model, shape = prepare_model(run.config_path)
        summary, dot_text = _model_views(config, model, shape)
    except TrainkitError as exc:
        note = f"the model could not be rebuilt from config.yaml: {exc}"
    written = []
    if write_diagnostics_plot(run.path, read_rows(run.path)):
        written.append(run.path / "diagnostics.png")
    written.append(write_html_report(run.path, summary, dot_text, note))
    return written


def _load_weights(rdir: Path, prep: Prepared, checkpoint: str) -> tuple[str, int | None]:
    if not str(checkpoint).strip():
        raise CheckpointError("--checkpoint is empty; give best, last, or the path of a checkpoint folder or "
                              ".safetensors file")
    if checkpoint in ("best", "last"):
        path = find_checkpoint(rdir / "checkpoints" / checkpoint)
        label = checkpoint
    else:
        path = Path(checkpoint)
        if not path.exists():
            raise CheckpointError(f"{path}: no such checkpoint (use best, last, or a path to a checkpoint folder or "
                                  ".safetensors file)")
        label = str(path)
    meta = None
    if path.is_dir():
        weights, _, meta = load_checkpoint(path)
    else:
        weights = load_model_weights(path)
    expected = {k: (tuple(v.shape), v.dtype) for k, v in prep.model.state_dict().items()}
    check_state_fits(weights, expected, source=str(path / "model.safetensors" if path.is_dir() else path))
    epoch = None
    if meta is not None:
        if meta.get("config_hash") is not None and not prep.matches(meta.get("config_hash")):
            raise CheckpointError(f"{rdir / 'config.yaml'}: the model, data or optimizer it describes are not the "
                                  f"ones checkpoint {path} was trained with (the file was edited after training); "
                                  "put the run's config back, or evaluate with a config of your own")
        epoch = meta.get("epoch") if isinstance(meta.get("epoch"), int) and not isinstance(
            meta.get("epoch"), bool) else None
    prep.model.load_state_dict({k: weights[k] for k in expected})
    return label, epoch


def _report_split(prep: Prepared) -> str | None:
    """The split a run's report evaluates: test, else val (data without a test part), else none."""
    return "test" if prep.bundle.test is not None else ("val" if prep.bundle.val is not None else None)


def build_report(rdir: Path, prep: Prepared, checkpoint: str, split: str) -> dict:
    """Evaluate ``checkpoint`` on ``split``: the dict behind report.json and ``trainkit eval --json``."""
    label, epoch = _load_weights(rdir, prep, checkpoint)
    loader = prep.bundle.eval_loader(split)
    if loader is None:
        raise TrainkitError(f"{rdir}: this run's data has no {split} split")
    meter = evaluate(prep.model, loader, prep.loss_fn, prep.bundle.task, prep.bundle.num_classes,
                     getattr(prep.bundle, "meter_options", None), getattr(prep.bundle, "tta", "none"))
    return {"run": rdir.name, "task": prep.bundle.task, "dataset": prep.bundle.name, "split": split,
            "checkpoint": label, "epoch": epoch, split: meter.report(prep.bundle.class_names)}


def eval_run(run_dir, checkpoint: str = "best", split: str | None = None, trust_code: bool = False) -> dict:
    """``trainkit eval``: rebuild the run's model, load a checkpoint, evaluate, write eval-<split>-<ckpt>.json.

    ``split`` None: the split report.json uses (test, else val when the data have no test part).

    It takes no lock: a run still training can be evaluated (its checkpoints are swapped in whole).
    Custom layers named by the run's config must be the recorded code, unless ``trust_code``.
    """
    run = Run.open(run_dir)
    if not run.config_path.exists():
        raise RunDirError(f"{run.path}: no config.yaml; not a complete trainkit run directory")
    _check_run_code(run, trust_code)
    prep = prepare(run.config_path, with_optimizer=False)
    if split is None:
        split = _report_split(prep) or "test"
    check_files = getattr(prep.bundle, "check_run_files", None)
    if check_files is not None:
        check_files(run.path)
    report = build_report(run.path, prep, checkpoint, split)
    name = checkpoint if checkpoint in ("best", "last") else "custom"
    atomic_write_json(run.path / f"eval-{split}-{name}.json", report)
    return report
