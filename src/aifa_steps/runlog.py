"""Logging set-up shared by the workflow's scripts: one log file per job."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

__all__ = ["log_to_file"]


def log_to_file(path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send log records, Python warnings and an uncaught error to ``path``.

    Without a path the records go to stderr.

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
    return logger
