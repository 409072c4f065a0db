"""Parse YAML text into plain Python values plus the source position of every key.

PyYAML's ``safe_load`` gives values but forgets where they came from, and it
silently keeps the last of two duplicate keys. Here the text is *composed*
into PyYAML's node tree (which records line and column of every node), and the
tree is turned into plain dicts, lists and scalars by our own walk, which:

* accepts only the plain YAML types (mapping, sequence, str, int, float, bool,
  null); every other tag (``!!python/object/apply``, ``!!binary``, dates, custom
  ``!tags``) is refused with its line, so nothing but data can come out;
* refuses duplicate keys, naming both lines;
* counts the nodes produced by alias expansion, so a "billion laughs" document
  is refused after a few thousand nodes instead of filling memory;
* records ``positions[path] = (line, col)`` (1-based) for every key and list
  item, where ``path`` is a tuple of keys and list indices.

All problems are collected and raised together as one :class:`ConfigError`.
"""
from __future__ import annotations

import re

import yaml

from trainkit.errors import ConfigError, Problem

#: Configs larger than this are refused before they are parsed.
MAX_FILE_BYTES = 1024 * 1024
#: Nodes that alias expansion may produce in one document (anchors are for
#: reusing a block or two, not for generating data).
MAX_ALIAS_NODES = 10_000
#: Nesting depth; deeper documents are refused (and would exhaust the stack).
MAX_DEPTH = 64
#: Values (scalars, lists, mappings) in one document: a config is not a data file,
#: and the pure-Python parser needs seconds per 100k values.
MAX_NODES = 50_000

_T = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_T + "null", _T + "bool", _T + "int", _T + "float", _T + "str"}

# YAML 1.1 (PyYAML) reads "1e-3" as a string because it lacks a dot; people write
# learning rates that way, so numbers with an exponent are floats here, as in YAML 1.2.
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 exponent floats; used only to compose nodes."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that knows about exponent floats, so the string "1e3" is quoted."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver(_T + "float", _EXP_FLOAT, list("-+0123456789"))

# Scalars are converted by PyYAML's own safe constructor functions (bool/int/float
# rules), called directly so that no cache of nodes outlives a parse.
_SCALARS = yaml.SafeLoader("")


def _scalar(node):
    return yaml.SafeLoader.yaml_constructors[node.tag](_SCALARS, node)


def _pos(mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def dotted(path: tuple) -> str:
    """``("model", "layers", 3, "conv2d")`` -> ``"model.layers.3.conv2d"``."""
    return ".".join(str(p) for p in path)


def dump_yaml(data) -> str:
    """Write plain data as YAML that :func:`parse_yaml` reads back to the same value."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None,
                     allow_unicode=True, width=100)


def decode_bytes(raw: bytes, file: str) -> str:
    """Decode UTF-8 (a BOM is allowed); anything else is a ConfigError at the bad byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        before = raw[: e.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        raise ConfigError([Problem(file, line, col, "",
                                   f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset "
                                   f"{e.start}); save the config as UTF-8")]) from None
    return text[1:] if text.startswith("\ufeff") else text


def parse_yaml(text: str, file: str) -> tuple[object, dict[tuple, tuple[int, int]]]:
    """Parse one YAML document into ``(value, positions)``; raise ConfigError on any problem.

    ``file`` is only used in messages. An empty document gives ``None``.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates: undecodable bytes in a --set argument
        line = text.count("\n", 0, e.start) + 1
        col = e.start - (text.rfind("\n", 0, e.start) + 1) + 1
        raise ConfigError([Problem(file, line, col, "", "not valid UTF-8 (an undecodable byte); "
                                   "write the config as UTF-8")]) from None
    _prescan(text, file)
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = _pos(mark) if mark else (None, None)
        what = e.problem or e.context or "invalid YAML"
        if e.context and e.problem:
            what = f"{e.context}, {e.problem}"
        raise ConfigError([Problem(file, line, col, "", f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as e:  # ReaderError (control characters) and the like
        pos = getattr(e, "position", None)
        line = col = None
        if isinstance(pos, int):
            line = text.count("\n", 0, pos) + 1
            col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        what = getattr(e, "reason", None) or str(e)
        char = getattr(e, "character", None)
        if char is not None:
            what = f"{what} (character {char!r})" if isinstance(char, str) else what
        raise ConfigError([Problem(file, line, col, "", f"YAML error: {what}")]) from None
    except RecursionError:
        raise ConfigError([Problem(file, None, None, "",
                                   f"YAML nested too deeply (limit {MAX_DEPTH} levels)")]) from None
    if node is None:
        return None, {}
    walker = _Walker(file)
    value = walker.value(node, (), 0, False)
    if walker.problems:
        raise ConfigError(walker.problems)
    return value, walker.positions


def _prescan(text: str, file: str) -> None:
    """Refuse documents nested too deeply or with too many values, before composing them.

    libyaml's event parser (when present) is fast and keeps no recursion, so it can
    count cheaply; it stops at the first excess. Its syntax errors are ignored here:
    the pure-Python parser reports them next, with the same text everywhere.
    """
    if not getattr(yaml, "__with_libyaml__", False):
        return  # the walker's own limits and the RecursionError guard still apply
    depth = nodes = 0
    events = yaml.parse(text, Loader=yaml.CSafeLoader)
    try:
        for ev in events:
            if isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                nodes += 1
                if depth > MAX_DEPTH:
                    line, col = _pos(ev.start_mark)
                    raise ConfigError([Problem(file, line, col, "",
                                               f"YAML nested too deeply (limit {MAX_DEPTH} levels)")])
            elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
            elif isinstance(ev, (yaml.ScalarEvent, yaml.AliasEvent)):
                nodes += 1
            if nodes > MAX_NODES:
                line, col = _pos(ev.start_mark)
                raise ConfigError([Problem(file, line, col, "", f"more than {MAX_NODES} values; "
                                           "a config describes a run, it does not hold data")])
    except yaml.YAMLError as e:
        # Newer libyaml (PyYAML >= 6.0.4 wheels) has its own nesting limit in the scanner, which
        # reads ahead of the events: report that as too deep too, where the scanner stopped.
        if "nesting depth" in str(getattr(e, "problem", "") or ""):
            mark = getattr(e, "problem_mark", None)
            line, col = _pos(mark) if mark is not None else (None, None)
            raise ConfigError([Problem(file, line, col, "",
                                       f"YAML nested too deeply (limit {MAX_DEPTH} levels)")]) from None
        return
    finally:
        events.close()


class _TooMany(Exception):
    pass


class _Walker:
    """Turns a composed node tree into plain values, recording positions and problems."""

    def __init__(self, file: str):
        self.file = file
        self.positions: dict[tuple, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self.alias_nodes = 0
        self.nodes = 0
        self.active: set[int] = set()  # nodes being expanded: a recursive alias loops back here
        self.seen: set[int] = set()    # every node visited once; revisits come from aliases
        self.alias_root: tuple = ()    # where the current alias expansion began

    def problem(self, node, path: tuple, message: str) -> None:
        line, col = _pos(node.start_mark)
        self.problems.append(Problem(self.file, line, col, dotted(path), message))

    def value(self, node, path: tuple, depth: int, in_alias: bool):
        """Convert ``node``; ``in_alias`` is true below a node reached a second time."""
        if self.problems and len(self.problems) >= 50:
            return None  # enough to show; stop walking a hopeless document
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if self.nodes == MAX_NODES + 1:
                self.problem(node, path, f"more than {MAX_NODES} values; a config describes a "
                                         "run, it does not hold data")
            return None
        if depth > MAX_DEPTH:
            self.problem(node, path, f"nested too deeply (limit {MAX_DEPTH} levels)")
            return None
        nid = id(node)
        if nid in self.active:
            self.problem(node, path, "recursive alias (an anchor used inside itself)")
            return None
        if nid in self.seen and not in_alias:
            in_alias = True
            self.alias_root = path
        self.seen.add(nid)
        if in_alias:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                self.bomb(node)
                raise _TooMany
        if isinstance(node, yaml.ScalarNode):
            if node.tag not in _PLAIN_TAGS:
                self._bad_tag(node, path)
                return None
            try:
                return _scalar(node)
            except (yaml.YAMLError, ValueError, OverflowError) as e:
                self.problem(node, path, f"cannot read value {node.value!r}: {e}")
                return None
        self.active.add(nid)
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _T + "seq":
                    self._bad_tag(node, path)
                    return None
                out = []
                for i, item in enumerate(node.value):
                    self.positions.setdefault(path + (i,), _pos(item.start_mark))
                    out.append(self.value(item, path + (i,), depth + 1, in_alias))
                return out
            if node.tag != _T + "map":
                self._bad_tag(node, path)
                return None
            return self.mapping(node, path, depth, in_alias)
        except _TooMany:
            if depth == 0:
                return None
            raise
        finally:
            self.active.discard(nid)

    def bomb(self, node) -> None:
        # An alias node is the anchored node itself, so its marks point at the anchor;
        # the nearest mapping key above the expansion is where the alias is used.
        path = self.alias_root
        while path and not isinstance(path[-1], str):
            path = path[:-1]
        line, col = self.positions.get(path, _pos(node.start_mark))
        self.problems.append(Problem(self.file, line, col, dotted(path),
                                     f"YAML aliases expand to more than {MAX_ALIAS_NODES} nodes "
                                     "(an alias bomb?); write the values out instead"))

    def _bad_tag(self, node, path: tuple) -> None:
        tag = node.tag.replace(_T, "!!")
        hint = ""
        if node.tag in (_T + "timestamp", _T + "value", _T + "yaml"):
            hint = "; quote the value to keep it as a string"  # a plain date or '=' read as a tag
        self.problem(node, path, f"YAML tag '{tag}' is not allowed (a config holds only "
                                 f"mappings, lists, strings, numbers, booleans and null){hint}")

    def mapping(self, node, path: tuple, depth: int, in_alias: bool) -> dict:
        out: dict = {}
        first_line: dict = {}
        merges = []
        for knode, vnode in node.value:
            if knode.tag == _T + "merge":
                merges.append((knode, vnode))
                continue
            if not isinstance(knode, yaml.ScalarNode) or knode.tag not in _PLAIN_TAGS:
                self.problem(knode, path, "a mapping key must be a plain string")
                continue
            key = _scalar(knode)
            if not isinstance(key, str):
                kind = {bool: "a boolean", int: "an integer", float: "a number"}.get(type(key), "null")
                self.problem(knode, path + (knode.value,), f"key {knode.value!r} is read as "
                             f"{kind}, not a string; quote it")
                continue
            kpath = path + (key,)
            if key in out or key in first_line:
                self.problem(knode, kpath, f"duplicate key '{key}' (first defined at line "
                                           f"{first_line[key]}, again at line {knode.start_mark.line + 1})")
                continue
            first_line[key] = knode.start_mark.line + 1
            self.positions.setdefault(kpath, _pos(knode.start_mark))
            out[key] = self.value(vnode, kpath, depth + 1, in_alias)
        # "<<: *base" merge keys: explicit keys win, then earlier merge sources win.
        for knode, vnode in merges:
            sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    self.problem(knode, path, "'<<' merges only mappings")
                    continue
                merged = self.value(src, path, depth + 1, True)
                if isinstance(merged, dict):
                    for k, v in merged.items():
                        out.setdefault(k, v)
        return out
