"""A single-node SLURM cluster on this machine for the tests of this folder (`.ci/slurm-cluster`).

The tests here start SLURM daemons as root, so they run only when asked:
``AIFA_SLURM_TEST=1`` runs them where SLURM, munge and root (or passwordless sudo) are there
and skips them otherwise; ``AIFA_SLURM_TEST=required`` (``.ci/run``) fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..helpers import REPO

CLUSTER_SCRIPT = REPO / ".ci" / "slurm-cluster"


@dataclass(frozen=True)
class SlurmCluster:
    """The running cluster: its folder and the job completion log (one line per job)."""

    folder: Path

    @property
    def jobcomp(self) -> Path:
        return self.folder / "log" / "jobcomp.log"


def _skip_or_fail(message: str) -> None:
    if os.environ.get("AIFA_SLURM_TEST") == "required":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster():
    """Start the cluster for the session; stop it afterwards (also when a test failed)."""
    if not os.environ.get("AIFA_SLURM_TEST"):
        pytest.skip("SLURM tests run only with AIFA_SLURM_TEST=1 (they start daemons as root)")
    missing = [p for p in ("slurmctld", "slurmd", "sbatch", "munged") if not shutil.which(p)]
    if missing:
        _skip_or_fail(f"not installed: {', '.join(missing)} (.ci/slurm-cluster install)")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        _skip_or_fail("snakemake-executor-plugin-slurm is not installed (pip install -e '.[dev]')")
    started = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        _skip_or_fail(f"the SLURM cluster did not start:\n{started.stdout}\n{started.stderr}")
    try:
        yield SlurmCluster(Path(os.environ.get("AIFA_SLURM_DIR", "/tmp/aifa-slurm")))
    finally:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop"], capture_output=True, timeout=120)
