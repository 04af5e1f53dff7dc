"""One file that makes Spark's CSV reader throw must not block the rest of the batch (issue 13 §2).

:func:`classify_without_poison_files` runs the Spark stage's one scan of the CSV bytes; when it
fails for a reason that is not a passing outage, it pins the failure to one file, takes that
file out and runs the scan again over the rest:

1. **Named**: Spark names the file it was reading (``FAILED_READ_FILE``: "Encountered error
   while reading file <path>"); the path is mapped back to its key.
2. **Bisected** when no file is named (or the named one is not the culprit): the files are
   halved, each half probed alone, down to one file.
3. **Confirmed** either way: the file alone must fail, and a header-only control file with the
   same header must pass (so a fault of the stage itself, such as a bug or a broken dimension
   table, never turns into quarantined files).

Transient faults (:func:`sales_etl.tasks.retry.is_transient`: storage or database down,
connection refused) are raised at once, without probing: the task's retries handle them. The
loop is bounded (:data:`MAX_POISON_FILES` per run), and a file is held only when the scan of the
rest then succeeds: if it never does, the original error is raised and nothing is held.

Pure orchestration over callables, so it is independent of where the files are read from
(landing keys, claimed copies, aliases): the caller maps keys and Spark paths.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from sales_etl.file_fate import FileHold
from sales_etl.tasks.retry import is_transient
from sales_etl.validators.model import UNKNOWN

#: At most this many files are taken out of one run's batch; past it the run fails (so many
#: poison files at once is more likely a fault of the stage than of the files).
MAX_POISON_FILES = 8
#: Longest Spark error line kept in a hold's reason (``staging_files.reason``, the summary).
MAX_REASON_CHARS = 500

#: Spark 4's FAILED_READ_FILE message; the path runs up to the end of the line / SQLSTATE.
_READ_FILE = re.compile(r"Encountered error while reading file (\S.*?)\.?\s*(?:SQLSTATE|$)", re.M)

#: One file to read: (key, header).
InputFile = tuple[str, Sequence[str]]


def named_paths(exc: BaseException) -> list[str]:
    """The file paths Spark names in ``exc`` (and the exceptions it wraps), first first."""
    paths: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for path in _READ_FILE.findall(str(current)):
            if path not in paths:
                paths.append(path)
        current = current.__cause__ or current.__context__
    return paths


def error_line(exc: BaseException) -> str:
    """One line saying what Spark reported: the deepest ``Caused by`` / the first line, capped."""
    text = str(exc)
    causes = re.findall(r"Caused by: ([^\n]+)", text)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    line = f"{first} (caused by {causes[-1].strip()})" if causes else first
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 3] + "..."


def poison_hold(exc: BaseException) -> FileHold:
    """Why a file the Spark stage could not read is held (``tasks.files.hold_files``): category
    ``unknown``, a one-line reason, no row counts (none were read)."""
    return FileHold(
        UNKNOWN,
        "the Spark stage failed on this file alone, the rest of the batch was "
        f"loaded without it: {error_line(exc)}",
    )


def classify_without_poison_files(
    files: Sequence[InputFile],
    run: Callable[[Sequence[InputFile]], None],
    probe: Callable[[Sequence[InputFile]], None],
    control: Callable[[Sequence[str]], None],
    key_of_spark_path: Callable[[str], str | None],
    max_files: int = MAX_POISON_FILES,
) -> tuple[list[InputFile], dict[str, FileHold]]:
    """Run the scan over ``files``, taking out files that make it fail on their own.

    Args:
        files: ``(key, header)`` of every file to read.
        run: The scan over some files, writing its output (overwrite); raises on failure.
        probe: The same work over some files with the output discarded; raises on failure.
        control: The same work over a header-only file with this header; raises on failure.
        key_of_spark_path: A path Spark reports -> its key (None when not one of ours).
        max_files: Most files taken out before giving up.

    Returns:
        The files the scan succeeded on, and key -> :func:`poison_hold` of each file taken out.

    Raises:
        Exception: The scan's error when it is transient, cannot be pinned to one file, or
            more than ``max_files`` files fail.
    """
    remaining = list(files)
    held: dict[str, FileHold] = {}
    while True:
        try:
            run(remaining)
            return remaining, held
        except Exception as exc:
            if is_transient(exc) or len(held) >= max_files:
                raise
            culprit = _pin(exc, remaining, probe, control, key_of_spark_path)
            if culprit is None or len(remaining) == 1:
                raise  # nobody to blame, or nothing would be left to load
            key, failure, how = culprit
            held[key] = poison_hold(failure)
            logging.getLogger(__name__).warning(
                "the Spark stage failed on %s alone (%s): taking it out of the batch; %s",
                key,
                how,
                held[key].reason,
            )
            remaining = [f for f in remaining if f[0] != key]


def _pin(
    exc: BaseException,
    files: Sequence[InputFile],
    probe: Callable[[Sequence[InputFile]], None],
    control: Callable[[Sequence[str]], None],
    key_of_spark_path: Callable[[str], str | None],
) -> tuple[str, BaseException, str] | None:
    """(key, its own error, how it was found) of one file that fails alone while its control
    passes, or None."""
    by_key = {key: (key, header) for key, header in files}
    for path in named_paths(exc):
        key = key_of_spark_path(path)
        if key in by_key:
            failure = _confirmed(by_key[key], probe, control)
            if failure is not None:
                return key, failure, "named by Spark"
    return _bisect(files, probe, control)


def _fails(files: Sequence[InputFile], probe: Callable[[Sequence[InputFile]], None]) -> Any:
    """The non-transient error of probing ``files``, None when they pass (transient: raised)."""
    try:
        probe(files)
    except Exception as exc:
        if is_transient(exc):
            raise
        return exc
    return None


def _confirmed(
    file: InputFile,
    probe: Callable[[Sequence[InputFile]], None],
    control: Callable[[Sequence[str]], None],
) -> BaseException | None:
    failure = _fails([file], probe)
    if failure is None:
        return None
    try:
        control(file[1])
    except Exception as exc:  # the stage fails even without the file's rows: not its fault
        if is_transient(exc):
            raise
        return None
    return failure


def _bisect(
    files: Sequence[InputFile],
    probe: Callable[[Sequence[InputFile]], None],
    control: Callable[[Sequence[str]], None],
) -> tuple[str, BaseException, str] | None:
    """Halve the failing set until one file is left (log2(n) probes); None if no half fails."""
    suspects = list(files)
    while len(suspects) > 1:
        half = len(suspects) // 2
        first, second = suspects[:half], suspects[half:]
        if _fails(first, probe) is not None:
            suspects = first
        elif _fails(second, probe) is not None:
            suspects = second
        else:
            return None  # fails only together: not one file's fault
    failure = _confirmed(suspects[0], probe, control)
    return None if failure is None else (suspects[0][0], failure, "found by bisection")
