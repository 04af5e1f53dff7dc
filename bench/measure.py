"""Run a command and measure it: wall time and the peak memory of its whole process tree.

The pipeline is a Python process that starts a JVM (Spark) and a Prefect server subprocess;
the peak RSS of the parent alone would miss most of its memory, so the tree is sampled (as
PSS, so that memory shared between processes is counted once).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

SAMPLE_SECONDS = 0.1


@dataclass
class Measured:
    """What one command did: exit code, output, seconds and the tree's peak memory in bytes."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss: int  #: the tree's peak memory, PSS (see _memory); named before PSS replaced RSS
    peak_processes: int
    #: At the moment of the tree's peak: memory per process kind ("java", "python", ...).
    peak_by_process: dict[str, int]
    #: (seconds since the start, memory of the tree's java processes) of every sample: whether
    #: the JVM's memory stays flat over a long run.
    java_timeline: list[tuple[float, int]]


def _kind(proc: psutil.Process) -> str:
    """Which part of the pipeline a process is: java, prefect server, python or its program."""
    try:
        argv = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        argv = []
    program = Path(argv[0]).name if argv else proc.name()
    if "java" in program:
        return "java"
    joined = " ".join(argv)
    if "prefect" in joined and "server" in joined:  # `prefect server start` or its uvicorn app
        return "prefect server"
    return "python" if program.startswith("python") or program == "sales-etl" else program


def _memory(proc: psutil.Process) -> int:
    """PSS where the OS has it (Linux), else RSS.

    RSS counts a shared page in every process that maps it. The JVM starts its helper processes
    with posix_spawn (vfork): until exec the child shares the JVM's whole memory and its RSS
    equals the JVM's, so summing RSS over the tree counted the heap twice whenever a
    sample caught such a child. PSS splits shared pages between the processes sharing them.
    """
    try:
        return proc.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return proc.memory_info().rss


def tree_memory(root: psutil.Process) -> tuple[int, int, dict[str, int]]:
    """Memory of ``root`` and all its descendants (PSS, see :func:`_memory`), how many processes
    that is, and the memory per process kind."""
    total = count = 0
    kinds: dict[str, int] = {}
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0, {}
    for proc in processes:
        try:
            memory = _memory(proc)
            kind = _kind(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # exited between listing and reading: its memory is gone too
        total += memory
        count += 1
        kinds[kind] = kinds.get(kind, 0) + memory
    return total, count, kinds


def run_measured(
    argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None
) -> Measured:
    """Run ``argv`` to completion while a thread samples its process tree every 0.1 s."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak: dict[str, Any] = {"rss": 0, "processes": 0, "by_process": {}}
    java_timeline: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            rss, count, kinds = tree_memory(root)
            java_timeline.append((time.perf_counter() - start, kinds.get("java", 0)))
            if rss > peak["rss"]:
                peak["rss"], peak["by_process"] = rss, kinds
            peak["processes"] = max(peak["processes"], count)
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return Measured(
        proc.returncode,
        stdout,
        stderr,
        seconds,
        peak["rss"],
        peak["processes"],
        peak["by_process"],
        java_timeline,
    )
