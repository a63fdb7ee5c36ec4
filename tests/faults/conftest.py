"""Fixtures of the fault suite: the micro night, a fresh copy per case, raw checksums."""

from __future__ import annotations

import pytest

from ..helpers import require_program
from .harness import Night, checksums, make_micro_base, new_night


@pytest.fixture(scope="session")
def micro_base(tiny_night, tmp_path_factory):
    """The micro night cut from the tiny night (read-only: cases work on copies)."""
    return make_micro_base(tiny_night, tmp_path_factory.mktemp("micro"))


@pytest.fixture
def night(micro_base, tmp_path) -> Night:
    """A fresh copy of the micro night; after the case, its raw files must be unchanged
    against the state the case left them in before running the workflow."""
    require_program("solve-field")
    case = new_night(micro_base, tmp_path)
    yield case


@pytest.fixture
def raw_guard():
    """Call with a night before running the workflow; checks the raw files afterwards."""
    guarded = []

    def guard(case: Night) -> Night:
        guarded.append((case, checksums(case.raw)))
        return case

    yield guard
    for case, before in guarded:
        assert checksums(case.raw) == before, "the workflow modified raw files"


@pytest.fixture(scope="session")
def reduced_micro(micro_base, tmp_path_factory):
    """The clean micro night, reduced once (read-only): the reference for the fault cases."""
    from .harness import run

    require_program("solve-field")
    case = new_night(micro_base, tmp_path_factory.mktemp("reduced_micro"))
    before = checksums(case.raw)
    case.proc = run(case)
    assert checksums(case.raw) == before
    return case
