"""The object-store interface every backend implements."""

from __future__ import annotations

import hashlib
import posixpath
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import BinaryIO

_HADOOP_GLOB_CHARS = "\\*?[]{}"


def escape_hadoop_glob(path: str) -> str:
    """Escape the characters Hadoop treats as a glob, so ``a[1].csv`` is read literally."""
    return "".join("\\" + ch if ch in _HADOOP_GLOB_CHARS else ch for ch in path)


class StorageError(RuntimeError):
    """A storage operation failed (missing object, escaped key, backend error)."""


@dataclass(frozen=True)
class ObjectInfo:
    """One object: its key relative to the store root, its size in bytes and its version.

    ``version`` identifies the exact bytes listed (S3: the ETag; local: ``inode:size:mtime_ns``);
    :meth:`ObjectStore.claim` and :meth:`ObjectStore.delete_if_unchanged` act only while the
    object still has it. It takes no part in equality, so ``ObjectInfo(key, size)`` compares equal.
    """

    key: str
    size: int
    version: str | None = field(default=None, compare=False)


def safe_key(key: str) -> str:
    """Normalise ``key`` and refuse anything that could escape the store root.

    ``../x.csv``, absolute paths and empty segments are rejected, so a hostile object
    name can never make the pipeline read or write outside its landing zone.
    """
    if not key or key.startswith("/") or "\x00" in key:
        raise StorageError(f"unsafe object key: {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"unsafe object key: {key!r}")
    return posixpath.join(*parts)


class ObjectStore(ABC):
    """A flat key space under one root (a local folder or an S3 prefix)."""

    url: str
    #: How many :meth:`move` calls the journal runs at once when it settles a run's files:
    #: 1 where a move is a rename; more on S3, where each is 3-4 HTTP requests that mostly wait.
    concurrent_moves: int = 1

    @abstractmethod
    def list(self, prefix: str) -> list[ObjectInfo]:
        """All objects whose key starts with ``prefix`` (every page), sorted by key."""

    @abstractmethod
    def list_top_level(self) -> list[ObjectInfo]:
        """The objects directly under the root, not in any folder, sorted by key (one listing
        of the root's own level: S3 ``ListObjectsV2`` with ``Delimiter="/"``)."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A binary stream of the object's bytes."""

    @abstractmethod
    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes, or only its first ``max_bytes``."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace an object."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    @abstractmethod
    def copy(self, src: str, dst: str) -> None:
        """Copy one object inside the store (server-side where the backend can)."""

    @abstractmethod
    def version(self, key: str) -> str | None:
        """The object's current version token (as :attr:`ObjectInfo.version`), None if missing."""

    @abstractmethod
    def claim(self, src: str, dst: str, version: str) -> bool:
        """Copy exactly the version ``version`` of ``src`` to ``dst`` (the run's own copy).

        Returns False, leaving no ``dst`` behind, when ``src`` is missing or no longer has that
        version (replaced, truncated, appended to since it was listed): the caller leaves it for
        the next run. S3: a server-side CopyObject with ``CopySourceIfMatch`` (HTTP 412 -> False).
        Local: a copy, with the source's ``inode:size:mtime_ns`` compared before and after.
        """

    @abstractmethod
    def delete_if_unchanged(self, key: str, version: str) -> bool:
        """Delete ``key`` only if it still has ``version``; True when this call deleted it.

        False when the object is missing or is another version (a new delivery under the same
        name): that one is left where it is. Safe to repeat after a crash. S3:
        ``DeleteObject`` with ``If-Match`` (HTTP 412 -> False). Local: an atomic rename to a
        hidden tombstone beside it, the version compared, then unlinked, or linked back when it
        differs (never overwriting a newer file; if the name was taken again it is kept under
        ``<name>.sales-etl-kept-<version>`` beside it and logged).
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; deleting a missing object is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many were deleted."""

    @abstractmethod
    def spark_path(self, key: str) -> str:
        """The URI Spark should use for ``key`` (``file:/...`` or ``s3a://...``), glob-escaped."""

    @abstractmethod
    def key_from_spark_path(self, path: str) -> str | None:
        """Map a path Spark reports (``_metadata.file_path``, URL-encoded) back to a key."""

    @abstractmethod
    def move(self, src: str, dst: str) -> bool:
        """Move ``src`` to ``dst``; safe to repeat after a crash.

        If ``src`` is gone and ``dst`` exists, an earlier attempt finished: nothing is left to
        do (returns False). If both exist (a crash between copy and delete), the copy is redone
        (same bytes) and ``src`` deleted, so the object ends in exactly one place either way.
        Returns True when this call moved the object.

        Raises:
            StorageError: neither ``src`` nor ``dst`` exists.
        """

    def sha256(self, key: str) -> str:
        """Hex SHA-256 of the object's bytes, streamed."""
        digest = hashlib.sha256()
        with self.open(key) as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
