"""Keep credentials out of logs, artifacts and exceptions: the product's one masker.

- :func:`redact_url` shows one URL we hold (the database URL) with its password masked;
- :func:`scrub` masks free text (an error message, a plugin's reason, an artifact's cell):
  passwords of any URL in it, and the values of the secret environment variables and of the
  database password;
- :func:`reveal` unwraps a :class:`~pydantic.SecretStr` at the one place the clear text is
  needed (an engine, an exported environment).
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import TYPE_CHECKING

from pydantic import SecretStr
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from sales_etl.settings import Settings

MASK = "***"
#: Environment variables whose values never appear in a message, log or artifact.
SECRET_ENV_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
#: ``scheme://user:password@``: the user stays, the password goes (as SQLAlchemy renders it).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)@")
#: Secret values shorter than this are not searched for (they would mask ordinary text).
_MIN_SECRET_CHARS = 4


def reveal(value: str | SecretStr) -> str:
    """The clear text of ``value`` (a :class:`~pydantic.SecretStr` or a plain string)."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def redact_url(url: str | SecretStr) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    url = reveal(url)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: show only the scheme
        return url.split("://", 1)[0] + "://" + MASK if "://" in url else MASK


def _secret_values(settings: Settings | None) -> list[str]:
    values = [os.environ.get(name, "") for name in SECRET_ENV_VARS]
    if settings is not None:
        # Not a SQLAlchemy URL: the URL pattern of scrub() still masks its password.
        with contextlib.suppress(Exception):
            values.append(make_url(reveal(settings.database_url)).password or "")
    # Longest first so a secret containing another is masked whole; ignore trivial values.
    return sorted({v for v in values if len(v) >= _MIN_SECRET_CHARS}, key=len, reverse=True)


def scrub(text: str, settings: Settings | None = None) -> str:
    """``text`` with URL passwords and known secret values replaced by ``***``.

    Known secrets: the values of :data:`SECRET_ENV_VARS` and, given ``settings``, the password
    of its database URL (masked even where it appears outside a URL).
    """
    for value in _secret_values(settings):
        text = text.replace(value, MASK)
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
