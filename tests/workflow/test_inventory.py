"""The run on the tiny night: the simulated raw night and its inventory."""

import pytest

pytestmark = pytest.mark.slow


def test_the_workflow_simulates_the_night(tiny_run):
    assert (tiny_run.raw / "truth" / "frames.ecsv").exists()
    assert (tiny_run.work / "logs" / "simulate_night.log").exists()


def test_the_inventory_lists_every_raw_file_and_why_some_are_left_out(tiny_run):
    inventory = tiny_run.inventory
    assert len(inventory) == len(tiny_run.frames)
    assert sorted(inventory["reason"][~inventory["used"]]) == [
        "missing keyword FILTER/FILTERS/FILTNAME/FILTER1/FILT",  # the keywords tried
        "truncated file (290880 of 581760 bytes)",
    ]
    assert (tiny_run.work / "logs" / "inventory.log").exists()
