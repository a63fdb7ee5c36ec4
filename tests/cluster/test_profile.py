"""profiles/slurm agrees with the workflow: every rule it names exists, and every rule that
runs as a SLURM job has its resources set (a new rule must be given some)."""

from __future__ import annotations

import re
import subprocess

import yaml

from ..helpers import REPO, snakemake_command

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"


def workflow_rules() -> set[str]:
    out = subprocess.run(
        snakemake_command(REPO, "--list-rules"), capture_output=True, text=True, check=True
    ).stdout
    return {line.strip() for line in out.splitlines() if re.fullmatch(r"\s*\w+\s*", line)}


def local_rules() -> set[str]:
    """Rules declared in a ``localrules:`` block of the workflow's files."""
    names = set()
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.findall(r"^localrules:\n((?:\s+\w+,?\n)+)", path.read_text(), re.M):
            names |= set(re.findall(r"\w+", block))
    return names


def test_the_profile_names_existing_rules_and_sets_every_cluster_rule():
    profile = yaml.safe_load(PROFILE.read_text())
    rules = workflow_rules() - {"all"}
    local = local_rules()
    assert {"reference_catalogue", "inventory", "night_summary", "results_summary"} <= local
    assert local <= rules
    named = set(profile["set-resources"]) | set(profile["set-threads"])
    assert named <= rules, named - rules
    assert rules - local - set(profile["set-resources"]) == set()
    # Without slurmdbd, sacct waits forever: the profile checks with squeue.
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    for rule, resources in profile["set-resources"].items():
        assert resources["mem_mb"] >= 1000 and resources["runtime"] >= 10, rule
