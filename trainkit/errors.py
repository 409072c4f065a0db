"""Exception types for mistakes a user can fix.

Every error a user can cause (a bad config, a missing data file, a corrupt
checkpoint) is a :class:`TrainkitError`. The CLI prints its message and exits
with code 2, without a traceback. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

from dataclasses import dataclass


class TrainkitError(Exception):
    """A mistake in the user's input; the CLI reports it and exits with code 2."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One problem found in a config: where it is and what is wrong."""

    file: str | None
    line: int | None
    col: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(TrainkitError):
    """One or more problems in a YAML config or a --set override, all reported at once."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(None, None, None, "", problems)]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class DataError(TrainkitError):
    """A data file is missing, malformed or hostile."""


class CheckpointError(TrainkitError):
    """A checkpoint is missing, corrupt, hostile or does not fit the model."""


class RunDirError(TrainkitError):
    """A run directory is missing, not a run, or would be overwritten."""


class DivergedError(Exception):
    """The training loss became NaN or infinite (exit code 3)."""

    exit_code = 3
