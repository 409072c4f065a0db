"""The ``trainkit`` command line: thin wrappers over the library (train, eval, runs, summary, gradcheck)."""
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

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Train deep-learning models described in YAML files, on trainkit's own numpy autograd engine.",
)
console = Console()
err_console = Console(stderr=True)


def user_errors(fn):
    """Turn the tool's own errors into a message and exit code 2 (bugs keep their traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TrainkitError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool):
    if value:
        import numpy
        console.print(f"trainkit {__version__} (numpy {numpy.__version__}, python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """trainkit: YAML-driven training on a numpy autograd engine with PyTorch's API."""


@app.command()
@user_errors
def gradcheck(
    config: Optional[Path] = typer.Argument(None, help="A config: check its whole model + loss on a tiny batch."),
    op: Optional[str] = typer.Option(None, "--op", help="Only cases whose name contains this."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key (key.path=value)."),
):
    """Check every op's and layer's analytic gradients against finite differences (float64).

    Examples:
      trainkit gradcheck
      trainkit gradcheck --op conv2d
      trainkit gradcheck configs/digits_cnn.yaml
    """
    from .autograd.checkall import run_case, select

    if config is not None:
        from .config.checks import config_case
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
        table.add_row(r.name, r.kind, r.shapes, f"{r.max_abs:.2e}", f"{r.max_rel:.2e}",
                      "[green]pass[/]" if r.passed else "[bold red]FAIL[/]", f"{r.ms:.1f}")
        if not r.passed:
            failures.append(r)
    console.print(table)
    for r in failures:
        console.print(f"[red]{r.name}[/]: {r.message}", highlight=False)
    n = len(selected)
    console.print(f"{n - len(failures)} passed, {len(failures)} failed")
    raise typer.Exit(1 if failures else 0)


if __name__ == "__main__":  # pragma: no cover
    app()
