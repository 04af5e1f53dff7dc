"""A folder on the local file system as an object store (the embedded default)."""

from __future__ import annotations

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
                found.append(ObjectInfo(key=key, size=path.stat().st_size))
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
