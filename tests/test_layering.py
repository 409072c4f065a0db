"""The import layering: each package imports only the packages below it, and nothing imports in a circle.

Imports are read from the source with ``ast`` (module-level and deferred ones
inside functions alike), so the rule holds for every code path, not only for
what one import happens to load.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "trainkit"

#: Package -> the trainkit packages it may import (besides itself). Lower layers first.
ALLOWED = {
    "errors": set(),
    "autograd": {"errors"},
    "registry": {"errors"},
    "nn": {"errors", "autograd", "registry"},
    "optim": {"errors", "autograd", "registry", "nn"},
    "data": {"errors", "autograd", "registry"},
    "utils": {"errors", "autograd", "registry", "data"},
    "viz": {"errors", "autograd", "nn", "utils"},
    "serialization": {"errors", "autograd", "nn", "utils"},
    "vision": {"errors", "autograd", "registry", "nn", "data"},
    "cuda": {"errors", "autograd"},
    "accelerator": {"errors", "autograd"},
    "backends": {"errors", "autograd"},
    "config": {"errors", "autograd", "registry", "nn", "optim", "data"},
    "assemble": {"errors", "autograd", "registry", "nn", "optim", "data", "utils", "config"},
    "views": {"errors", "autograd", "registry", "nn", "utils", "viz", "config", "assemble"},
    "onnx": {"errors", "autograd", "registry", "nn", "utils", "<root>"},
    "train": {"errors", "autograd", "registry", "nn", "optim", "data", "utils", "serialization", "config", "assemble",
              "views", "onnx",
              "<root>"},
    # Data parallelism (issue 15) wraps the trainer: above train, below the CLI.
    "distributed": {"errors", "autograd", "registry", "nn", "data", "utils", "config", "assemble", "train",
                    "rankenv"},
    "sweep": {"errors", "registry", "utils", "config", "train"},
    "testing": {"errors", "autograd", "registry", "nn", "optim", "data", "config", "assemble"},
    "docs": {"errors", "autograd", "registry", "nn", "optim", "data", "config", "assemble"},
    "docs_api": {"errors", "autograd", "registry", "nn", "optim", "data"},
    "cli": {"errors", "autograd", "registry", "nn", "optim", "data", "utils", "viz", "config", "assemble", "views", "train",
            "testing", "docs", "distributed", "sweep", "onnx", "<root>"},
    "run_api": {"errors", "train"},
    "__main__": {"cli"},
    # rankenv: standard library only; it runs first, before numpy loads (BLAS threads of MPI ranks).
    "rankenv": set(),
    # blasenv: standard library only, also run before numpy loads (OpenBLAS's idle spin).
    "blasenv": set(),
    "<root>": {"rankenv", "blasenv", "autograd", "registry", "cuda", "accelerator", "backends"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """(module-level, deferred) trainkit modules that ``name`` imports."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    top_nodes = set()
    for node in tree.body:
        top_nodes.add(node)
        if isinstance(node, (ast.If, ast.Try)):
            top_nodes.update(ast.walk(node))
    top, deferred = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - (0 if is_pkg else 1) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            subs = [f"{base}.{a.name}" for a in node.names]
            targets = [t for t in subs if t in MODULES]
            if len(targets) < len(subs):
                targets.append(base)  # a name defined in the module (or package) itself
        else:
            continue
        found = set()
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t.startswith("trainkit") and t != name:
                found.add(t)
        (top if node in top_nodes else deferred).update(found)
    return top, deferred


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def test_each_package_imports_only_the_layers_below_it():
    bad = []
    for name, (top, deferred) in sorted(IMPORTS.items()):
        pkg = _package(name)
        allowed = ALLOWED.get(pkg)
        assert allowed is not None, f"{name}: package '{pkg}' has no place in the layering; add it to ALLOWED"
        for target in sorted(top | deferred):
            other = _package(target)
            if other != pkg and other not in allowed:
                bad.append(f"{name} imports {target}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycle_outside_the_engine():
    """Module-level imports form no cycle, except the engine's Tensor <-> ops (autograd only)."""
    graph = {name: top for name, (top, _) in IMPORTS.items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    outside = [c for c in cycles if not all(m.startswith("trainkit.autograd.") for m in c)]
    assert not outside, f"import cycles: {outside}"
    engine = [c for c in cycles if c not in outside]
    assert all("trainkit.autograd.tensor" in c for c in engine), engine


def test_the_root_package_does_not_load_config_and_keeps_register_layer():
    code = ("import sys, trainkit; "
            "assert not [m for m in sys.modules if m.startswith(('trainkit.config', 'trainkit.train'))], "
            "sorted(m for m in sys.modules if m.startswith('trainkit')); "
            "assert callable(trainkit.register_layer); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_checker_sees_a_violation():
    """The rule would catch a lower layer importing a higher one (guards against a checker that sees nothing)."""
    top, _ = IMPORTS["trainkit.config.schema"]
    assert "trainkit.data.schema" in top and "trainkit.registry" in top
    _, deferred = IMPORTS["trainkit.assemble.prepare"]
    assert "trainkit.assemble" in deferred and "trainkit.config" in deferred
    assert _package("trainkit.autograd.tensor") == "autograd" and "config" not in ALLOWED["autograd"]
