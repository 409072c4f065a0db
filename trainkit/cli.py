"""The ``trainkit`` command line: thin wrappers over the library (train, eval, generate, runs, summary, gradcheck)."""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import TrainkitError
from .utils.text import cell, shown

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Train deep-learning models described in YAML files, on trainkit's own numpy autograd engine.",
)
console = Console()
err_console = Console(stderr=True)


_wide_console: Console | None = None


def _wide() -> Console:
    """The console, or for pipes and CI logs a wider page: tables folded into 80 columns are unreadable."""
    global _wide_console
    if console.is_terminal:
        return console
    if _wide_console is None:
        _wide_console = Console(width=max(console.width, 130))
    return _wide_console


def user_errors(fn):
    """Turn the tool's own errors into a message and exit code 2 (bugs keep their traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TrainkitError as exc:
            # Messages quote paths, keys, values and labels: shown literally, never as markup.
            err_console.print(f"[bold red]error:[/] {shown(exc)}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """SIGTERM stops a command as Ctrl-C does (exit 130, the run marked interrupted, its resume hint),
    also while data load or the report is written; the trainer's own handler takes over during epochs."""
    import signal

    try:
        signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not the main thread (an embedding application): leave its handlers alone
        pass


def _version(value: bool):
    if value:
        import numpy
        console.print(f"trainkit {__version__} (numpy {numpy.__version__}, python {sys.version.split()[0]})")
        raise typer.Exit()


def _show_data_warnings() -> None:
    """Warnings about the user's data (skipped files) print as one plain line, not Python's source listing."""
    import warnings

    from .data.images import DataWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if isinstance(category, type) and issubclass(category, DataWarning):
            err_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """trainkit: YAML-driven training on a numpy autograd engine with PyTorch's API."""
    from .registry import PluginError, load_plugins

    _show_data_warnings()
    _stop_on_sigterm()

    try:  # installed packages' components (entry-point group trainkit.plugins) become YAML names
        load_plugins()
    except PluginError as exc:
        err_console.print(f"[bold red]error:[/] {shown(exc)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
@user_errors
def gradcheck(
    config: Optional[Path] = typer.Argument(None, help="A config: check its whole model + loss on a tiny batch."),
    op: Optional[str] = typer.Option(None, "--op", help="Only cases whose name contains this."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key (key.path=value)."),
):
    """Check every op's and layer's analytic gradients against finite differences (float64).

    Examples:

    \b
      trainkit gradcheck
      trainkit gradcheck --op conv2d
      trainkit gradcheck configs/digits_cnn.yaml
    """
    from .testing.run import run_case, select

    if config is not None:
        from .testing.config_case import config_case
        selected = [config_case(config, set_)]
    else:
        selected = select(op)
        if not selected:
            raise TrainkitError(f"no gradient-check case matches --op {op!r}; run `trainkit gradcheck` to list them")
    table = Table(title="Gradient check (float64, central differences)")
    for col, justify in (("op", "left"), ("kind", "left"), ("input shapes", "left"), ("max abs err", "right"),
                         ("max rel err", "right"), ("result", "center"), ("ms", "right")):
        table.add_column(col, justify=justify)
    failures = []
    for case in selected:
        r = run_case(case)
        table.add_row(cell(r.name), r.kind, r.shapes, f"{r.max_abs:.2e}", f"{r.max_rel:.2e}",
                      "[green]pass[/]" if r.passed else "[bold red]FAIL[/]", f"{r.ms:.1f}")
        if not r.passed:
            failures.append(r)
    console.print(table)
    for r in failures:
        console.print(f"[red]{shown(r.name)}[/]: {shown(r.message)}", highlight=False)
    n = len(selected)
    console.print(f"{n - len(failures)} passed, {len(failures)} failed")
    raise typer.Exit(1 if failures else 0)



@app.command()
@user_errors
def train(
    config: Optional[Path] = typer.Argument(None, help="The YAML config to train (omit with --resume)."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key, e.g. --set optimizer.lr=0.01 (repeatable)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Use exactly this (new or empty) run directory."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Create the run under this folder "
                                            "(default: $TRAINKIT_RUNS or ./runs)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this run directory from its last checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final report."),
    trust_code: bool = typer.Option(False, "--trust-code", help="With --resume: import the custom layers the "
                                    "run's config names even if they are not the code it was trained with."),
    procs: Optional[int] = typer.Option(None, "--procs", min=1, help="Train data-parallel on N processes of this "
                                        "machine (started through MPI's mpiexec; needs trainkit[mpi])."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Write TensorBoard event files under "
                                     "RUN/tensorboard/ (same as --set train.tensorboard=true)."),
):
    """Train a model described by a YAML config and write a run directory.

    Under an MPI launcher (mpiexec -n N trainkit train CONFIG) or with --procs N
    the run is data-parallel: each rank trains on its share of every batch and
    the results are a single process's.

    Examples:

    \b
      trainkit train configs/digits_cnn.yaml
      trainkit train configs/cifar_cnn.yaml --set data.root=../shared/data --set data.download=false
      trainkit train --resume runs/20261127-101500-cifar_cnn
      trainkit train --resume runs/20261127-101500-cifar_cnn --set train.epochs=20
      trainkit train configs/cifar_cnn.yaml --procs 2
      mpiexec -n 4 trainkit train configs/cifar_cnn.yaml
      trainkit train configs/digits_mlp.yaml --tensorboard    # then: tensorboard --logdir runs
    """
    from .distributed import mpi_world_size
    from .train.session import train as run_train

    if config is None and resume is None:
        raise TrainkitError("give a CONFIG to train, or --resume RUN_DIR to continue a run")
    if resume is not None and (run_dir is not None or runs_dir is not None):
        raise TrainkitError("--resume continues an existing run directory; it cannot be combined with --run-dir/--runs-dir")
    if run_dir is not None and runs_dir is not None:
        raise TrainkitError("give either --run-dir or --runs-dir, not both")
    if tensorboard:
        set_ = [*set_, "train.tensorboard=true"]
    if procs is not None and procs > 1:
        from .distributed.launch import launch

        raise typer.Exit(launch(procs, config=config, overrides=set_, run_dir=run_dir, runs_dir=runs_dir,
                                resume=resume, quiet=quiet, trust_code=trust_code))
    if mpi_world_size() > 1:
        from .distributed.session import train as run_train  # noqa: F811 - one rank of an MPI job
    code = run_train(config, set_, run_dir=run_dir, runs_dir=runs_dir, resume=resume, quiet=quiet, console=_wide(),
                     trust_code=trust_code)
    raise typer.Exit(code)


@app.command("eval")
@user_errors
def eval_(
    run_dir: Path = typer.Argument(..., help="A run directory written by trainkit train."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best, last, or a path to a checkpoint."),
    split: Optional[str] = typer.Option(None, "--split", help="test, val or train (default: the report's: test, "
                                        "else val when the data have no test part)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Import the custom layers the run's config "
                                    "names even if they are not the code it was trained with."),
):
    """Evaluate a run's checkpoint: accuracy, per-class table, confusion matrix.

    Examples:

    \b
      trainkit eval runs/20261127-101500-digits_cnn
      trainkit eval runs/20261127-101500-digits_cnn --checkpoint last --split val --json
    """
    import json

    from .train.report import report_tables
    from .train.session import eval_run

    if split is not None and split not in ("test", "val", "train"):
        raise TrainkitError(f"--split must be test, val or train, not {split!r}")
    if not checkpoint.strip():
        raise TrainkitError("--checkpoint is empty; give best, last, or the path of a checkpoint folder or "
                            ".safetensors file")
    report = eval_run(run_dir, checkpoint=checkpoint, split=split, trust_code=trust_code)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for r in report_tables(report):
            _wide().print(r)


@app.command()
@user_errors
def predict(
    run_dir: Path = typer.Argument(..., help="A run directory written by trainkit train."),
    inputs: List[str] = typer.Argument(..., help="Image files or folders (image models), CSV files (tabular models)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best, last, or a path to a checkpoint."),
    top_k: int = typer.Option(3, "--top-k", help="How many of the most probable classes to list."),
    as_json: bool = typer.Option(False, "--json", help="Print the predictions as JSON on stdout."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Also write the predictions to this CSV file."),
    batch_size: int = typer.Option(256, "--batch-size", help="Inputs decoded and run through the model at a time."),
    skip_bad_files: bool = typer.Option(False, "--skip-bad-files", help="Leave out (and list) inputs that cannot "
                                        "be read instead of stopping."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Import the custom layers the run's config "
                                    "names even if they are not the files the run recorded."),
):
    """Predict with a trained run: the class (and its probability) of each image or CSV row.

    The run's evaluation transforms are applied (no augmentation); folders are
    searched for images; CSV columns are matched by name to the training file's.

    Examples:

    \b
      trainkit predict runs/20261127-101500-shapes photos/
      trainkit predict runs/20261127-101500-shapes a.png b.jpg --top-k 2 --json
      trainkit predict runs/20261127-101500-iris_mlp new_rows.csv -o predictions.csv
    """
    from .train.predict import as_json as predictions_json
    from .train.predict import load_run, predict as run_predict
    from .views.predict import prediction_table, progress_bar, write_prediction_csv

    run = load_run(run_dir, checkpoint=checkpoint, trust_code=trust_code)
    rows: list[dict] = []
    skipped: list = []
    with progress_bar(err_console) as update:
        for chunk in run_predict(run, inputs, top_k=top_k, batch_size=batch_size, skip_bad_files=skip_bad_files,
                                 skipped=skipped, progress=update):
            rows += chunk
    if output is not None:
        write_prediction_csv(output, rows, top_k)
    if as_json:
        typer.echo(predictions_json(run, rows, skipped))
    else:
        _wide().print(prediction_table(rows, f"{run.path.name} (checkpoint {run.checkpoint}, epoch {run.epoch})"))
    if skipped:
        shown = "; ".join(reason for _, reason in skipped[:8]) + (f"; and {len(skipped) - 8} more"
                                                                  if len(skipped) > 8 else "")
        err_console.print(f"warning: skipped {len(skipped)} input(s) that cannot be read: {shown}", markup=False,
                          highlight=False, soft_wrap=True)
    if output is not None and not as_json:
        err_console.print(f"wrote {output}", markup=False, highlight=False)


@app.command()
@user_errors
def generate(
    run_dir: Path = typer.Argument(..., help="A language-model run directory written by trainkit train."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best, last, or a path to a checkpoint."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Text to continue (default: a line end)."),
    tokens: int = typer.Option(500, "--tokens", help="How many tokens to sample."),
    temperature: float = typer.Option(1.0, "--temperature", help="Divide the logits by this "
                                      "(< 1: safer, > 1: wilder; 0: always the most likely token)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Sample among the K most likely tokens only."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draws: the same seed gives the same text."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Import the custom layers the run's config "
                                    "names even if they are not the files the run recorded."),
):
    """Print text sampled from a language-model run (prompt, then the sampled tokens).

    Examples:

    \b
      trainkit generate runs/20261129-101500-shakespeare_char_gpt
      trainkit generate runs/20261129-101500-shakespeare_char_gpt --prompt "ROMEO:" --tokens 300 --top-k 20 --seed 1
    """
    from .train.generate import generate_text

    text = generate_text(run_dir, checkpoint=checkpoint, prompt=prompt, tokens=tokens, temperature=temperature,
                         top_k=top_k, seed=seed, trust_code=trust_code)
    typer.echo(text)


@app.command()
@user_errors
def runs(runs_dir: Optional[Path] = typer.Argument(None, help="Runs folder (default: $TRAINKIT_RUNS or ./runs).")):
    """List runs, newest first: id, config, status, epochs, best val metric, test accuracy, duration.

    Examples:

    \b
      trainkit runs
      trainkit runs /data/experiments/runs
    """
    from .train.rundir import list_runs

    rows = list_runs(runs_dir)
    table = Table(title=f"runs in {shown(runs_dir or 'runs')}")
    table.add_column("id", no_wrap=True)
    for col in ("config", "status", "epochs", "best val", "test acc", "duration"):
        table.add_column(col, justify="right" if col in ("epochs", "best val", "test acc", "duration") else "left")
    for r in rows:
        status = r.status  # "crashed": status running, but no process holds the run's lock any more
        epochs = f"{r.epochs_done if r.epochs_done is not None else '-'}/{r.epochs_planned or '-'}"
        best = "-"
        if r.best_value is not None:
            best = f"{100 * r.best_value:.2f}%" if (r.best_metric or "").endswith("acc") else f"{r.best_value:.4g} loss"
        test = f"{100 * r.test_accuracy:.2f}%" if r.test_accuracy is not None else "-"
        dur = f"{r.duration_s:.0f}s" if r.duration_s is not None else "-"
        table.add_row(cell(r.id), cell(r.name or "-"), status, epochs, best, test, dur)
    _wide().print(table)
    if not rows:
        console.print("no runs yet: start one with  trainkit train configs/digits_cnn.yaml")
    else:  # runs trained with --tensorboard hold event files; TensorBoard finds them below the folder
        console.print(f"curves of all runs:  tensorboard --logdir {shown(runs_dir or 'runs')}", highlight=False)


@app.command()
@user_errors
def sweep(
    config: Optional[Path] = typer.Argument(None, help="A config with a sweep: section (omit with --resume)."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Trials in the sweep (default: sweep.trials); "
                                         "with --resume, a larger number adds trials."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Trials run at once, each in its own process with "
                             "cpus/jobs threads."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this sweep directory: unfinished "
                                          "trials resume, finished ones are never repeated."),
    sweep_dir: Optional[Path] = typer.Option(None, "--sweep-dir", help="Use exactly this (new or empty) folder."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Create the sweep folder under this folder "
                                            "(default: $TRAINKIT_RUNS or ./runs)."),
):
    """Search hyper-parameters: train one run per trial of the config's sweep: section.

    Each trial is a run directory inside the sweep directory; at the end: a
    table of trials, trials.csv, best.yaml (ready for trainkit train) and
    sweep.png (the metric against each parameter).

    Examples:

    \b
      trainkit sweep configs/digits_mlp_sweep.yaml --trials 8
      trainkit sweep configs/digits_mlp_sweep.yaml --jobs 2
      trainkit sweep --resume runs/20261127-101500-digits_mlp-sweep --trials 12
    """
    from .sweep import run_sweep
    from .sweep.results import trials_table, write_results

    if (config is None) == (resume is None):
        raise TrainkitError("give a CONFIG with a sweep: section, or --resume SWEEP_DIR (not both)")
    if resume is not None and (sweep_dir is not None or runs_dir is not None):
        raise TrainkitError("--resume continues an existing sweep directory; it cannot be combined with "
                            "--sweep-dir/--runs-dir")
    out = _wide()
    path, done, code, spec = run_sweep(config, trials=trials, jobs=jobs, resume=resume, sweep_dir=sweep_dir,
                                 runs_dir=runs_dir, log=lambda text: out.print(shown(text), highlight=False))
    out.print(trials_table(done, spec, f"sweep {path.name}"))
    for line in write_results(path, done, spec):
        out.print(shown(line), highlight=False)
    if code == 130:
        out.print(f"[yellow]interrupted.[/] Continue with:  trainkit sweep --resume {shown(path)}")
    raise typer.Exit(code)


@app.command()
@user_errors
def summary(
    config: Path = typer.Argument(..., help="The YAML config."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key (key.path=value)."),
    dot: Optional[Path] = typer.Option(None, "--dot", help="Also write the layer graph in Graphviz DOT to this file."),
    svg: bool = typer.Option(False, "--svg", help="Render the DOT file to SVG too (needs the dot program)."),
    png: bool = typer.Option(False, "--png", help="Render the DOT file to PNG too (needs the dot program)."),
):
    """Show the model of a config: layers, output shapes, parameters, multiply-adds, memory.

    Examples:

    \b
      trainkit summary configs/cifar_cnn.yaml
      trainkit summary configs/cifar_resnet.yaml --dot resnet.dot --svg
    """
    from .views.summary import render_summary, summarize, write_dot
    from .assemble.prepare import prepare_model

    cfg, model, shape = prepare_model(config, set_)
    s = summarize(cfg, model, shape)
    render_summary(s, _wide())
    if dot is not None:
        for line in write_dot(s, dot, svg=svg, png=png):
            console.print(shown(line), highlight=False)
    elif svg or png:
        raise TrainkitError("--svg/--png render the DOT file: give --dot FILE too")


@app.command()
@user_errors
def graph(
    config: Path = typer.Argument(..., help="The YAML config."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key (key.path=value)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the DOT text here "
                                          "(default: next to --svg/--png, else to stdout)."),
    svg: Optional[Path] = typer.Option(None, "--svg", help="Render to this SVG file (needs Graphviz's dot)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Render to this PNG file (needs Graphviz's dot)."),
    backward: bool = typer.Option(False, "--backward", help="Also draw the backward pass."),
    depth: Optional[int] = typer.Option(None, "--depth", help="Draw each module at this nesting depth "
                                        "as one box (0: the whole model)."),
):
    """Draw the autograd graph of one training step (forward and loss) of a config's model.

    Examples:

    \b
      trainkit graph configs/cifar_resnet.yaml --svg resnet.svg
      trainkit graph configs/digits_cnn.yaml -o step.dot --backward
      trainkit graph configs/cifar_resnet.yaml --depth 1 | dot -Tpng > resnet.png
    """
    from .views.graph import graph_command

    for line in graph_command(config, set_, output=output, svg=svg, png=png, backward=backward, depth=depth):
        err_console.print(shown(line), highlight=False)


@app.command()
@user_errors
def compare(
    run_dirs: List[Path] = typer.Argument(..., help="Two or more run directories."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Also draw the curves to this "
                                          "PNG (or .svg/.pdf) file."),
    as_json: bool = typer.Option(False, "--json", help="Print the differences and final metrics as JSON."),
):
    """Compare runs: their configs' differences, final metrics, and (with -o) their curves overlaid.

    Examples:

    \b
      trainkit compare runs/*-digits_cnn
      trainkit compare runs/A runs/B -o compare.png
    """
    import json

    from .train.compare import compare_json, compare_tables, load_runs, write_compare_plot

    if output is not None and output.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise TrainkitError(f"-o {output}: the picture must be a .png, .svg or .pdf file")
    runs = load_runs(run_dirs)
    if as_json:
        typer.echo(json.dumps(compare_json(runs), indent=2, default=str))
    else:
        for table in compare_tables(runs):
            _wide().print(table)
    if output is not None:
        write_compare_plot(runs, output)
        err_console.print(f"wrote {output}", highlight=False, markup=False)


@app.command()
@user_errors
def report(run_dir: Path = typer.Argument(..., help="A run directory written by trainkit train.")):
    """Rebuild a run's one-file HTML report (RUN/report.html) and diagnostics.png from its files.

    Examples:

    \b
      trainkit report runs/20261127-101500-digits_cnn
    """
    from .train.session import rebuild_report

    for path in rebuild_report(run_dir):
        console.print(f"wrote {path}", highlight=False, markup=False)


@app.command("export")
@user_errors
def export_(
    run_dir: Path = typer.Argument(..., help="A run directory written by trainkit train."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best, last, or a path to a checkpoint."),
    fmt: str = typer.Option("onnx", "--format", help="The file format (onnx)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="The file to write (default: "
                                          "RUN/model.onnx; model-last.onnx for --checkpoint last)."),
    opset: Optional[int] = typer.Option(None, "--opset", help="The ONNX opset version (default 17)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Import the custom layers the run's config "
                                    "names even if they are not the code it was trained with."),
):
    """Export a run's checkpoint as an ONNX model (dynamic batch), checked in onnxruntime before it is written.

    The graph takes the model's input after the run's evaluation transforms; they
    (with normalize's mean and std) are recorded in the model's metadata. Needs
    the onnx extra: pip install 'trainkit[onnx]'.

    Examples:

    \b
      trainkit export runs/20261127-101500-digits_cnn
      trainkit export runs/20261127-101500-cifar_resnet --checkpoint last -o resnet.onnx --opset 18
    """
    from .train.export import export_run

    done = export_run(run_dir, checkpoint=checkpoint, output=output, opset=opset, fmt=fmt, trust_code=trust_code)
    ins = ", ".join(f"{n} {d}" for n, d in done.inputs)
    outs = ", ".join(f"{n} {d}" for n, d in done.outputs)
    console.print(f"wrote {shown(done.path)} ({done.bytes / 1e6:.2f} MB, opset {done.opset}, checkpoint "
                  f"{shown(done.checkpoint)}{'' if done.epoch is None else f', epoch {done.epoch}'})", highlight=False, soft_wrap=True)
    console.print(f"inputs: {shown(ins)}; outputs: {shown(outs)}; onnxruntime matches trainkit within "
                  f"{done.max_abs_diff:.1e}", highlight=False, soft_wrap=True)


if __name__ == "__main__":  # pragma: no cover
    app()
