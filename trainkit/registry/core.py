"""Declarations and registries: what YAML may name, read from each component's own class.

A *declaration* is made once, by a decorator on the component's class (as timm's
``@register_model``), and puts the class into the registry of its kind when the
class's module is imported. It holds the YAML name, the YAML arguments (read
from the constructor's signature, as LightningCLI does: names, defaults and,
where the annotation says it, types), value specs where the signature cannot say
(ranges, choices), and a line of documentation per argument (from the class
docstring's ``Args:`` section). Everything that lists components (the config
schema, the builders, did-you-mean lists, gradient checks, ``trainkit summary``
and the generated docs) reads these registries; nothing else lists them.

This module holds what every kind shares (signature reading, the declaration
and registry types, plugins); :mod:`.components` and :mod:`.layer` the
declarations of each kind. The package imports nothing of trainkit above the
value specs, so every layer of the code (``nn``, ``optim``, ``data``) can
declare its components here.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from .spec import INVALID, REQUIRED, Bool, Checker, Field, Float, Int, Nullable, Record, Spec, Str, unknown_name

__all__ = ["Argument", "Declaration", "DeclarationError", "Registry", "read_arguments", "docstring_args",
           "first_line", "load_plugins", "PluginError", "PLUGIN_GROUP"]


class DeclarationError(TypeError):
    """A declaration is wrong: a bug in the code that declares the component, raised when it is imported."""


#: YAML names are snake_case: they are typed by people and used as keys.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: Constructor arguments that are never YAML arguments, per kind (the rest of the signature is).
KIND_EXCLUDES: dict[str, tuple[str, ...]] = {
    "layer": ("dtype", "device"),
    "loss": ("dtype", "device"),
    "optimizer": ("params", "maximize", "foreach", "capturable", "differentiable", "fused",
                  "decoupled_weight_decay"),
    "scheduler": ("optimizer", "last_epoch", "verbose"),
    "transform": ("seed",),
    "dataset": ("train", "transform", "target_transform"),
}

#: Annotation text -> value spec, for arguments whose annotation says enough.
_ANNOTATED = {"int": Int, "float": Float, "bool": Bool, "str": Str}


@dataclass(frozen=True)
class Argument:
    """One YAML argument of a component: its spec, default (or REQUIRED) and a line of docs."""

    name: str
    spec: Spec
    default: Any = REQUIRED
    doc: str = ""

    @property
    def field(self) -> Field:
        """The argument as a record field (for validation)."""
        return Field(self.spec, self.default, self.doc)


def first_line(text: str | None) -> str:
    """The first sentence of a docstring, on one line."""
    text = " ".join((text or "").strip().split("\n\n")[0].split())
    cut = re.search(r"(?<=\.)\s", text)
    return text[:cut.start()] if cut else text


def docstring_args(obj) -> dict[str, str]:
    """``name -> first sentence`` from the ``Args:`` sections of ``obj``'s docstring and its bases'."""
    out: dict[str, str] = {}
    for klass in reversed(getattr(obj, "__mro__", (obj,))):
        out.update(_own_docstring_args(klass.__doc__))
    return out


def _own_docstring_args(doc: str | None) -> dict[str, str]:
    doc = inspect.cleandoc(doc or "")
    out: dict[str, str] = {}
    lines = doc.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() in ("Args:", "Arguments:", "Parameters:"))
    except StopIteration:
        return out
    base = None
    current = None
    for ln in lines[start + 1:]:
        if not ln.strip():
            current = None
            continue
        indent = len(ln) - len(ln.lstrip())
        if base is None:
            base = indent
        if indent < base or (indent == 0 and ln.rstrip().endswith(":")):
            break
        m = re.match(r"^\s*(?:\(\w+\)\s*)?([A-Za-z_][A-Za-z0-9_]*)(?:\s*\([^)]*\))?:\s*(.*)$", ln)
        if indent == base and m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current is not None and indent > base:
            out[current] += " " + ln.strip()
    # The default is in the docs' own column: drop "(default 0)" remarks.
    return {k: re.sub(r"\s*\(default[^)]*\)", "", first_line(v)).rstrip(".") for k, v in out.items()}


def spec_from_annotation(annotation) -> Spec | None:
    """The spec an annotation such as ``int``, ``float | None`` or ``bool`` implies, or None."""
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    text = text.replace("typing.", "").replace(" ", "")
    m = re.match(r"^Optional\[(.*)\]$", text)
    parts = [m.group(1), "None"] if m else text.split("|")
    optional = "None" in parts
    rest = [p for p in parts if p != "None"]
    if len(rest) != 1 or rest[0] not in _ANNOTATED:
        return None
    spec = _ANNOTATED[rest[0]]()
    return Nullable(spec) if optional else spec


def _plain_default(value):
    """A signature default as YAML would write it (tuples become lists)."""
    if isinstance(value, tuple):
        return [_plain_default(v) for v in value]
    return value


def constructor(cls) -> inspect.Signature | None:
    """The signature of ``cls``'s constructor without ``self`` (None when it cannot be read)."""
    try:
        sig = inspect.signature(cls.__init__ if isinstance(cls, type) else cls)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if isinstance(cls, type) and params and params[0].name == "self":
        params = params[1:]
    return sig.replace(parameters=params)


def read_arguments(kind: str, name: str, cls, *, args: Mapping[str, Spec] | None = None,
                   defaults: Mapping[str, Any] | None = None, exclude=(), extra: Mapping[str, Field] | None = None,
                   docs: Mapping[str, str] | None = None, fields: Mapping[str, Field] | None = None
                   ) -> dict[str, Argument]:
    """The YAML arguments of ``cls``: its constructor's parameters minus the excluded ones.

    Each gets its spec from ``args`` or else from its annotation; a parameter with
    neither is a :class:`DeclarationError` (every YAML value is checked before use).
    ``defaults`` replace signature defaults (e.g. a nullable ``T_max`` whose null the
    config stage resolves), ``extra`` adds YAML-only arguments the builder consumes,
    and ``fields`` replaces the signature entirely (data sets whose YAML keys are not
    their constructor's).
    """
    args, defaults, docs = dict(args or {}), dict(defaults or {}), dict(docs or {})
    from_doc = docstring_args(cls) if isinstance(cls, type) else {}
    where = f"{kind} '{name}' ({getattr(cls, '__qualname__', cls)})"
    out: dict[str, Argument] = {}
    if fields is not None:
        for key, f in fields.items():
            out[key] = Argument(key, f.spec, f.default, f.doc or docs.get(key, ""))
        return out
    sig = constructor(cls)
    if sig is None:
        raise DeclarationError(f"{where}: its constructor's signature cannot be read")
    skip = set(KIND_EXCLUDES.get(kind, ())) | set(exclude)
    seen = set()
    for p in sig.parameters.values():
        seen.add(p.name)
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in skip:
            continue
        spec = args.get(p.name) or spec_from_annotation(p.annotation)
        if spec is None:
            raise DeclarationError(f"{where}: argument '{p.name}' has no value spec; annotate it "
                                   f"(int, float, bool, str) or give args={{'{p.name}': ...}}")
        default = defaults.get(p.name, REQUIRED if p.default is p.empty else _plain_default(p.default))
        out[p.name] = Argument(p.name, spec, _checked_default(where, p.name, spec, default),
                               docs.get(p.name) or from_doc.get(p.name, ""))
    for key, f in (extra or {}).items():
        out[key] = Argument(key, f.spec, _checked_default(where, key, f.spec, f.default),
                            f.doc or docs.get(key, ""))
        seen.add(key)
    stray = [k for k in list(args) + list(defaults) if k not in seen]
    if stray:
        raise DeclarationError(f"{where}: args/defaults name {', '.join(map(repr, stray))}, which the "
                               "constructor does not take")
    return out


def _checked_default(where: str, key: str, spec: Spec, default):
    """A default as the spec normalises it (0 -> 0.0 for a float); an invalid default is a bug."""
    if default is REQUIRED:
        return default
    ck = Checker()
    value = spec.check(default, (key,), ck)
    if ck.problems:
        raise DeclarationError(f"{where}: the default of '{key}' ({default!r}) fails its own spec: "
                               f"{ck.problems[0][1]}")
    return value


@dataclass(eq=False)
class Declaration:
    """One declared component: its kind, YAML name, class and YAML arguments.

    ``check(out, path, checker)`` is an optional cross-argument check run after
    every argument passed its own spec (e.g. SGD's nesterov needs momentum).
    """

    kind: str
    name: str
    cls: Any
    arguments: dict[str, Argument]
    doc: str = ""
    check: Callable | None = field(default=None, repr=False)

    def fields(self) -> dict[str, Field]:
        """The arguments as record fields."""
        return {k: a.field for k, a in self.arguments.items()}

    def defaults(self) -> dict[str, Any]:
        """Every argument that has a default, with it."""
        return {k: a.default for k, a in self.arguments.items() if a.default is not REQUIRED}

    def validate(self, value, path: tuple, ck: Checker, what: str | None = None):
        """Check a mapping of YAML arguments; returns it with defaults filled in (or INVALID)."""
        return Record(self.fields(), what or f"{self.name} mapping", self.check).check(value, path, ck)

    @property
    def qualname(self) -> str:
        """``module.Class`` of the declared class."""
        return f"{getattr(self.cls, '__module__', '?')}.{getattr(self.cls, '__qualname__', self.cls)}"


class Registry(Mapping):
    """Declarations of one kind by YAML name, in declaration order (the order messages list them)."""

    def __init__(self, kind: str, label: str):
        self.kind = kind
        self.label = label  # how messages name the kind: "layer type", "optimizer", ...
        self._decls: dict[str, Declaration] = {}

    def __getitem__(self, name: str) -> Declaration:
        return self._decls[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._decls))

    def __len__(self) -> int:
        return len(self._decls)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self._decls)})"

    def add(self, decl: Declaration) -> Declaration:
        """Register ``decl``; a name already taken by another class is a DeclarationError.

        The same class declared again (a module imported twice under one name,
        as a re-run layer file is) replaces the old entry.
        """
        if not _NAME.match(decl.name):
            raise DeclarationError(f"{self.kind} name {decl.name!r}: use snake_case letters, digits and '_'")
        old = self._decls.get(decl.name)
        if old is not None and old.qualname != decl.qualname:
            raise DeclarationError(f"{self.kind} name '{decl.name}' is already declared by {old.qualname}")
        self._decls[decl.name] = decl
        return decl

    def pop(self, name: str, default=None):
        """Remove a declaration (user code unregistering a component, tests)."""
        return self._decls.pop(name, default)

    def of(self, cls) -> Declaration | None:
        """The declaration of class ``cls`` (None when it has none)."""
        return next((d for d in self._decls.values() if d.cls is cls), None)

    def unknown(self, word) -> str:
        """The message for a name that is not declared, with a did-you-mean and the known names."""
        return unknown_name(self.label, word, list(self._decls))


#: The entry-point group through which installed packages add components to the command line.
PLUGIN_GROUP = "trainkit.plugins"


def load_plugins() -> list[str]:
    """Import every module an installed package names in the ``trainkit.plugins`` entry-point group.

    Importing such a module declares its components, so YAML files can name
    them on the command line (as pytest loads its plugins). Returns the names
    loaded. Raises :class:`PluginError` naming the plugin that failed to import.
    """
    from importlib.metadata import entry_points

    loaded = []
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()
        except Exception as e:  # the plugin's own code failed: say which one
            raise PluginError(f"plugin '{ep.name}' ({ep.value}) failed to load: {type(e).__name__}: {e}") from None
        loaded.append(ep.name)
    return loaded


class PluginError(Exception):
    """An installed trainkit plugin could not be imported."""


def is_invalid(value) -> bool:
    """Whether a checked value (or any value of a checked mapping) had a problem."""
    return value is INVALID or (isinstance(value, dict) and INVALID in value.values())
