"""Reference catalogues: local files with column mapping, and the VizieR path with its cache."""

import numpy as np
import pytest
from astropy.table import Table
from astroquery.utils import TableList

from aifa_steps.photometry import refcat
from aifa_steps.photometry.refcat import fetch_refcat2, load_reference_catalogue, select_around


def _refcat2_like(n=50, ra=303.38, dec=65.16, seed=0):
    rng = np.random.default_rng(seed)
    table = Table()
    table["RA_ICRS"] = ra + rng.uniform(-0.1, 0.1, n) / np.cos(np.radians(dec))
    table["DE_ICRS"] = dec + rng.uniform(-0.1, 0.1, n)
    for band in "gri":
        table[f"{band}mag"] = rng.uniform(12, 19, n)
        table[f"e_{band}mag"] = np.full(n, 0.01)
    table["pmRA"] = np.zeros(n)  # an extra column VizieR would also send
    return table


@pytest.fixture
def saved_response(tmp_path):
    """A VizieR answer saved as a VOTable by the test, served instead of the network."""
    path = tmp_path / "vizier_response.xml"
    _refcat2_like().write(path, format="votable")
    return path


def test_vizier_query_is_cached_and_reused(tmp_path, saved_response, monkeypatch):
    calls = []

    def fake_query_region(self, coordinates, radius, catalog):
        calls.append(
            (
                coordinates.ra.deg,
                coordinates.dec.deg,
                radius.to_value("deg"),
                catalog,
                self.columns,
                self.ROW_LIMIT,
            )
        )
        return TableList({catalog: Table.read(saved_response, format="votable")})

    monkeypatch.setattr("astroquery.vizier.VizierClass.query_region", fake_query_region)
    cache = tmp_path / "cache" / "Qatar-1.ecsv"
    table = fetch_refcat2(303.38, 65.16, 0.2, cache)
    assert len(calls) == 1
    ra, dec, radius, catalog, columns, row_limit = calls[0]
    assert catalog == refcat.REFCAT2_VIZIER and radius == pytest.approx(0.2)
    assert set(refcat.REFCAT_COLUMNS) <= set(columns) and row_limit == -1
    assert table.colnames == list(refcat.REFCAT_COLUMNS)
    assert cache.exists() and len(Table.read(cache)) == 50

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("astroquery.vizier.VizierClass.query_region", no_network)
    again = fetch_refcat2(303.38, 65.16, 0.2, cache)
    assert len(again) == 50  # served from the cache, no network needed


def test_no_network_and_no_cache_is_a_clear_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("astroquery.vizier.VizierClass.query_region", no_network)
    with pytest.raises(ConnectionError, match="cannot query VizieR.*no cache"):
        fetch_refcat2(303.38, 65.16, 0.2, tmp_path / "missing.ecsv")


def test_empty_answer_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr("astroquery.vizier.VizierClass.query_region", lambda *a, **k: TableList({}))
    with pytest.raises(LookupError, match="no stars"):
        fetch_refcat2(0.0, 0.0, 0.1, tmp_path / "c.ecsv")


def test_local_file_with_column_mapping_and_cone(tmp_path):
    table = _refcat2_like()
    table.rename_columns(["RA_ICRS", "DE_ICRS", "rmag"], ["ra", "dec", "r_psf"])
    path = tmp_path / "mine.csv"
    table.write(path, format="ascii.csv")
    loaded = load_reference_catalogue(path, {"RA_ICRS": "ra", "DE_ICRS": "dec", "rmag": "r_psf"})
    assert {"RA_ICRS", "DE_ICRS", "rmag"} <= set(loaded.colnames)
    near = select_around(loaded, 303.38, 65.16, 0.05)
    assert 0 < len(near) < len(loaded)
    with pytest.raises(KeyError, match="RA_ICRS"):
        load_reference_catalogue(path)
    with pytest.raises(FileNotFoundError):
        load_reference_catalogue(tmp_path / "none.ecsv")


def test_reference_extract_falls_back_and_never_stops_the_night(tmp_path, monkeypatch):
    from aifa_steps.photometry.refcat import reference_extract

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("astroquery.vizier.VizierClass.query_region", no_network)
    local = Table(
        {
            "RA_ICRS": [303.38, 303.39, 310.0],
            "DE_ICRS": [65.16, 65.17, 65.16],
            "rmag": [12.0, 13.0, 14.0],
        }
    )
    local.write(tmp_path / "local.ecsv")
    cfg = {"source": "vizier", "radius_deg": 0.2, "path": str(tmp_path / "local.ecsv")}
    table, source, problem = reference_extract(cfg, 303.38, 65.16, tmp_path / "cache.ecsv")
    assert len(table) == 2 and source.endswith("local.ecsv")
    assert "cannot query VizieR" in problem and "local catalogue" in problem
    table, source, problem = reference_extract(
        {"source": "vizier", "radius_deg": 0.2}, 303.38, 65.16, tmp_path / "cache.ecsv"
    )
    assert len(table) == 0 and "RA_ICRS" in table.colnames
    assert "no cache" in problem
    table, source, problem = reference_extract(
        {"source": "file", "radius_deg": 0.2, "path": str(tmp_path / "local.ecsv")},
        303.38,
        65.16,
        tmp_path / "unused.ecsv",
    )
    assert len(table) == 2 and problem == ""


def test_target_catalogue_from_settings_records_its_source(tmp_path):
    from aifa_steps.photometry.refcat import RefcatSettings, target_catalogue

    Table({"ra": [303.38, 310.0], "dec": [65.16, 65.16], "rmag": [12.0, 14.0]}).write(
        tmp_path / "local.ecsv"
    )
    settings = RefcatSettings.from_config(
        {
            "source": "file",
            "path": str(tmp_path / "local.ecsv"),
            "columns": {"RA_ICRS": "ra", "DE_ICRS": "dec"},
            "radius_deg": 0.2,
            "other_key": 1,
        }
    )
    assert settings.cache_file("M 31", tmp_path) == tmp_path / "M 31_0.2deg.ecsv"
    assert RefcatSettings(cache_dir="c").cache_file("T", tmp_path).parent.name == "c"
    table, problem = target_catalogue(settings, "T", 303.38, 65.16, tmp_path)
    assert len(table) == 1 and problem == "" and "problem" not in table.meta
    assert table.meta["source"].endswith("local.ecsv")
    assert table.meta["centre"] == [303.38, 65.16]
