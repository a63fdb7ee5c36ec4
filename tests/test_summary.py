"""The night summary step: status table, verdict, warnings and page in one call."""

from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.summary.status import read_verdict, summarise_night


def _inventory(rows):
    names = ("path", "stem", "imagetyp", "object", "target", "filter", "used", "reason")
    return Table(rows=rows, names=names, dtype=(str, str, str, str, str, str, bool, str))


def _astrometry(rows):
    return Table(rows=rows, names=("stem", "solved", "step", "reason"), dtype=(str, bool, str, str))


def test_summarise_night_keeps_verdict_warnings_and_notes_in_the_table(tmp_path):
    inventory = _inventory(
        [
            ("L/a.fits", "a", "light", "Q b", "Q_b", "r", True, ""),
            ("L/b.fits", "b", "light", "Q b", "Q_b", "r", True, ""),
            ("L/c.fits", "c", "light", "Q b", "Q_b", "r", False, "missing keyword FILTER"),
        ]
    )
    astrometry = _astrometry([("a", True, "", ""), ("b", False, "astrometry", "no solution")])
    status, page = summarise_night(
        inventory, astrometry, None, [], {}, {"WASP-12": {"kind": "field", "ra": 1, "dec": 2}}
    )
    assert list(status["status"]) == ["used", "failed", "excluded"]
    assert status.meta["fatal"] is False
    assert status.meta["verdict"].startswith("Night summary: 1 of 3 light frames reduced")
    assert "targets.WASP-12 has no usable light frame" in status.meta["warnings"][0]
    assert status.meta["photometry"] == []
    for text in ("no solution", "missing keyword FILTER", "targets.WASP-12", "flat r: none"):
        assert text in page
    write_table(status, tmp_path / "night_status.ecsv")
    assert read_verdict(tmp_path / "night_status.ecsv") == (False, status.meta["verdict"])
    assert read_verdict(tmp_path / "missing.ecsv") == (False, "")


def test_a_night_with_nothing_solved_is_fatal():
    inventory = _inventory([("L/a.fits", "a", "light", "Q", "Q", "r", True, "")])
    astrometry = _astrometry([("a", False, "astrometry", "no solution")])
    status, page = summarise_night(inventory, astrometry, None, [], {}, None)
    assert status.meta["fatal"] is True and status.meta["verdict"].startswith("Nothing solved")
    assert status.meta["warnings"] == [] and "Nothing solved" in page
