"""Errors users see. Every error is one line: what went wrong, with which thing, and what to do.

The CLI prints ``error: <message>`` (plus `` (hint: ...)``) and exits with ``exit_code``; only
``--debug`` shows a traceback. Usage errors (bad flags, bad config, unknown names) exit 2,
runtime errors (a file that will not decode, a model that will not load) exit 1.
"""

from __future__ import annotations


class AnymodalError(Exception):
    """Base class of every error anymodal reports to a user."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class UsageError(AnymodalError):
    """The user asked for something that cannot work as asked: fix the command or config."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration is invalid. ``issues`` holds every problem found, not just the first."""

    def __init__(self, issues: list[str], source: str | None = None) -> None:
        where = f" {source}" if source else ""
        if len(issues) == 1:
            message = f"invalid config{where}: {issues[0]}"
        else:
            listed = "; ".join(f"({i}) {issue}" for i, issue in enumerate(issues, 1))
            message = f"{len(issues)} problems in config{where}: {listed}"
        super().__init__(message, hint="run `anymodal config validate` to check a config file")
        self.issues = list(issues)


class InputError(AnymodalError):
    """An input file is missing, unreadable, empty, too large, of the wrong kind or corrupt."""


class PluginError(AnymodalError):
    """A plugin failed to import, to register, or declared an unsupported contract."""


class ModelLoadError(AnymodalError):
    """A model (LLM, encoder, projector weights) could not be found or loaded."""
