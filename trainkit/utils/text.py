"""User text on the console: never parsed as rich markup, never sent raw to the terminal.

Everything trainkit prints goes through rich, which reads ``[bold]`` or
``[/x]`` in a string as markup (``[/x]`` raises ``MarkupError``). Text that
comes from users or their files - CSV labels, class names, YAML values, keys
of ``--set``, file and folder names, error messages quoting any of these -
is therefore passed through :func:`shown` (in a line of markup) or
:func:`cell` (a table cell) first. Both also make control characters
visible: an ESC from a data file would otherwise reach the terminal as the
start of an escape sequence (recolouring it, retitling the window, ...), and
a NUL would corrupt ``train.log``. They are printed the way Python writes
them in a string literal (``\\x1b``, ``\\x00``), on the console and in
``train.log`` alike.
"""
from __future__ import annotations

import re

__all__ = ["visible", "shown", "cell"]

# C0 controls, DEL and C1 controls; newline and tab are kept by visible(..., lines=True).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape_char(m: re.Match) -> str:
    return repr(m.group())[1:-1] if m.group() not in "\r\n\t" else {"\r": "\\r", "\n": "\\n", "\t": "\\t"}[m.group()]


def visible(text: object, lines: bool = False) -> str:
    """``text`` with control characters written as escapes (``\\x1b``) and undecodable
    bytes (lone surrogates from a file name) as ``\\udcff``. With ``lines`` a multi-line
    message keeps its newlines and tabs."""
    text = str(text)
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return (_CONTROL_BUT_LINES if lines else _CONTROL).sub(_escape_char, text)


def shown(text: object, lines: bool = True) -> str:
    """``text`` ready to be put into a string of rich markup: control characters made visible
    (:func:`visible`) and every ``[`` that could start a tag escaped, so it prints literally."""
    from rich.markup import escape

    return escape(visible(text, lines=lines))


def cell(text: object):
    """A table cell (or any renderable) showing ``text`` literally: a ``rich.text.Text``,
    which is never parsed as markup, with control characters made visible."""
    from rich.text import Text

    return Text(visible(text))
