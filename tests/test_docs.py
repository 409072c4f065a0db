"""docs/ is generated where it describes declarations: a stale page fails here."""
from __future__ import annotations

import subprocess
import sys

import trainkit.nn as nn
from trainkit.docs import PAGES, generate, main
from trainkit.registry import LAYERS, Example, Inferred, Int, layer


def test_generated_pages_are_up_to_date():
    stale = [str(path) for path, (old, new) in generate().items() if old != new]
    assert not stale, f"stale generated docs {stale}: run python -m trainkit.docs"
    assert set(PAGES) == {"layers.md", "config.md"}


def test_a_new_declaration_makes_the_pages_stale_and_check_says_so(capsys):
    @layer("doc_probe", args={"width": Int(lo=1)}, example=Example((2, 3), {"width": 2}))
    class DocProbe(nn.Module):
        """A layer that exists only in this test."""

        def __init__(self, width: int):
            super().__init__()

        @staticmethod
        def infer_shape(args, x):
            """Shape kept, for the probe."""
            return Inferred(x)

    try:
        pages = generate()
        old, new = next(v for p, v in pages.items() if p.name == "layers.md")
        assert old != new and "| `doc_probe` | `DocProbe` | `width`: an integer >= 1 (required) | - |" in new
        assert "* `doc_probe`: Shape kept, for the probe." in new
        assert main(["--check"]) == 1
        assert "stale" in capsys.readouterr().out
    finally:
        LAYERS.pop("doc_probe")
    assert main(["--check"]) == 0


def test_the_command_runs():
    out = subprocess.run([sys.executable, "-m", "trainkit.docs", "--check"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
