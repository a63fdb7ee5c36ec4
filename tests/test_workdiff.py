"""Comparison of two work folders (aifa_steps.core.workdiff): equal products pass, and every
kind of difference is named."""

from __future__ import annotations

import json

import numpy as np
from astropy.io import fits
from astropy.table import Table

from aifa_steps.core.workdiff import compare_work_dirs, product_files


def _work(folder, image, value=1.5, extra=False):
    (folder / "photometry").mkdir(parents=True)
    (folder / "logs").mkdir()
    table = Table({"flux": [value, np.nan], "file": [str(folder / "a.fits"), "b"]})
    table.write(folder / "photometry" / "t.ecsv")
    hdu = fits.PrimaryHDU(image)
    hdu.header["CRVAL1"] = 10.0
    hdu.header["DATE"] = str(folder)  # headers other than the WCS are not compared
    hdu.writeto(folder / "frame.fits")
    (folder / "summary.json").write_text(json.dumps({"work": str(folder), "depth": value}))
    (folder / "empty.wcs").write_bytes(b"")
    (folder / "logs" / "x.ecsv").write_text("not a table")  # logs are skipped
    if extra:
        (folder / "more.json").write_text("{}")


def test_equal_products_in_differently_named_folders(tmp_path):
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    image[0, 0] = np.nan
    _work(tmp_path / "one", image)
    _work(tmp_path / "two", image.copy())
    assert product_files(tmp_path / "one") == [
        "empty.wcs",
        "frame.fits",
        "photometry/t.ecsv",
        "summary.json",
    ]
    assert compare_work_dirs(tmp_path / "one", tmp_path / "two") == []


def test_every_difference_is_named(tmp_path):
    image = np.zeros((3, 4), np.float32)
    _work(tmp_path / "one", image)
    changed = image.copy()
    changed[1, 2] = 1e-6
    _work(tmp_path / "two", changed, value=1.5000001, extra=True)
    with fits.open(tmp_path / "two" / "frame.fits", mode="update") as hdul:
        hdul[0].header["CRVAL1"] = 10.001
    (tmp_path / "two" / "empty.wcs").write_bytes(b"x" * 10)
    found = compare_work_dirs(tmp_path / "one", tmp_path / "two")
    assert f"more.json: only in {tmp_path / 'two'}" in found
    assert "photometry/t.ecsv: column flux differs" in found
    assert "summary.json: contents differ" in found
    assert "frame.fits: HDU 0 (PRIMARY): 1 pixels differ" in found
    assert any(f.startswith("frame.fits: HDU 0 (PRIMARY): CRVAL1") for f in found)
    assert "empty.wcs: 0 bytes against 10" in found
    assert len(found) == 6
