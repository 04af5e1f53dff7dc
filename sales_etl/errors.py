"""The errors a user can fix, and how the command line reports them (README "Command line").

Every command turns a :class:`UserError` into one line on stderr (two with a ``hint``) and its
``exit_code``, without a traceback unless ``--debug`` / ``SALES_ETL_DEBUG=1``. Anything else is
a failed run (exit 1), shown the same way. Messages never hold a password: build them with
:func:`sales_etl.secrets.redact_url` for database URLs.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user must fix before the command can do its work.

    ``message`` names the setting (environment variable and flag), file or table and the
    resolved location; ``hint`` says what to do. Nothing was moved or written when it is raised.
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class ConfigError(UserError):
    """A setting, flag, path, database or table that is wrong or unusable (exit 2)."""


class InputError(UserError):
    """An input file the user gave (a dimension CSV, a plugin folder) cannot be used (exit 2)."""


def one_line(text: str, limit: int = 500) -> str:
    """``text`` with every run of whitespace (newlines too) made one space, cut at ``limit``."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class ServiceUnreachableError(ConfigError):
    """A configured service (database, object store) did not answer.

    A wrong address and a passing outage look the same from here: the command line refuses at
    once (exit 2, nothing ran), while the flow's tasks retry it like any outage
    (:func:`sales_etl.tasks.retry.is_transient` looks through it at the connection error).
    """
