"""Parsing the workflow stays light: on a cluster every job parses it twice.

Every Snakemake process (the main one, and on SLURM two per job) runs the top of
``workflow/Snakefile`` and ``workflow/rules/*.smk``. What they import there, and the helpers
they call while parsing, must not load the heavy libraries of the steps (astropy.table,
ccdproc, scipy, photutils, matplotlib, reproject): the settings classes and small helpers the
workflow reads live in light modules (``aifa_steps.*.settings``, ``aifa_steps.core.formats``).
Checked in a fresh interpreter, on ``sys.modules``.
"""

import ast
import json
import re
import subprocess
import sys

from .helpers import REPO

WORKFLOW = REPO / "workflow"
#: Libraries that parsing the workflow may not load (a name or a submodule of it).
HEAVY = ("astropy.table", "ccdproc", "scipy", "photutils", "matplotlib", "reproject")

REPORT = """
import json, sys
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if any(
    m == h or m.startswith(h + ".") for h in heavy))))
"""


def workflow_imports() -> list[str]:
    """The ``from aifa_steps... import ...`` statements at the top level of the workflow files
    (those every Snakemake process runs), as Python source."""
    pattern = re.compile(r"^from aifa_steps[\w.]* import (?:\([^)]*\)|[^\n]*)", re.M)
    statements = []
    for path in [WORKFLOW / "Snakefile", *sorted((WORKFLOW / "rules").glob("*.smk"))]:
        statements += pattern.findall(path.read_text())
    for statement in statements:
        ast.parse(statement)  # a statement the pattern cut short fails here
    return statements


def loaded_heavy(script: str) -> list[str]:
    """The heavy modules loaded after running ``script`` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-c", script + REPORT.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_workflow_files_import_only_light_modules():
    statements = workflow_imports()
    assert len(statements) >= 8
    loaded = loaded_heavy("\n".join(statements))
    assert not loaded, f"the workflow's imports load {', '.join(loaded[:5])}"


def test_parsing_the_workflow_loads_none_of_the_heavy_libraries():
    # The whole parse, with the helpers the rules call while parsing (the configuration's
    # checks, the detector's 'auto' keys, the photometry's keys); the workflow profile is left
    # out, so that the test does not depend on it.
    script = (
        "from snakemake.cli import main\n"
        "try:\n"
        "    main(['--list', '--workflow-profile', 'none', '--quiet', 'all'])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
    )
    loaded = loaded_heavy(script)
    assert not loaded, f"parsing the workflow loads {', '.join(loaded[:5])}"
