"""Which classes and functions a ``trainkit.save`` file may name: PyTorch's ``safe_globals`` API.

``trainkit.save(model)`` stores a whole ``nn.Module`` as its class's name plus its attributes
(see :mod:`.native`); functions and classes it holds (an ``activation=F.relu``) are stored by
name. Loading turns a name back into an object only when the name is allowlisted, and compares
names as strings first, so a file never makes trainkit import a module: trainkit's own layers
(the classes ``trainkit.nn`` exports) are allowed by default, anything else (the user's model
classes, functions) only after ``add_safe_globals([...])`` or inside ``with safe_globals([...])``,
as ``torch.load(weights_only=True)`` requires. A module object is rebuilt with ``cls.__new__``
and its saved attributes; no ``__init__``, ``__setstate__`` or other code of the class runs.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

__all__ = ["add_safe_globals", "clear_safe_globals", "get_safe_globals", "safe_globals", "global_name",
           "allowed_global"]

_USER: list[Any] = []


def global_name(obj: Any) -> str:
    """``module.qualname`` of a class or function, the name a file refers to it by."""
    return f"{obj.__module__}.{obj.__qualname__}"


def _entries(items: Iterable[Any]) -> list[Any]:
    out = []
    for item in items:
        if isinstance(item, tuple):  # (obj, "name") as torch accepts
            if len(item) != 2 or not isinstance(item[1], str):
                raise TypeError("a safe global is an object or an (object, 'module.name') pair")
        elif not (isinstance(item, type) or callable(item)):
            raise TypeError(f"a safe global is a class or a function, got {type(item).__name__}")
        out.append(item)
    return out


def add_safe_globals(safe_globals: list[Any]) -> None:
    """Allow these classes/functions (or ``(obj, name)`` pairs) in files loaded from now on."""
    _USER.extend(_entries(safe_globals))


def clear_safe_globals() -> None:
    """Forget every global added with :func:`add_safe_globals`."""
    _USER.clear()


def get_safe_globals() -> list[Any]:
    """The globals added by the user (trainkit's own layers are allowed besides these)."""
    return list(_USER)


@contextlib.contextmanager
def safe_globals(safe_globals: list[Any]) -> Iterator[None]:
    """Allow these globals inside the ``with`` block only."""
    added = _entries(safe_globals)
    _USER.extend(added)
    try:
        yield
    finally:
        for item in added:
            _USER.remove(item)


def _builtin_table() -> dict[str, Any]:
    import trainkit.nn as nn
    from trainkit.nn.module import Module

    table = {}
    for name in dir(nn):
        obj = getattr(nn, name)
        if isinstance(obj, type) and issubclass(obj, Module):
            table[global_name(obj)] = obj
    return table


def allowed_global(name: str) -> Any:
    """The allowlisted object called ``name``, or None (nothing is imported to find out)."""
    for item in reversed(_USER):
        obj, key = item if isinstance(item, tuple) else (item, None)
        if (key or global_name(obj)) == name:
            return obj
    return _builtin_table().get(name)
