"""Generate the parts of ``docs/`` that describe declarations: ``python -m trainkit.docs [--check]``.

``docs/layers.md`` and ``docs/config.md`` keep their prose by hand; the tables
of layers, shape rules, data sets, transforms, losses, optimizers, schedulers,
``train`` keys and metrics sit between markers::

    <!-- BEGIN GENERATED: layers (python -m trainkit.docs) -->
    ...
    <!-- END GENERATED: layers -->

and are rewritten from the declarations (:mod:`trainkit.registry`) and the
schema's field docs. ``--check`` exits 1 when a page is stale (a test runs it),
so a newly declared component cannot be missing from the docs.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import trainkit.data  # noqa: F401  (declares the data sets and transforms)
import trainkit.nn  # noqa: F401  (declares the layers and losses)
import trainkit.optim  # noqa: F401  (declares the optimizers and schedulers)
from trainkit.config.schema import DIAGNOSTICS, EARLY_STOPPING, INTERVAL, TRAIN
from trainkit.config.sweep import PARAMETER, PRUNER, SWEEP
from trainkit.data.schema import COMMON, specific_keys, takers
from trainkit.registry import DATASETS, LAYERS, LOSSES, OPTIMIZERS, REQUIRED, SCHEDULERS, TASKS, TRANSFORMS
from trainkit.registry.core import first_line

__all__ = ["PAGES", "generate", "render", "main"]

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) \(python -m trainkit.docs\) -->\n)(?P<body>.*?)"
                    r"(<!-- END GENERATED: (?P=name) -->)", re.S)


def value_text(value) -> str:
    """A default as YAML writes it: ``true``, ``null``, ``0.001``, ``[0.9, 0.999]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


def default_text(default) -> str:
    """The default column: ``required``, or the value in backticks."""
    if default is REQUIRED:
        return "required"
    if callable(default):
        default = default()
    if isinstance(default, dict):  # a sub-record's defaults have their own table
        return "its keys' defaults"
    return f"`{value_text(default)}`"


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _argument_rows(name_cell: str, fields: dict, extra: str = "") -> list[str]:
    rows = []
    for i, (key, f) in enumerate(fields.items()):
        first = name_cell if i == 0 else ""
        rows.append(f"| {first} |{extra if i == 0 else ('' if not extra else ' |')} `{key}` | "
                    f"{_cell(f.spec.describe())} | {default_text(f.default)} | {_cell(f.doc)} |")
    if not fields:
        rows.append(f"| {name_cell} |{extra} - | - | - | no arguments |")
    return rows


def layers_table() -> str:
    """Every declared layer: YAML name, class, arguments with their defaults, the shape-filled argument."""
    rows = ["| type | class | arguments (default) | input-size argument (inferred) |", "|---|---|---|---|"]
    for name, d in LAYERS.items():
        if not d.checked:
            continue
        args = [f"`{k}`: {a.spec.describe()} ({'required' if a.default is REQUIRED else default_text(a.default)})"
                for k, a in d.arguments.items() if k != d.input_arg]
        where = ((" (graph form, 2+ inputs)" if d.inputs == "many" else f" (graph form, {d.inputs} inputs)")
                 if d.merges else "")
        rows.append(f"| `{name}`{where} | `{d.cls.__name__}` | {_cell('; '.join(args)) or '-'} | "
                    f"{'`' + d.input_arg + '`' if d.input_arg else '-'} |")
    return "\n".join(rows) + "\n"


def shape_rules() -> str:
    """Each layer's shape rule, from its docstring."""
    lines = []
    for name, d in LAYERS.items():
        if d.checked and d.rule is not None:
            outs = (" Outputs (graph form `" + name + ".NAME`): " + ", ".join(f"`{k}`" for k in d.outputs) + ".") \
                if d.outputs else ""
            lines.append(f"* `{name}`: {first_line(d.rule.__doc__)}{outs}")
    return "\n".join(lines) + "\n"


def data_common() -> str:
    """The keys every data set takes."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, f in COMMON.items():
        spec = "one of " + ", ".join(f"`{n}`" for n in DATASETS) if key == "dataset" else f.spec.describe()
        rows.append(f"| `{key}` | {_cell(spec)} | {default_text(f.default)} | {_cell(f.doc)} |")
    return "\n".join(rows) + "\n"


def datasets_table() -> str:
    """The declared data sets."""
    rows = ["| dataset | class | samples (per-sample shape) | task | description |", "|---|---|---|---|---|"]
    for name, d in DATASETS.items():
        shape = d.shape if not callable(d.shape) else None
        shape_text = "from the arguments" if callable(d.shape) else (
            "from the file" if shape is None else "x".join("?" if s is None else str(s) for s in shape))
        task = d.task if isinstance(d.task, str) else "`task` or from the targets"
        rows.append(f"| `{name}` | `{d.cls.__name__}` | {shape_text} | {task} | {_cell(d.doc)} |")
    return "\n".join(rows) + "\n"


def data_specific() -> str:
    """The keys only some data sets take."""
    rows = ["| key | datasets | type | default | meaning |", "|---|---|---|---|---|"]
    for key in specific_keys():
        owners = takers(key)
        f = DATASETS[owners[0]].arguments[key].field
        defaults = {default_text(DATASETS[o].arguments[key].default) for o in owners}
        rows.append(f"| `{key}` | {', '.join(owners)} | {_cell(f.spec.describe())} | {' / '.join(sorted(defaults))} "
                    f"| {_cell(f.doc)} |")
    return "\n".join(rows) + "\n"


def transforms_table() -> str:
    """The declared transforms and their arguments."""
    rows = ["| transform | key | type | default | meaning |", "|---|---|---|---|---|"]
    for name, d in TRANSFORMS.items():
        note = " (images, training only)" if d.random and d.image_only else (" (images)" if d.image_only else "")
        rows += _argument_rows(f"`{name}`{note}", d.fields())
    return "\n".join(rows) + "\n"


def component_table(registry, with_class: bool = False) -> str:
    """A loss/optimizer/scheduler table: each type with its arguments."""
    head = "| type | class | key | type | default | meaning |" if with_class else "| type | key | type | default | meaning |"
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, d in registry.items():
        extra = f" `{d.cls.__name__}` |" if with_class else ""
        rows += _argument_rows(f"`{name}`", d.fields(), extra)
    return "\n".join(rows) + "\n"


def scheduler_notes() -> str:
    """The ``interval`` key every scheduler takes and what each scheduler does with the run's length."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|",
             f"| `interval` | {_cell(INTERVAL.spec.describe())} | "
             + ", ".join(f"`{d.interval}` for `{n}`" for n, d in SCHEDULERS.items() if d.interval != "epoch")
             + ", `epoch` otherwise | " + _cell(INTERVAL.doc) + " |", ""]
    for name, d in SCHEDULERS.items():
        if d.run_length:
            lines.append(f"* `{name}`: `{d.run_length}` left null covers the whole run in its interval "
                         "(train.epochs, or every optimizer step).")
        if d.watches_metric:
            lines.append(f"* `{name}` steps on a metric (`metric`, one of the names under [metrics](#metrics)) "
                         "and needs `interval: epoch`.")
        if d.nested:
            lines.append(f"* `{name}`: `{d.nested}` is a list of scheduler mappings, built first and chained.")
    return "\n".join(lines) + "\n"


def record_table(record) -> str:
    """A record's keys (the ``train`` section, ``early_stopping``, ``diagnostics``)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, f in record.fields.items():
        rows.append(f"| `{key}` | {_cell(f.spec.describe())} | {default_text(f.default)} | {_cell(f.doc)} |")
    return "\n".join(rows) + "\n"


def metrics_table() -> str:
    """The one table of metric names per task."""
    rows = ["| task | metric | better | `metrics.jsonl` column | meaning |", "|---|---|---|---|---|"]
    for task in TASKS.values():
        for m in task.metrics:
            column = f"`train_{m.column}`, `val_{m.column}`" if m.column else "- (watched only)"
            rows.append(f"| {task.name} | `train_{m.name}`, `val_{m.name}` | {'higher' if m.mode == 'max' else 'lower'} "
                        f"| {column} | {_cell(m.doc)} |")
    rows.append("")
    rows += [f"The best checkpoint of a {t.name} run is the one with the best `{t.best}`; its default loss is "
             f"`{t.default_loss}`." for t in TASKS.values()]
    return "\n".join(rows) + "\n"


#: page -> {block name: generator}
PAGES = {
    "layers.md": {"layers": layers_table, "shape-rules": shape_rules},
    "config.md": {"data-common": data_common, "datasets": datasets_table, "data-specific": data_specific,
                  "transforms": transforms_table, "losses": lambda: component_table(LOSSES),
                  "optimizers": lambda: component_table(OPTIMIZERS),
                  "scheduler-interval": scheduler_notes,
                  "schedulers": lambda: component_table(SCHEDULERS, with_class=True),
                  "train": lambda: record_table(TRAIN), "early-stopping": lambda: record_table(EARLY_STOPPING),
                  "diagnostics": lambda: record_table(DIAGNOSTICS),
                  "metrics": metrics_table, "sweep": lambda: record_table(SWEEP),
                  "sweep-parameter": lambda: record_table(PARAMETER), "sweep-pruner": lambda: record_table(PRUNER)},
}


def render(text: str, blocks: dict) -> str:
    """``text`` with each generated block rewritten; a page missing a block is an error."""
    seen = set()

    def replace(m):
        name = m.group("name")
        if name not in blocks:
            raise KeyError(f"unknown generated block '{name}'")
        seen.add(name)
        return m.group(1) + blocks[name]() + m.group(4)

    out = _BLOCK.sub(replace, text)
    missing = set(blocks) - seen
    if missing:
        raise KeyError(f"no marker for generated block(s) {', '.join(sorted(missing))}")
    return out


def generate(docs: Path = DOCS) -> dict[Path, tuple[str, str]]:
    """``page -> (current text, generated text)`` for every page with generated blocks."""
    out = {}
    for page, blocks in PAGES.items():
        path = docs / page
        text = path.read_text(encoding="utf-8")
        out[path] = (text, render(text, blocks))
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the generated blocks (or, with ``--check``, report stale pages and exit 1)."""
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for path, (old, new) in generate().items():
        if old != new:
            stale.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if check else 'wrote'}: {path}")
    if check and stale:
        print("run: python -m trainkit.docs")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
