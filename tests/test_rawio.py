"""Raw frames as cameras and archives write them: suffixes, gzip, tile compression, MEF."""

import gzip
import hashlib
import mmap

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from aifa_steps.calibration.calibrate import calibrate_frame
from aifa_steps.calibration.combine import combine_files
from aifa_steps.calibration.detector import FrameDetector
from aifa_steps.calibration.masterset import Masters
from aifa_steps.core.formats import FITS_SUFFIXES, frame_stem, is_fits_name
from aifa_steps.core.frames import read_ccd, write_ccd
from aifa_steps.inventory import table as inventory
from aifa_steps.inventory.completeness import completeness_problem
from aifa_steps.inventory.rawio import (
    clean_header,
    image_hdu_index,
    read_raw_header,
    read_raw_image,
)
from aifa_steps.inventory.rowbands import open_image_rows

SHAPE = (30, 40)
KEYS = {
    "IMAGETYP": "LIGHT",
    "EXPTIME": 5.0,
    "FILTER": "r",
    "DATE-OBS": "2025-10-14T20:00:00",
    "OBJECT": "M1",
}
CONFIG = {"headers": {}, "frame_types": {"light": ["LIGHT"]}, "filters": {"r": ["r"]}}
PLAIN = ("plain.fits", "plain.fit", "PLAIN.FTS")
VARIANTS = (
    *PLAIN,
    "gzip.fits.gz",
    "gzip.fts.gz",
    "tiles.fits.fz",
    "tiles.fz",
    "onetile.fit.fz",
    "mef.fits",
    "mef.fits.gz",
    "mef_tiles.fits.fz",
)


def _image(seed=0, shape=SHAPE):
    # uint16 values on both sides of 32768: stored as int16 with BZERO = 32768, as the camera.
    return np.random.default_rng(seed).integers(100, 60000, shape).astype(np.uint16)


def _header(**keys):
    header = fits.Header()
    for key, value in {**KEYS, **keys}.items():
        header[key] = value
    return header


def write_variant(path, data, **keys):
    """Write ``data`` (uint16) in the format the file name asks for."""
    name = path.name.lower()
    header = _header(**keys)
    if name.startswith("mef"):
        primary = fits.PrimaryHDU()
        for key in ("IMAGETYP", "EXPTIME", "DATE-OBS", "OBJECT"):
            primary.header[key] = header[key]
        primary.header["TELESCOP"] = "primary"
        ext = fits.Header({"FILTER": header["FILTER"], "TELESCOP": "extension"})
        image = (
            fits.CompImageHDU(data, ext, compression_type="RICE_1")
            if name.endswith(".fz")
            else fits.ImageHDU(data, ext, name="SCI")
        )
        hdul = fits.HDUList([primary, image])
    elif name.endswith(".fz"):
        tiles = data.shape if name.startswith("onetile") else None  # one tile, or row by row
        hdul = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header, tile_shape=tiles)])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(data, header)])
    if name.endswith(".gz"):
        plain = path.with_name(path.name + ".tmp.fits")
        hdul.writeto(plain)
        path.write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    else:
        hdul.writeto(path)
    return path


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    data = _image()
    return data, {name: write_variant(folder / name, data) for name in VARIANTS}


def _digest(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_suffixes_and_stems():
    fits_names = {
        "a.fits": "a",
        "a.FIT": "a",
        "a.fts": "a",
        "a_1.50s.fits.fz": "a_1.50s",
        "a.fit.fz": "a",
        "a.FTS.FZ": "a",
        "a.fits.gz": "a",
        "a.fit.gz": "a",
        "a.fts.gz": "a",
        "a.fz": "a",
        "x.FIT": "x",
        "night/b.v2.fits": "b.v2",
    }
    for name, stem in fits_names.items():
        assert is_fits_name(name), name
        assert frame_stem(name) == stem, name
    for name in ("notes.txt", "x.fits.bak", "x.gz", "fits", "x.fitsx", "x.tar.gz", "log.fits.txt"):
        assert not is_fits_name(name), name
    assert frame_stem("notes.txt") == "notes"
    assert ".fits.fz" in FITS_SUFFIXES and ".fts.gz" in FITS_SUFFIXES


def test_every_variant_gives_the_same_pixels_and_keywords(variants):
    data, paths = variants
    before = _digest(paths.values())
    for name, path in paths.items():
        image, header = read_raw_image(path)
        assert image.dtype == np.float32 and image.dtype.isnative, name
        assert np.array_equal(image, data.astype(np.float32)), name
        only_header, info = read_raw_header(path)
        assert info.shape == SHAPE, name
        assert info.hdu == (0 if name.lower().startswith("plain") or "gzip" in name else 1)
        assert info.compression == (
            "gzip" if name.endswith(".gz") else "tile" if name.endswith(".fz") else ""
        )
        for h in (header, only_header):
            assert (h["NAXIS"], h["NAXIS1"], h["NAXIS2"]) == (2, 40, 30), name
            for key, value in KEYS.items():
                assert h[key] == value, (name, key)
            assert "XTENSION" not in h and "ZIMAGE" not in h, name
        if name.startswith("mef"):
            assert header["TELESCOP"] == "extension"  # the extension wins
    assert _digest(paths.values()) == before  # raw files are never modified


def test_image_rows_match_the_image(variants):
    data, paths = variants
    for name, path in paths.items():
        with open_image_rows(path) as image:
            assert image.shape == SHAPE, name
            for rows in (slice(0, 7), slice(7, 30), slice(None, None, 4)):
                block = image.rows(rows)
                assert block.dtype == np.float32, name
                assert np.array_equal(block, data[rows].astype(np.float32)), (name, rows)
    with open_image_rows(paths["plain.fits"]) as image:  # uncompressed: memory-mapped
        base = image._data
        while isinstance(base, np.ndarray) and not isinstance(base, np.memmap):
            base = base.base
        assert isinstance(base, np.memmap | mmap.mmap)


def test_complete_variants_have_no_completeness_problem(variants):
    _, paths = variants
    for name, path in paths.items():
        assert completeness_problem(path) is None, name


def test_truncated_files_are_named(tmp_path):
    big = _image(1, (300, 200))
    problems = {}
    for name in ("cut.fits", "cut.fits.gz", "cut.fits.fz", "cut_header.fits.fz", "mef.fits"):
        path = write_variant(tmp_path / name, big)
        raw = path.read_bytes()
        cut = len(raw) // 2 if name != "cut_header.fits.fz" else 2880 + 1000
        path.write_bytes(raw[:cut])
        problems[name] = completeness_problem(path)
    assert problems["cut.fits"] == "truncated file (61920 of 123840 bytes)"
    assert problems["cut.fits.gz"].startswith("truncated or corrupt compressed file")
    assert problems["cut.fits.fz"].startswith("truncated file (")
    assert "header at byte 2880 is incomplete" in problems["cut_header.fits.fz"]
    assert problems["mef.fits"].startswith("truncated file (")
    # A gzip stream that is complete but holds a truncated FITS file.
    plain = write_variant(tmp_path / "short.fits", big)
    (tmp_path / "short.fits.gz").write_bytes(gzip.compress(plain.read_bytes()[:60000]))
    assert completeness_problem(tmp_path / "short.fits.gz") == (
        "truncated file (60000 of 123840 bytes, uncompressed)"
    )
    # Missing less than the final block's padding is tolerated, as before.
    (tmp_path / "short_pad.fits").write_bytes(plain.read_bytes()[:-100])
    assert completeness_problem(tmp_path / "short_pad.fits") is None


def test_inventory_reads_every_variant(variants, tmp_path):
    data, paths = variants
    for name, path in paths.items():
        row = inventory.read_frame(path, CONFIG)
        assert row["used"], (name, row["reason"])
        assert (row["naxis1"], row["naxis2"]) == (40, 30), name
        assert row["exptime"] == 5.0 and row["filter"] == "r" and row["imagetyp"] == "light"
        assert row["stem"] == frame_stem(name)
    cut = write_variant(tmp_path / "cut.fits.gz", data)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    row = inventory.read_frame(cut, CONFIG)
    assert not row["used"] and "truncated" in row["reason"]
    found = inventory.find_raw_files(paths["plain.fits"].parent)
    assert sorted(p.name for p in found) == sorted(VARIANTS)


def test_a_file_without_a_2d_image(tmp_path):
    path = tmp_path / "table.fits"
    primary = fits.PrimaryHDU()
    for key, value in KEYS.items():
        primary.header[key] = value
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.zeros(3))])
    fits.HDUList([primary, table]).writeto(path)
    with fits.open(path) as hdul, pytest.raises(ValueError, match="no 2-D image in any HDU"):
        image_hdu_index(hdul)
    with pytest.raises(ValueError, match="no 2-D image"):
        read_raw_image(path)
    header, info = read_raw_header(path)
    assert header["NAXIS"] == 0 and info.hdu == 0
    row = inventory.read_frame(path, CONFIG)
    assert not row["used"] and "not a 2-D image" in row["reason"]


def test_combination_of_mixed_formats_equals_plain(tmp_path):
    plain, mixed, other = [], [], []
    names = [("m.fits.gz", "onetile.fits.fz"), ("m.fits.fz", "mef.fits"), ("m.FIT", "mef.fits.gz")]
    for k, (name, name2) in enumerate(names):
        data = _image(10 + k, (70, 40))  # one tile of 70 rows: decompressed at once
        plain.append(write_variant(tmp_path / f"p{k}.fits", data))
        mixed.append(write_variant(tmp_path / f"{k}{name}", data))
        other.append(write_variant(tmp_path / f"{name2}".replace(".", f"{k}.", 1), data))
    with open_image_rows(mixed[1]) as tiles, open_image_rows(other[0]) as one_tile:
        assert tiles._section is not None and one_tile._section is None
    reference = combine_files(plain, memory_limit_mb=100)
    for paths in (mixed, other):
        for kwargs in ({"memory_limit_mb": 100}, {"memory_limit_mb": 0.002, "threads": 3}):
            result = combine_files(paths, **kwargs)
            assert np.array_equal(result.mean, reference.mean)
            assert np.array_equal(result.error, reference.error)
            assert np.array_equal(result.count, reference.count)


def test_clean_header_drops_storage_keywords():
    header = fits.Header()
    for key, value in {
        "XTENSION": "IMAGE",
        "PCOUNT": 0,
        "GCOUNT": 1,
        "EXTNAME": "COMPRESSED_IMAGE",
        "ZIMAGE": True,
        "ZBITPIX": 16,
        "ZNAXIS": 2,
        "ZNAXIS1": 40,
        "ZTILE1": 40,
        "ZCMPTYPE": "RICE_1",
        "ZNAME1": "BLOCKSIZE",
        "ZVAL1": 32,
        "ZQUANTIZ": "NO_DITHER",
        "BZERO": 32768,
        "BSCALE": 1,
        "BLANK": -32768,
        "CHECKSUM": "abc",
        "DATASUM": "1",
        "EXPTIME": 5.0,
        "FILTER": "r",
        "ZENITH": 10.0,  # a Z keyword that is not about compression
    }.items():
        header[key] = value
    clean = clean_header(header)
    assert list(clean.keys()) == ["EXPTIME", "FILTER", "ZENITH"]
    assert "XTENSION" in header  # the input is not changed


def test_calibrating_a_tile_compressed_light(tmp_path):
    data = _image(3)
    params = FrameDetector(gain=1.0, read_noise=5.0)
    bias = CCDData(np.full(SHAPE, 100.0, np.float32), unit=u.adu)
    bias.uncertainty = StdDevUncertainty(np.ones(SHAPE, np.float32))
    flat = CCDData(np.full(SHAPE, 0.9, np.float32), unit=u.dimensionless_unscaled)
    masters = Masters(bias=bias, flats={"r": flat})
    plain = calibrate_frame(write_variant(tmp_path / "l.fits", data), masters, "r", params)
    for name in ("l.fits.fz", "mef_l.fits.fz", "mef_l.fits.gz"):
        ccd = calibrate_frame(write_variant(tmp_path / name, data), masters, "r", params)
        assert np.array_equal(ccd.data, plain.data), name
        assert np.array_equal(ccd.uncertainty.array, plain.uncertainty.array), name
        for key, value in KEYS.items():
            assert ccd.meta[key] == value, (name, key)
        for key in ("XTENSION", "ZIMAGE", "ZCMPTYPE", "PCOUNT", "BZERO", "EXTNAME"):
            assert key not in ccd.meta, (name, key)
        out = tmp_path / f"cal_{name.split('.')[0]}.fits"
        write_ccd(ccd, out)
        back = read_ccd(out)
        assert np.array_equal(back.data, ccd.data), name
        assert back.meta["EXPTIME"] == 5.0 and back.meta["FILTER"] == "r"
        with fits.open(out) as hdul:
            assert isinstance(hdul[0], fits.PrimaryHDU) and hdul[0].header["BITPIX"] == -32
