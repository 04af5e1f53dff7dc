"""A folder on the local file system as an object store (the embedded default)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from sales_etl.storage.base import (
    ObjectInfo,
    ObjectStore,
    StorageError,
    escape_hadoop_glob,
    safe_key,
)

logger = logging.getLogger(__name__)


def file_version(stat: os.stat_result) -> str:
    """A local file's version token: ``inode:size:mtime_ns``.

    An upload that replaces the file (new inode), truncates or appends to it (size, mtime)
    gives another token. A rewrite in place to the same size within one mtime tick would not:
    file systems with nanosecond timestamps (ext4, xfs, tmpfs) make that window negligible.
    """
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


class LocalStore(ObjectStore):
    """Objects are files under ``root``; keys are their relative POSIX paths."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*safe_key(key).split("/"))

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        if not base.is_dir():
            return []
        found = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                path = Path(dirpath, name)
                if path.is_symlink():  # a link could point outside the landing zone
                    continue
                key = path.relative_to(self.root).as_posix()
                stat = path.stat()
                found.append(ObjectInfo(key=key, size=stat.st_size, version=file_version(stat)))
        return sorted(found, key=lambda o: o.key)

    def list_top_level(self) -> list[ObjectInfo]:
        if not self.root.is_dir():
            return []
        found = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    found.append(ObjectInfo(entry.name, stat.st_size, file_version(stat)))
        return sorted(found, key=lambda o: o.key)

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise StorageError(f"object not found: {key!r}") from exc

    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        with self.open(key) as stream:
            return stream.read() if max_bytes is None else stream.read(max_bytes)

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def copy(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)  # readers never see a half-written target

    def version(self, key: str) -> str | None:
        try:
            return file_version(self._path(key).stat())
        except FileNotFoundError:
            return None

    def claim(self, src: str, dst: str, version: str) -> bool:
        source, target = self._path(src), self._path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            if file_version(source.stat()) != version:
                return False
            shutil.copyfile(source, tmp)
            unchanged = file_version(source.stat()) == version
        except FileNotFoundError:
            unchanged = False
        if not unchanged:  # written to while we copied: the copy may mix two versions
            tmp.unlink(missing_ok=True)
            return False
        os.replace(tmp, target)
        return True

    def _tombstone(self, path: Path, version: str) -> Path:
        # Hidden (listing skips dot-files), beside the original (same file system: the rename
        # is atomic), and named after the version so a repeated call finds it again.
        tag = hashlib.sha256(version.encode()).hexdigest()[:12]
        return path.with_name(f".{path.name}.sales-etl-deleting-{tag}")

    def delete_if_unchanged(self, key: str, version: str) -> bool:
        path = self._path(key)
        tombstone = self._tombstone(path, version)
        if not tombstone.exists():  # else: an earlier call died after the rename
            try:
                os.replace(path, tombstone)  # nobody can write to ``key`` under us from here on
            except FileNotFoundError:
                return False
        if file_version(tombstone.stat()) == version:
            tombstone.unlink()
            return True
        self._put_back(tombstone, path, version)
        return False

    def _put_back(self, tombstone: Path, path: Path, version: str) -> None:
        """A newer file was renamed away by :meth:`delete_if_unchanged`: restore it, never
        overwriting a file that took its name meanwhile."""
        try:
            os.link(tombstone, path)
        except FileExistsError:
            if not path.samefile(tombstone):  # not our own earlier put-back: keep both
                tag = hashlib.sha256(version.encode()).hexdigest()[:12]
                kept = path.with_name(f"{path.name}.sales-etl-kept-{tag}")
                with contextlib.suppress(FileExistsError):  # kept by an earlier attempt
                    os.link(tombstone, kept)
                logger.warning(
                    "%s changed while it was being removed and its name was taken again: "
                    "the changed file is kept as %s",
                    path,
                    kept.name,
                )
        tombstone.unlink()

    def move(self, src: str, dst: str) -> bool:
        source, target = self._path(src), self._path(dst)
        if not source.exists():
            if target.exists():
                return False
            raise StorageError(f"cannot move {src!r}: it does not exist")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)  # atomic within one file system
        return True

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        base = self.root / safe_key(prefix.rstrip("/"))
        if base.is_file():
            base.unlink()
            return 1
        if not base.is_dir():
            return 0
        count = sum(len(files) for _, _, files in os.walk(base))
        shutil.rmtree(base)
        return count

    def spark_path(self, key: str) -> str:
        # Hadoop wants the raw path (it URL-encodes by itself), with glob characters escaped.
        return "file://" + escape_hadoop_glob(str(self._path(key)))

    def key_from_spark_path(self, path: str) -> str | None:
        if not path.startswith("file:"):
            return None
        # Spark reports file:/abs/path (sometimes file:///abs/path), percent-encoded.
        local = Path("/" + unquote(path.removeprefix("file:")).lstrip("/"))
        try:
            return local.relative_to(self.root).as_posix()
        except ValueError:
            return None
