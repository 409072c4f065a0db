"""A reader for the DOT subset trainkit writes, so tests can check a graph's structure rather than its text.

``parse(text)`` returns a :class:`Graph`: nodes (id -> attributes, with ``lines`` the label split at its
line breaks and ``cluster`` the innermost cluster holding the node), edges (source, target, attributes)
and clusters (name -> label). Anything it does not understand is an error, so a malformed file fails.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_STR = r'"((?:[^"\\]|\\.)*)"'
_NODE = re.compile(rf"^\s*{_STR}\s*\[(.*)\];$")
_EDGE = re.compile(rf"^\s*{_STR}\s*->\s*{_STR}(?:\s*\[(.*)\])?;$")
_SUB = re.compile(rf"^\s*subgraph\s+{_STR}\s*\{{$")
_ATTR = re.compile(rf"(\w+)=(?:{_STR}|([^,\s\]]+))")


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s)


def _attrs(text: str) -> dict:
    return {m.group(1): _unescape(m.group(2)) if m.group(2) is not None else m.group(3)
            for m in _ATTR.finditer(text or "")}


@dataclass
class Graph:
    """A parsed DOT graph."""

    name: str
    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    clusters: dict = field(default_factory=dict)
    cluster_parent: dict = field(default_factory=dict)

    def out(self, node: str) -> list:
        """Targets of the edges leaving ``node``."""
        return [d for s, d, _ in self.edges if s == node]

    def into(self, node: str) -> list:
        """Sources of the edges entering ``node``."""
        return [s for s, d, _ in self.edges if d == node]

    def titled(self, title: str) -> list:
        """Ids of the nodes whose label starts with ``title``."""
        return [k for k, n in self.nodes.items() if n["lines"][0] == title]

    def descendants(self, node: str) -> set:
        """Nodes reachable from ``node`` along edges."""
        seen, stack = set(), [node]
        while stack:
            for d in self.out(stack.pop()):
                if d not in seen:
                    seen.add(d)
                    stack.append(d)
        return seen


def parse(text: str) -> Graph:
    """Parse DOT text written by trainkit (raises ValueError on any line it does not recognise)."""
    lines = text.strip().splitlines()
    head = re.match(rf"^digraph\s+{_STR}\s*\{{$", lines[0])
    if not head or lines[-1].strip() != "}":
        raise ValueError("not a digraph")
    g = Graph(_unescape(head.group(1)))
    stack: list = []
    for line in lines[1:-1]:
        s = line.strip()
        if s.startswith(("graph [", "node [", "edge [")):
            if stack and s.startswith("graph ["):
                g.clusters[stack[-1]] = _attrs(s[len("graph ["):-2]).get("label", "")
            continue
        if m := _SUB.match(line):
            name = _unescape(m.group(1))
            g.cluster_parent[name] = stack[-1] if stack else None
            stack.append(name)
            continue
        if s == "}":
            stack.pop()
            continue
        if m := _EDGE.match(line):
            g.edges.append((_unescape(m.group(1)), _unescape(m.group(2)), _attrs(m.group(3))))
            continue
        if m := _NODE.match(line):
            attrs = _attrs(m.group(2))
            attrs["lines"] = attrs.get("label", "").split("\n")
            attrs["cluster"] = stack[-1] if stack else None
            g.nodes[_unescape(m.group(1))] = attrs
            continue
        raise ValueError(f"unrecognised DOT line: {line!r}")
    if stack:
        raise ValueError("unclosed subgraph")
    for s, d, _ in g.edges:
        if s not in g.nodes or d not in g.nodes:
            raise ValueError(f"edge {s} -> {d} names a node that is not declared")
    return g
