"""Load a YAML config: read safely, follow ``base:``, apply ``--set``, validate, resolve.

``load_config(path, overrides)`` is the one entry point; it returns a
:class:`Config` or raises a :class:`~trainkit.errors.ConfigError` listing every
problem as ``FILE:LINE:COL: key.path: message``.
"""
from __future__ import annotations

import copy

import hashlib
import json
import os
import re
import stat
from pathlib import Path

from trainkit.config.model_spec import LayerValidator
from trainkit.config.overrides import apply_overrides, override_label
from trainkit.config.resolved import RunConfig
from trainkit.config.schema import DECLARED, validate
from trainkit.config.yamlsafe import (MAX_FILE_BYTES, decode_bytes, dotted, dump_yaml,
                                      parse_yaml)
from trainkit.errors import ConfigError, Problem

#: How many ``base:`` files one config may chain through.
MAX_BASE_DEPTH = 16
#: Problems listed in one ConfigError; the rest are counted.
MAX_PROBLEMS = 50

Source = tuple  # (file, line | None, col | None)


class Config:
    """A validated config: the resolved values and where each one was written.

    Attributes:
        data: the resolved config as plain dicts, lists and scalars, with every
            default filled in; ``Config`` also reads like it (``config["train"]``).
            This is what a run directory's ``config.yaml`` holds.
        resolved: the same values as a typed, immutable :class:`RunConfig`
            (``config.resolved.train.epochs``): what the builders and the trainer read.
        file: the path the config was loaded from (or a label such as ``<string>``).
        name: ``data["name"]`` (the file's stem unless the config names itself).
    """

    def __init__(self, data: dict, file: str, sources: dict[tuple, Source] | None = None,
                 written: dict | None = None):
        self.data = data
        self.file = file
        #: the document as written (its base merged, --set applied), before defaults: for a run
        #: directory's config.yaml, the resolved config of the trainkit that trained it
        self.written = written
        self._sources = dict(sources or {})
        self._resolved: RunConfig | None = None

    @property
    def resolved(self) -> RunConfig:
        """The typed, immutable resolved config."""
        if self._resolved is None:
            self._resolved = RunConfig.from_resolved(self.data)
        return self._resolved

    @property
    def name(self) -> str:
        """The config's name, used for run directories."""
        return self.data["name"]

    def __getitem__(self, key):
        return self.data[key]

    def __repr__(self) -> str:
        return f"Config(name={self.name!r}, file={self.file!r})"

    def source(self, path) -> Source:
        """``(file, line, col)`` of ``path`` or of its nearest written ancestor.

        Values filled in by defaults have no position of their own, so a problem
        about them is placed at the section that holds them. ``file`` is an
        override's label (``--set key=value``, line None) for overridden values.
        """
        path = tuple(path)
        for n in range(len(path), -1, -1):
            src = self._sources.get(path[:n])
            if src is not None:
                return src
        return (self.file, None, None)

    def locate(self, path) -> tuple[int, int] | None:
        """``(line, col)`` (1-based) where ``path`` (or its nearest ancestor) is written, or None."""
        _, line, col = self.source(path)
        return None if line is None else (line, col)

    def problem(self, path, message: str) -> Problem:
        """A :class:`Problem` about ``path``, placed at its position in the file."""
        file, line, col = self.source(path)
        return Problem(file, line, col, dotted(tuple(path)), message)

    def error(self, problems) -> ConfigError:
        """A ConfigError from ``(path, message)`` pairs (Problems pass through)."""
        return ConfigError([p if isinstance(p, Problem) else self.problem(p[0], p[1]) for p in problems])

    def to_yaml(self) -> str:
        """The resolved config as YAML; loading it gives back the same ``data``."""
        return dump_yaml(self.data)

    def hash(self) -> str:
        """A stable sha256 hex digest of the resolved config (key order ignored)."""
        text = json.dumps(self.data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()


def read_config_text(path: str | os.PathLike) -> str:
    """Read a config file as text, refusing missing, huge and non-UTF-8 files."""
    p = Path(path)
    label = str(path)
    try:
        if p.is_dir():
            raise ConfigError([Problem(label, None, None, "", "is a directory, not a YAML file")])
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            raise ConfigError([Problem(label, None, None, "", "is not a regular file")])
        size = st.st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError([Problem(label, None, None, "", f"file is {size} bytes; configs are "
                                       f"limited to {MAX_FILE_BYTES} bytes (1 MiB)")])
        with open(p, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # the file may have grown since stat
    except FileNotFoundError:
        raise ConfigError([Problem(label, None, None, "", "config file not found")]) from None
    except OSError as e:
        raise ConfigError([Problem(label, None, None, "", f"cannot read config: {e.strerror or e}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError([Problem(label, None, None, "", f"file is larger than {MAX_FILE_BYTES} "
                                   "bytes (1 MiB), the limit for configs")])
    return decode_bytes(raw, label)


def _parse(text: str, label: str) -> tuple[dict, dict]:
    data, positions = parse_yaml(text, label)
    if data is None:
        raise ConfigError([Problem(label, None, None, "", "the config is empty; expected a mapping "
                                   "with data, model, optimizer, ...")])
    if not isinstance(data, dict):
        raise ConfigError([Problem(label, 1, 1, "", "a config must be a mapping of keys "
                                   "(data, model, optimizer, ...)")])
    return data, {k: (label, line, col) for k, (line, col) in positions.items()}


def _with_base(data: dict, sources: dict, label: str, base_dir: Path | None,
               chain: list[str]) -> tuple[dict, dict]:
    """Resolve ``base:`` (recursively): the base's values, overridden by this file's."""
    if "base" not in data:
        return data, sources
    base = data.pop("base")
    here = sources.get(("base",), (label, None, None))
    bad = lambda msg: ConfigError([Problem(here[0], here[1], here[2], "base", msg)])  # noqa: E731
    if not isinstance(base, str) or not base.strip():
        raise bad(f"expected the path of another YAML config, found {base!r}")
    if base_dir is None:
        raise bad("a config given as text cannot use base (there is no folder to look in)")
    try:
        bpath = (base_dir / base).resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop: Python 3.11 raises RuntimeError, 3.13 OSError
        raise bad(f"base config '{base}' cannot be resolved: a loop of symbolic links ({exc})") from None
    if str(bpath) in chain:
        names = [Path(c).name for c in chain[chain.index(str(bpath)):]] + [bpath.name]
        raise bad(f"'{base}' closes a cycle of base configs ({' -> '.join(names)})")
    if len(chain) >= MAX_BASE_DEPTH:
        raise bad(f"more than {MAX_BASE_DEPTH} levels of base configs")
    try:
        st = bpath.stat()
    except FileNotFoundError:
        raise bad(f"base config '{base}' not found (looked for {bpath})") from None
    except OSError as exc:
        raise bad(f"base config '{base}' cannot be read ({bpath}: {exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise bad(f"base config '{base}' is a directory ({bpath}), not a YAML file")
    if not stat.S_ISREG(st.st_mode):
        raise bad(f"base config '{base}' is not a regular file ({bpath} is a device, FIFO or socket)")
    blabel = os.path.relpath(bpath) if not os.path.isabs(base) else str(bpath)
    bdata, bsources = _parse(read_config_text(bpath), blabel)
    bdata, bsources = _with_base(bdata, bsources, blabel, bpath.parent, chain + [str(bpath)])
    replaced: set[tuple] = set()
    merged = _merge(bdata, data, (), replaced)
    keep = {p: s for p, s in bsources.items()
            if not any(p[:n] in replaced for n in range(1, len(p) + 1))}
    keep.update({p: s for p, s in sources.items() if p != ("base",)})
    return merged, keep


def _merge(base, child, path: tuple, replaced: set) -> object:
    """Deep merge: mappings merge key by key, anything else in ``child`` replaces ``base``."""
    if isinstance(base, dict) and isinstance(child, dict):
        out = dict(base)
        for k, v in child.items():
            out[k] = _merge(base[k], v, path + (k,), replaced) if k in base else v
        return out
    replaced.add(path)
    return child


def load_config(path: str | os.PathLike, overrides=(), validate_layer: LayerValidator | None | object = DECLARED
                ) -> Config:
    """Load, merge, override and validate a YAML config file.

    Args:
        path: the YAML file. ``base: other.yaml`` in it (relative to its folder)
            names a config whose values it extends (mappings merge deeply).
        overrides: ``"key.path=value"`` strings, as given to ``--set``.
        validate_layer: the hook ``(type, args, args_path) -> [(path, message)]``
            that checks layer types and arguments; by default the layer
            declarations do (None skips the check).

    Raises:
        ConfigError: with every problem found, each located in its file (or ``--set``).
    """
    label = str(path)
    text = read_config_text(path)
    return _load(text, label, Path(path).resolve().parent, default_name(Path(path).stem), overrides,
                 validate_layer, [str(Path(path).resolve())])


def default_name(stem: str) -> str:
    """The run name of a config that has no ``name:``: its file name, made valid ("my model+aug" ->
    "my_model_aug"), since it names run directories; the user never wrote it, so it is never an error."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._-")
    return cleaned if cleaned and cleaned[0].isalnum() else ("config_" + cleaned if cleaned else "config")


def loads_config(text: str, file: str = "<string>", overrides=(), name: str = "config",
                 validate_layer: LayerValidator | None | object = DECLARED, base_dir=None) -> Config:
    """Like :func:`load_config` for YAML text (``base:`` works only with ``base_dir``)."""
    return _load(text, file, Path(base_dir) if base_dir else None, name, overrides, validate_layer, [])


def _load(text, label, base_dir, stem, overrides, validate_layer, chain) -> Config:
    data, sources = _parse(text, label)
    data, sources = _with_base(data, sources, label, base_dir, chain)
    if isinstance(overrides, str):
        overrides = [overrides]
    bad_overrides = apply_overrides(data, sources, list(overrides))
    written = copy.deepcopy(data)
    resolved, problems = validate(data, stem, validate_layer)
    config = Config(resolved, label, sources, written)
    if problems or bad_overrides:
        raise ConfigError(_sorted(problems, bad_overrides, config, list(overrides)))
    return config


def _sorted(problems, ready: list[Problem], config: Config, overrides: list[str]) -> list[Problem]:
    """Located problems in file order, then the overrides' in command-line order; no repeats."""
    order = {override_label(o): i for i, o in enumerate(overrides)}
    unique = dict.fromkeys([config.problem(path, msg) for path, msg in problems] + ready)
    out = sorted(unique, key=lambda p: (p.file in order, order.get(p.file, 0), p.file,
                                        p.line or 0, p.col or 0))
    if len(out) > MAX_PROBLEMS:  # past a screenful, more lines only hide the first mistake
        more = len(out) - MAX_PROBLEMS
        out = out[:MAX_PROBLEMS] + [Problem(config.file, None, None, "", f"... and {more} more problems")]
    return out
