"""The package's layout: what a per-frame job loads, and the size of modules and adapters.

- The modules a per-frame job needs (calibration, astrometry, frame photometry) load neither
  matplotlib (figures live in each stage's ``plots`` module) nor the simulator (science never
  imports it): checked in a fresh interpreter per module, on ``sys.modules``.
- No module of the package is over ``MAX_MODULE_LINES`` lines: split by job instead.
- No adapter (``workflow/scripts/*.py``) is over ``MAX_SCRIPT_LINES`` lines: adapters read
  Snakemake's inputs, parameters and log, call the package, and write the outputs; anything
  longer holds logic that belongs in the package, with a test.
"""

import json
import pkgutil
import subprocess
import sys

import pytest

import aifa_steps.astrometry

from .helpers import REPO

PACKAGE = REPO / "src" / "aifa_steps"
SCRIPTS = REPO / "workflow" / "scripts"
MAX_MODULE_LINES = 450
MAX_SCRIPT_LINES = 80
#: Modules no per-frame job may load (a name or a submodule of it).
HEAVY = ("matplotlib", "aifa_steps.simulate")


def per_frame_modules() -> list[str]:
    """What the per-frame rules import: every astrometry module but its figures (found with
    pkgutil, so that new ones are covered), calibration, frame and PSF photometry."""
    astrometry = [
        info.name
        for info in pkgutil.walk_packages(
            aifa_steps.astrometry.__path__, prefix="aifa_steps.astrometry."
        )
        if info.name.rsplit(".", 1)[-1] != "plots"
    ]
    return [
        "aifa_steps.calibration.calibrate",
        "aifa_steps.astrometry",
        *sorted(astrometry),
        "aifa_steps.photometry.frame",
        "aifa_steps.photometry.psf_frame",
    ]


PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
heavy = tuple(sys.argv[2:])
print(json.dumps(sorted(m for m in sys.modules if any(
    m == h or m.startswith(h + ".") for h in heavy))))
"""


@pytest.mark.parametrize("module", per_frame_modules())
def test_per_frame_modules_load_neither_matplotlib_nor_the_simulator(module):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, module, *HEAVY],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not loaded, f"importing {module} loads {', '.join(loaded[:5])}"


def line_counts(paths) -> dict[str, int]:
    return {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in paths}


def test_no_module_of_the_package_is_too_long():
    counts = line_counts(sorted(PACKAGE.rglob("*.py")))
    assert counts
    longest = max(counts.values())
    too_long = {name: n for name, n in counts.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"over {MAX_MODULE_LINES} lines (longest {longest}): {too_long}"


def test_adapters_only_adapt():
    counts = line_counts(sorted(SCRIPTS.glob("*.py")))
    assert counts
    too_long = {name: n for name, n in counts.items() if n > MAX_SCRIPT_LINES}
    assert not too_long, f"adapters over {MAX_SCRIPT_LINES} lines: {too_long}"


def test_the_night_benchmark_knows_the_stage_of_every_rule():
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("bench_night", REPO / "bench" / "bench_night.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    benchmarked = set()
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        # A rule's name, then its directives up to the next rule: those with a benchmark file.
        for name, body in re.findall(
            r"^\s*(?:rule|checkpoint) (\w+):\n(.*?)(?=^\s*(?:rule|checkpoint) |\Z)",
            path.read_text(),
            flags=re.M | re.S,
        ):
            if "benchmark:" in body:
                benchmarked.add(name)
    assert benchmarked and benchmarked <= set(bench.STAGES), benchmarked - set(bench.STAGES)
