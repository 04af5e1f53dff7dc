"""Run a command and measure it: wall time and the peak memory of its whole process tree.

The pipeline is a Python process that starts a JVM (Spark) and a Prefect server subprocess;
the peak RSS of the parent alone would miss most of its memory, so the tree is sampled.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil

SAMPLE_SECONDS = 0.1


@dataclass
class Measured:
    """What one command did: exit code, output, seconds and the tree's peak RSS in bytes."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss: int
    peak_processes: int


def tree_rss(root: psutil.Process) -> tuple[int, int]:
    """Sum of the RSS of ``root`` and all its descendants, and how many processes that is."""
    total = count = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # exited between listing and reading: its memory is gone too
    return total, count


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
    peak = {"rss": 0, "processes": 0}
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            rss, count = tree_rss(root)
            peak["rss"] = max(peak["rss"], rss)
            peak["processes"] = max(peak["processes"], count)
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return Measured(proc.returncode, stdout, stderr, seconds, peak["rss"], peak["processes"])
