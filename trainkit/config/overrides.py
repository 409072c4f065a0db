"""``--set key.path=value`` overrides, applied to a parsed config before validation.

The value is read with the same safe YAML reader as config files, so
``--set optimizer.lr=1e-3``, ``--set data.transforms=[]`` and
``--set optimizer={type: adam, lr: 0.001}`` all work. A path segment made of
digits indexes a list (``model.layers.0.conv2d.out_channels=8``). Keys that do
not exist are created here and refused by the schema with a did-you-mean, so
every problem is reported against the ``--set`` that caused it.
"""
from __future__ import annotations

from trainkit.registry import found
from trainkit.config.yamlsafe import dotted, parse_yaml
from trainkit.errors import ConfigError, Problem


def override_label(text: str) -> str:
    """How an override is named in messages: ``--set key.path=value``."""
    # Undecodable argv bytes arrive as lone surrogates, which no terminal can print.
    return "--set " + str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def parse_override(text: str) -> tuple[tuple, object]:
    """Split ``key.path=value`` into a path tuple and the YAML-parsed value."""
    label = override_label(text)
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError([Problem(label, None, None, "", "expected KEY.PATH=VALUE, e.g. "
                                   "--set optimizer.lr=0.01")])
    key, _, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError([Problem(label, None, None, "", f"bad key path {key!r}; write keys "
                                   "joined by dots, e.g. train.epochs")])
    try:
        value, _ = parse_yaml(raw, label)
    except ConfigError as e:
        raise ConfigError([Problem(label, None, None, key, p.message) for p in e.problems]) from None
    return tuple(parts), value


def apply_overrides(data: dict, sources: dict, overrides) -> list[Problem]:
    """Apply each override to ``data`` in place and point ``sources`` at the override.

    ``sources`` maps key paths to ``(file, line, col)``; the overridden path, the
    keys created on the way, and everything below it now read ``(label, None, None)``.
    Returns the problems (a malformed override, a path through a scalar, a bad
    list index); the overrides without problems are applied, so the schema can
    still check the rest and every problem is reported in one go.
    """
    problems: list[Problem] = []
    for text in overrides:
        label = override_label(text)
        try:
            parts, value = parse_override(text)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        path, message = _set(data, parts, value)
        if message:
            problems.append(Problem(label, None, None, dotted(path), message))
            continue
        here = (label, None, None)
        for k in [k for k in sources if k[:len(path)] == path]:
            del sources[k]  # the file's positions below this path no longer describe it
        for i in range(1, len(path) + 1):
            if path[:i] not in sources or i == len(path):
                sources[path[:i]] = here
        for sub in _subpaths(value, path):
            sources[sub] = here
    return problems


def _set(data: dict, parts: tuple, value) -> tuple[tuple, str | None]:
    """Set ``value`` at ``parts``; return the typed path and an error message or None."""
    cur = data
    path: tuple = ()
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            if not part.isdigit():
                return path + (part,), f"'{dotted(path)}' is a list; use a 0-based index, not {part!r}"
            idx = int(part)
            if idx >= len(cur):
                return path + (idx,), (f"index {idx} is out of range: '{dotted(path)}' has "
                                       f"{len(cur)} item(s)")
            path += (idx,)
            if last:
                cur[idx] = value
            else:
                if cur[idx] is None:
                    cur[idx] = {}
                cur = cur[idx]
        elif isinstance(cur, dict):
            path += (part,)
            if last:
                cur[part] = value
            else:
                if cur.get(part) is None:
                    cur[part] = {}
                cur = cur[part]
        else:
            return path, (f"'{dotted(path)}' holds {found(cur)}, not a mapping, so it has no "
                          f"key '{part}'; set the whole value instead (--set {dotted(path)}=...)")
    return path, None


def _subpaths(value, path: tuple):
    if isinstance(value, dict):
        for k, v in value.items():
            yield path + (k,)
            yield from _subpaths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield path + (i,)
            yield from _subpaths(v, path + (i,))
