"""Logging set-up shared by the workflow's scripts: one log file per job."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
import warnings
from pathlib import Path

__all__ = ["log_to_file", "process_age"]

TIMING_PREFIX = "timing:"


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return uptime - float(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def log_to_file(path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send log records, Python warnings and an uncaught error to ``path``.

    Without a path the records go to stderr. At exit the job logs its start-up time (process
    start to this call: interpreter and imports) and the time after it (the work).

    Parameters
    ----------
    path : str or Path or None
        The job's log file (Snakemake's ``log[0]``).
    level : int
        Logging level.

    Returns
    -------
    logging.Logger
        The ``aifa_steps`` logger.
    """
    handlers: list[logging.Handler] = []
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    else:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=level,
        handlers=handlers,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    logger = logging.getLogger("aifa_steps")
    previous_hook = sys.excepthook

    def log_uncaught(kind, value, traceback) -> None:
        # The error that ends a job belongs in its log, not only on Snakemake's console.
        logger.critical("job failed: %s", value, exc_info=(kind, value, traceback))
        previous_hook(kind, value, traceback)

    sys.excepthook = log_uncaught
    # Start-up (interpreter, imports) and the job's own work, for bench/bench_night.py.
    startup = process_age()
    started = time.perf_counter()

    def log_timing() -> None:
        logger.info(
            "%s start-up %.3f s, work %.3f s",
            TIMING_PREFIX,
            float("nan") if startup is None else startup,
            time.perf_counter() - started,
        )

    atexit.register(log_timing)
    return logger
