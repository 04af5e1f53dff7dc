"""LocalStore's claim and conditional delete (issue 13 §1): checked with plain os / pathlib."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sales_etl.journal import incoming_files
from sales_etl.storage.local import LocalStore


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _store_with_file(root: Path) -> tuple[LocalStore, Path]:
    """A store at ``root`` holding ``to_process/a.csv`` = ``v1``."""
    (root / "to_process").mkdir()
    path = root / "to_process" / "a.csv"
    path.write_bytes(b"v1\n")
    return LocalStore(root), path


def test_list_top_level_lists_only_the_roots_own_files(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    (root / "to_process").mkdir(parents=True)
    (root / "to_process" / "a.csv").write_bytes(b"abc")
    (root / "b.csv").write_bytes(b"12345")
    (root / ".hidden.csv").write_bytes(b"")
    (root / "link.csv").symlink_to(tmp_path / "elsewhere.csv")  # could point outside: skipped
    (root / "folder.csv").mkdir()
    listed = LocalStore(root).list_top_level()
    assert [(o.key, o.size) for o in listed] == [(".hidden.csv", 0), ("b.csv", 5)]
    assert LocalStore(tmp_path / "missing").list_top_level() == []


def test_claim_copies_only_the_listed_version(tmp_path: Path) -> None:
    store, original = _store_with_file(tmp_path)
    (listed,) = store.list("to_process/")
    st = original.stat()
    assert listed.version == f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    assert store.claim("to_process/a.csv", "_incoming/b/claimed/000001.csv", listed.version)
    assert (tmp_path / "_incoming/b/claimed/000001.csv").read_bytes() == b"v1\n"

    with original.open("ab") as f:  # appended to in place (same inode)
        f.write(b"v2\n")
    assert not store.claim("to_process/a.csv", "_incoming/b/claimed/000002.csv", listed.version)
    original.unlink()
    assert not store.claim("to_process/a.csv", "_incoming/b/claimed/000002.csv", listed.version)
    assert _files(tmp_path) == {"_incoming/b/claimed/000001.csv": b"v1\n"}  # no partial copy


def test_delete_if_unchanged_keeps_a_new_version_and_repeats_safely(tmp_path: Path) -> None:
    store, path = _store_with_file(tmp_path)
    old = store.version("to_process/a.csv")
    path.write_bytes(b"v2, same inode, other size\n")
    assert not store.delete_if_unchanged("to_process/a.csv", old)
    assert _files(tmp_path) == {"to_process/a.csv": b"v2, same inode, other size\n"}

    new = store.version("to_process/a.csv")
    assert store.delete_if_unchanged("to_process/a.csv", new)
    assert _files(tmp_path) == {}
    assert not store.delete_if_unchanged("to_process/a.csv", new)


def _die_after_the_rename(store: LocalStore, key: str, version: str | None) -> Path:
    """Run ``delete_if_unchanged`` and stop it right after its rename to the tombstone (as a
    crash would); returns the tombstone."""
    real_replace = os.replace
    renamed: list[Path] = []

    def replace_then_die(src, dst):  # type: ignore[no-untyped-def]
        real_replace(src, dst)
        renamed.append(Path(dst))
        raise KeyboardInterrupt  # stands for the process dying here

    os.replace = replace_then_die  # type: ignore[assignment]
    try:
        with contextlib.suppress(KeyboardInterrupt):
            store.delete_if_unchanged(key, version)  # type: ignore[arg-type]
    finally:
        os.replace = real_replace  # type: ignore[assignment]
    (tombstone,) = renamed
    return tombstone


def test_delete_if_unchanged_finishes_after_a_crash_and_never_overwrites(tmp_path: Path) -> None:
    """A crash right after the rename to the tombstone: the next call finishes the job."""
    store, path = _store_with_file(tmp_path)
    version = store.version("to_process/a.csv")

    # Crash 1: the claimed version renamed to its tombstone, not unlinked yet.
    assert _die_after_the_rename(store, "to_process/a.csv", version).name.startswith(".a.csv.")
    assert incoming_files(store) == []  # hidden from the next run's listing
    assert store.delete_if_unchanged("to_process/a.csv", version)  # type: ignore[arg-type]
    assert _files(tmp_path) == {}

    # A newer file renamed away, and meanwhile the name taken by a third one: both are kept.
    path.write_bytes(b"v2\n")
    v2 = store.version("to_process/a.csv")
    path.write_bytes(b"v3, written in place\n")
    _die_after_the_rename(store, "to_process/a.csv", v2)
    path.write_bytes(b"v4, a new upload\n")
    assert not store.delete_if_unchanged("to_process/a.csv", v2)  # type: ignore[arg-type]
    kept = _files(tmp_path)
    assert kept.pop("to_process/a.csv") == b"v4, a new upload\n"
    ((name, data),) = kept.items()
    assert name.startswith("to_process/a.csv.sales-etl-kept-") and data == b"v3, written in place\n"
