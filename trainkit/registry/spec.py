"""Small declarative value specs: types, ranges, records with defaults, named variants.

A spec checks one value at one key path, records every problem in a
:class:`Checker` (so all problems are reported at once), and returns the value
normalised (ints become floats where a float is expected, defaults filled in).
On a problem it returns :data:`INVALID`, which later checks skip quietly.
"""
from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

#: Marks a required record field (there is no default).
REQUIRED = object()
#: Returned for a value that had a problem; dependent checks skip it.
INVALID = object()


def suggest(word: object, known) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or ``""``."""
    if not isinstance(word, str):
        return ""
    words = set(word.lower().split("_"))
    # "random_flip" means "random_horizontal_flip" more than "random_crop": whole words first.
    close = [k for k in known if len(words) > 1 and words <= set(k.split("_"))][:1]
    close = close or difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    if not close:  # case slips and prefixes ("Adam", "cifar") are common too
        low = [k for k in known if k.lower() == word.lower() or k.startswith(word.lower())]
        close = low[:1]
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown_name(kind: str, word: object, known) -> str:
    """Message for a name that is not one of ``known``."""
    return (f"unknown {kind} {found(word, bare=True)}{suggest(word, known)} "
            f"(known: {', '.join(known)})")


def found(value: object, bare: bool = False) -> str:
    """Describe a YAML value as a person reads it: ``string 'abc'``, ``a list``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"'{text}'" if bare else f"string '{text}'"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


class Checker:
    """Collects problems as ``(path, message)``; the caller turns them into located Problems."""

    def __init__(self) -> None:
        self.problems: list[tuple[tuple, str]] = []

    def error(self, path: tuple, message: str) -> object:
        """Record a problem and return :data:`INVALID`."""
        self.problems.append((tuple(path), message))
        return INVALID


class Spec:
    """Base class: ``check(value, path, checker)`` returns the normalised value or INVALID."""

    def check(self, value: Any, path: tuple, ck: Checker) -> Any:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:
        """What is expected, as a phrase used in messages and docs."""
        return "a value"


def _range_text(lo, hi, lo_open, hi_open) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"{'<' if hi_open else '<='} {hi}"


@dataclass
class Raw(Spec):
    """Any value, unchecked here (a later, specific check looks at it); ``text`` describes what is expected."""

    text: str = "a value"

    def describe(self) -> str:
        return self.text

    def check(self, value, path, ck):
        return value


@dataclass
class Number(Spec):
    """An int (``integer=True``) or a float, optionally bounded; floats must be finite."""

    integer: bool = False
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        what = "an integer" if self.integer else "a number"
        if self.lo is None and self.hi is None:
            return what
        return f"{what} {_range_text(self.lo, self.hi, self.lo_open, self.hi_open)}"

    def check(self, value, path, ck):
        ok_type = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            return ck.error(path, f"expected {self.describe()}, found {found(value)}")
        given = value
        if not self.integer:
            value = float(value)
            if not math.isfinite(value):
                return ck.error(path, f"expected a finite number, found {value}")
        lo_bad = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        hi_bad = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if lo_bad or hi_bad:
            return ck.error(path, f"must be {_range_text(self.lo, self.hi, self.lo_open, self.hi_open)}, "
                                  f"found {given!r}")
        return value


def Int(lo=None, hi=None) -> Number:
    """An integer in ``[lo, hi]``."""
    return Number(integer=True, lo=lo, hi=hi)


def Float(lo=None, hi=None, lo_open=False, hi_open=False) -> Number:
    """A finite number (ints accepted and turned into floats) within the bounds."""
    return Number(integer=False, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)


@dataclass
class Bool(Spec):
    """``true`` or ``false``."""

    def describe(self) -> str:
        return "true or false"

    def check(self, value, path, ck):
        if not isinstance(value, bool):
            return ck.error(path, f"expected true or false, found {found(value)}")
        return value


@dataclass
class Str(Spec):
    """A string, optionally one of ``choices`` (``kind`` names them in messages)."""

    choices: tuple[str, ...] | None = None
    kind: str = "value"

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices) if self.choices else "a string"

    def check(self, value, path, ck):
        if not isinstance(value, str):
            return ck.error(path, f"expected {self.describe()}, found {found(value)}")
        if self.choices and value not in self.choices:
            return ck.error(path, unknown_name(self.kind, value, self.choices))
        return value


@dataclass
class Nullable(Spec):
    """``null`` or the inner spec."""

    inner: Spec

    def describe(self) -> str:
        return f"null or {self.inner.describe()}"

    def check(self, value, path, ck):
        return None if value is None else self.inner.check(value, path, ck)


@dataclass
class ListOf(Spec):
    """A list whose items match ``item``; ``length`` fixes its size, ``min_len`` bounds it."""

    item: Spec
    min_len: int = 0
    length: int | None = None
    increasing: bool = False

    def describe(self) -> str:
        n = f"{self.length} " if self.length is not None else ""
        item = self.item.describe()
        for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a string", "strings")):
            if item.startswith(one):
                item = many + item[len(one):]
        return f"a list of {n}{item}"

    def check(self, value, path, ck):
        if not isinstance(value, list):
            return ck.error(path, f"expected {self.describe()}, found {found(value)}")
        if self.length is not None and len(value) != self.length:
            return ck.error(path, f"expected a list of {self.length} items, found {len(value)}")
        if len(value) < self.min_len:
            return ck.error(path, f"expected at least {self.min_len} item(s), found {len(value)}")
        out = [self.item.check(v, path + (i,), ck) for i, v in enumerate(value)]
        if self.increasing and INVALID not in out and any(b <= a for a, b in zip(out, out[1:])):
            return ck.error(path, f"must be strictly increasing, found {out}")
        return INVALID if INVALID in out else out


@dataclass
class AnyOf(Spec):
    """The first spec whose type matches (tried silently); ``text`` describes them all."""

    options: tuple[Spec, ...]
    text: str

    def describe(self) -> str:
        return self.text

    def check(self, value, path, ck):
        for spec in self.options:
            trial = Checker()
            out = spec.check(value, path, trial)
            if not trial.problems:
                return out
            if not any(m.startswith("expected ") for _, m in trial.problems):
                ck.problems.extend(trial.problems)  # right type, wrong value: say why
                return INVALID
        return ck.error(path, f"expected {self.text}, found {found(value)}")


@dataclass
class Field:
    """One record key: its spec, its default (or REQUIRED), and a line for the docs."""

    spec: Spec
    default: Any = REQUIRED
    doc: str = ""


@dataclass
class Record(Spec):
    """A mapping with known keys; unknown keys are refused with a did-you-mean."""

    fields: dict[str, Field]
    what: str = "mapping"
    extra_check: Callable[[dict, tuple, Checker], None] | None = field(default=None, repr=False)

    def describe(self) -> str:
        return f"{'an' if self.what[0] in 'aeiou' else 'a'} {self.what}"

    def check(self, value, path, ck):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            return ck.error(path, f"expected {self.describe()}, found {found(value)}")
        out: dict = {}
        bad = False
        for key in value:
            if key not in self.fields:
                ck.error(path + (key,), unknown_key(key, self.fields))
                bad = True
        for key, f in self.fields.items():
            if key in value:
                out[key] = f.spec.check(value[key], path + (key,), ck)
            elif f.default is REQUIRED:
                ck.error(path, f"missing required key '{key}' ({f.spec.describe()})")
                out[key] = INVALID
            else:
                out[key] = f.default() if callable(f.default) else copy.deepcopy(f.default)
        if not bad and self.extra_check and INVALID not in out.values():
            self.extra_check(out, path, ck)
        return out


def unknown_key(key: object, known) -> str:
    """Message for a mapping key that is not allowed here."""
    return (f"unknown key {found(key, bare=True)}{suggest(key, known)} "
            f"(allowed here: {', '.join(known)})")
