"""Pick the object-store backend from a URL."""

from __future__ import annotations

from sales_etl.storage.base import ObjectStore
from sales_etl.storage.local import LocalStore


def open_store(url: str) -> ObjectStore:
    """``s3://bucket/prefix`` -> :class:`~sales_etl.storage.s3.S3Store`; else a local folder."""
    if url.startswith(("s3://", "s3a://")):
        from sales_etl.storage.s3 import S3Store

        return S3Store(url)
    if "://" in url and not url.startswith("file://"):
        raise ValueError(f"unsupported storage URL scheme: {url.split('://', 1)[0]!r}")
    return LocalStore(url.removeprefix("file://"))
