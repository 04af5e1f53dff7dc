"""Keep credentials out of logs, artifacts and exceptions."""

from __future__ import annotations

from sqlalchemy.engine import make_url


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: show only the scheme
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"
