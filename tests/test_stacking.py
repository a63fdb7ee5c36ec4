"""Stacks and colour images against the simulator's truth."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.wcs import WCS

from aifa_steps.products.colour_image import (
    ColourImageSettings,
    colour_composite,
    stacks_by_filter,
    write_colour_image,
)
from aifa_steps.products.stack_files import make_stack, select_stack_frames, write_stack
from aifa_steps.products.stacking import (
    BackgroundSettings,
    FrameCube,
    StackFrame,
    StackParameters,
    photometric_scales,
    stack_frames,
)


def shifted_grid(wcs: WCS, dx: float, dy: float, rotation_deg: float) -> WCS:
    """A grid offset by a fraction of a pixel and turned slightly against ``wcs`` (TAN only)."""
    out = WCS(naxis=2)
    out.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    out.wcs.crval = wcs.wcs.crval
    out.wcs.crpix = wcs.wcs.crpix + np.array([dx, dy])
    turn = np.radians(rotation_deg)
    rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    out.wcs.cd = rot @ wcs.pixel_scale_matrix
    return out


def isolated_truth(catalogue: Table, wcs: WCS, shape, band: str, bright=11.5, faint=15.0):
    """Pixel positions of isolated unsaturated true stars on a grid, well inside it."""
    x, y = wcs.world_to_pixel_values(catalogue["ra"], catalogue["dec"])
    mags = np.asarray(catalogue[band], float)
    ny, nx = shape
    inside = (x > 40) & (x < nx - 40) & (y > 40) & (y < ny - 40)
    chosen = np.flatnonzero(inside & (mags > bright) & (mags < faint))
    keep = []
    for k in chosen:
        near = np.hypot(x - x[k], y - y[k]) < 15.0
        if np.count_nonzero(near & (mags < mags[k] + 4.0)) == 1:
            keep.append(k)
    keep = np.array(keep)
    return x[keep], y[keep], mags[keep]


@pytest.fixture(scope="module")
def ngc7789_r_stack(demo_frames):
    """The two dithered r frames of NGC 7789 stacked onto a grid shifted by (0.37, -0.61) px
    and turned by 0.2 degrees against the first: every pixel is interpolated."""
    frames, catalogue, _ = demo_frames
    items = [(p, ccd) for p, ccd, _ in frames["NGC7789"] if p.filter == "r"]
    (plan0, ccd0), (plan1, ccd1) = items[:2]
    dither = np.subtract(
        ccd0.wcs.world_to_pixel_values(plan1.ra_axis, plan1.dec_axis),
        ccd0.wcs.world_to_pixel_values(plan0.ra_axis, plan0.dec_axis),
    )
    assert np.hypot(*dither) > 5.0  # the frames really are dithered
    grid = shifted_grid(ccd0.wcs, 0.37, -0.61, 0.2)
    stack = stack_frames(
        [StackFrame(p.stem, ccd, p.exptime, p.zeropoint) for p, ccd in items],
        grid,
        ccd0.shape,
    )
    return stack, catalogue, items


def test_stack_stars_sit_on_catalogue_positions(ngc7789_r_stack):
    from photutils.centroids import centroid_2dg, centroid_sources

    stack, catalogue, _ = ngc7789_r_stack
    x, y, _ = isolated_truth(catalogue, stack.wcs, stack.image.shape, "r")
    assert len(x) > 50
    cx, cy = centroid_sources(
        np.nan_to_num(stack.image), x, y, box_size=11, centroid_func=centroid_2dg
    )
    offset = np.hypot(cx - x, cy - y)
    assert np.median(offset) < 0.05
    assert np.percentile(offset, 90) < 0.1
    assert abs(np.mean(cx - x)) < 0.02 and abs(np.mean(cy - y)) < 0.02


def test_stack_is_on_one_photometric_scale(ngc7789_r_stack):
    """MAGZPT with a large aperture gives the true magnitudes; the exposure map adds up."""
    from photutils.aperture import CircularAperture, aperture_photometry

    stack, catalogue, items = ngc7789_r_stack
    x, y, mags = isolated_truth(catalogue, stack.wcs, stack.image.shape, "r", faint=14.0)
    sums = aperture_photometry(np.nan_to_num(stack.image), CircularAperture(np.c_[x, y], r=16.0))[
        "aperture_sum"
    ]
    diff = stack.zeropoint - 2.5 * np.log10(np.asarray(sums)) - mags
    # 16 px hold about 98-99 % of a star's light (Moffat wings), plus faint neighbours.
    assert abs(np.median(diff)) < 0.03
    per_second = [p.zeropoint - 2.5 * np.log10(p.exptime) for p, _ in items]
    assert stack.zeropoint == pytest.approx(np.median(per_second))
    total = sum(p.exptime for p, _ in items)
    assert np.median(stack.exposure) == pytest.approx(total)
    assert stack.exposure.max() == pytest.approx(total)
    assert stack.exposure.min() < total  # the dither leaves edges with one frame


def test_write_stack_keeps_wcs_and_maps(ngc7789_r_stack, tmp_path):
    stack, _, items = ngc7789_r_stack
    path = tmp_path / "stack_r.fits"
    write_stack(stack, path, {"OBJECT": "NGC7789", "FILTER": "r"}, [p.file for p, _ in items])
    with fits.open(path) as hdul:
        header = hdul[0].header
        assert header["FILTER"] == "r" and header["NCOMBINE"] == 2
        assert header["MAGZPT"] == pytest.approx(stack.zeropoint, abs=1e-5)
        assert header["BUNIT"] == "adu/s"
        assert any("scale" in str(h) for h in header["HISTORY"])
        assert hdul["EXPOSURE"].data.shape == stack.image.shape
        ra, dec = WCS(header).pixel_to_world_values(100.0, 200.0)
        assert np.allclose((ra, dec), stack.wcs.pixel_to_world_values(100.0, 200.0))


def gaussian_frame(shape, wcs, positions, flux, seed, sky=100.0):
    """A small frame with Gaussian stars (FWHM 3 px) at sky positions, noise and a sky level."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, sky)
    x, y = wcs.world_to_pixel_values(*positions)
    sigma = 3.0 / 2.3548
    for xi, yi in zip(x, y, strict=True):
        image += (
            flux
            / (2 * np.pi * sigma**2)
            * np.exp(-((xx - xi) ** 2 + (yy - yi) ** 2) / (2 * sigma**2))
        )
    image += rng.normal(0.0, 3.0, shape)
    ccd = CCDData(image.astype(np.float32), unit="adu", wcs=wcs)
    ccd.flags = np.zeros(shape, np.uint8)
    return ccd


def small_wcs(dx=0.0, dy=0.0):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 20.0]
    w.wcs.crpix = [60.0 + dx, 50.0 + dy]
    w.wcs.cdelt = [-0.6 / 3600, 0.6 / 3600]
    return w


def test_clipping_removes_a_satellite_trail_and_masked_pixels_are_skipped(tmp_path):
    shape = (100, 120)
    base = small_wcs()
    rng = np.random.default_rng(5)
    positions = base.pixel_to_world_values(rng.uniform(20, 100, 12), rng.uniform(20, 80, 12))
    frames = []
    for k, (dx, dy) in enumerate([(0, 0), (1.3, -0.8), (-2.1, 0.6), (0.4, 1.7), (-0.9, -1.4)]):
        ccd = gaussian_frame(shape, small_wcs(dx, dy), positions, 5000.0, seed=k)
        frames.append(StackFrame(f"f{k}", ccd, 10.0))
    frames[2].ccd.data[40:43, :] += 3000.0  # a satellite trail in one frame
    frames[3].ccd.data[70, 30] = 1e6  # a hot pixel, flagged
    frames[3].ccd.flags[70, 30] = 1
    background = BackgroundSettings(background_box=32)
    stack = stack_frames(frames, base, shape, background=background)
    assert np.isnan(stack.zeropoint)
    clean = stack_frames(
        [f for k, f in enumerate(frames) if k != 2], base, shape, background=background
    )
    trail = (slice(41, 42), slice(10, 110))
    # Without clipping the trail would add 3000 / 10 s / 5 frames = 60 ADU/s.
    assert np.nanmax(np.abs(stack.image[trail] - clean.image[trail])) < 10.0
    assert np.all(stack.count[trail] == 4)
    assert abs(stack.image[70, 30]) < 20.0  # the flagged hot pixel never enters
    assert stack.exposure[5:95, 5:115].min() >= 30.0
    # Frames beyond frames_in_memory_mb go through a scratch file, band by band: same stack.
    spilled = stack_frames(
        frames,
        base,
        shape,
        StackParameters(frames_in_memory_mb=0.0, memory_limit_mb=0.2),  # bands of 17 rows
        background,
        scratch_dir=tmp_path,
    )
    assert np.array_equal(spilled.image, stack.image, equal_nan=True)
    assert np.array_equal(spilled.count, stack.count)
    assert list(tmp_path.iterdir()) == []  # the scratch file is gone


def test_frame_cube_reads_back_bands_from_its_scratch_file(tmp_path):
    frames = np.arange(3 * 7 * 5, dtype=np.float32).reshape(3, 7, 5)
    cube = FrameCube(3, (7, 5), in_memory=False, scratch_dir=tmp_path)
    for k in (2, 0, 1):
        cube.put(k, frames[k])
    assert len(list(tmp_path.iterdir())) == 0  # unnamed: nothing left behind by a crash
    assert np.array_equal(cube.band(slice(2, 6)), frames[:, 2:6])
    assert np.array_equal(cube.band(slice(6, 7)), frames[:, 6:7])
    cube.close()


def test_make_stack_from_files_records_its_grid_and_settings(tmp_path):
    from aifa_steps.core.frames import solution_hdu, write_ccd

    shape = (100, 120)
    base = small_wcs()
    rng = np.random.default_rng(7)
    positions = base.pixel_to_world_values(rng.uniform(20, 100, 8), rng.uniform(20, 80, 8))
    paths = []
    for k, (dx, dy) in enumerate([(0, 0), (1.3, -0.8), (-2.1, 0.6)]):
        ccd = gaussian_frame(shape, small_wcs(dx, dy), positions, 5000.0, seed=k)
        frame, solution = tmp_path / f"n_{k}.fits", tmp_path / f"n_{k}_solution.fits"
        write_ccd(CCDData(ccd.data, unit=ccd.unit, mask=ccd.mask, flags=ccd.flags), frame)
        header = ccd.meta.copy()
        header.update(ccd.wcs.to_header(relax=True))
        solution_hdu(header, ccd.shape, frame).writeto(solution)
        paths.append((frame, solution))  # the pixels and the header-only solution
    zeropoints = Table(
        {"stem": ["n_0", "n_1"], "aperture_arcsec": [4.0, 4.0], "zeropoint": [25.0, 25.2]}
    )
    params = StackParameters.from_config({"max_iterations": 2, "sigma": 3, "colour_q": 3.0})
    assert params.keys() == (
        "sigma",
        "amplitude_fraction",
        "max_iterations",
        "max_frames",
        "interpolation",
        "memory_limit_mb",
        "frames_in_memory_mb",
    )
    assert isinstance(params.sigma, float) and params == StackParameters(max_iterations=2)
    background = BackgroundSettings.from_config({"background_box": 32, "apertures": [4]})
    out = tmp_path / "stack_r.fits"
    stack, message = make_stack(
        paths,
        [("n_0", 10.0), ("n_1", 10.0), ("n_2", 20.0)],
        zeropoints,
        4.0,
        paths[0][1],
        out,
        {"OBJECT": "F1", "FILTER": "r"},
        params,
        background,
    )
    assert stack.stems == ["n_0", "n_1"]  # n_2 has no zero point
    assert message.startswith("F1 r: 2 of 3 frames, MAGZPT")
    header = fits.getheader(out)
    assert header["GRIDFRAM"] == "n_0_solution" and header["NCOMBINE"] == 2
    assert header["NAXIS1"] == 120 and header["NAXIS2"] == 100  # the grid's IMAGEW, IMAGEH
    history = "\n".join(str(h) for h in header["HISTORY"])
    assert "max_iterations" in history and "background_box" in history and "32" in history


def test_photometric_scales():
    scales, zp = photometric_scales([10.0, 20.0, 10.0], [25.0, 25.9, np.nan])
    assert zp == pytest.approx(np.median([25.0 - 2.5, 25.9 - 2.5 * np.log10(20.0)]))
    # A star of magnitude 20 gets the same scaled flux in both frames.
    flux = [10 ** (0.4 * (25.0 - 20)), 10 ** (0.4 * (25.9 - 20))]
    assert flux[0] * scales[0] == pytest.approx(flux[1] * scales[1])
    assert flux[0] * scales[0] == pytest.approx(10 ** (0.4 * (zp - 20)))
    assert np.isnan(scales[2])
    scales, zp = photometric_scales([10.0, 20.0], [np.nan, np.nan])
    assert np.isnan(zp) and np.allclose(scales, [0.1, 0.05])
    with pytest.raises(ValueError, match="positive"):
        photometric_scales([0.0], [25.0])


def test_stack_needs_frames_with_wcs():
    ccd = CCDData(np.zeros((20, 20), np.float32), unit="adu")
    with pytest.raises(ValueError, match="bad_frame: no WCS"):
        stack_frames([StackFrame("bad_frame", ccd, 10.0)], small_wcs(), (20, 20))
    with pytest.raises(ValueError, match="no frames"):
        stack_frames([], small_wcs(), (20, 20))


def test_select_stack_frames_prefers_good_seeing():
    frames = Table(
        {
            "stem": ["a", "b", "c", "d", "e"],
            "filter": ["r", "r", "r", "g", "r"],
            "fwhm_arcsec": [2.5, 1.8, np.nan, 1.0, 2.0],
        }
    )
    assert list(select_stack_frames(frames, "r", 2)["stem"]) == ["b", "e"]
    assert list(select_stack_frames(frames, "r", 10)["stem"]) == ["a", "b", "c", "e"]
    assert len(select_stack_frames(frames, "Ha", 10)) == 0


def test_colour_composite_shows_star_colours(tmp_path):
    shape = (60, 80)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rng = np.random.default_rng(1)

    def star(x, y, flux):
        return flux * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0)

    bands = {}
    # A red star at (20, 15) and a blue one at (60, 45), equal zero points.
    for band, red, blue in (("g", 100.0, 2000.0), ("r", 500.0, 800.0), ("i", 2000.0, 300.0)):
        image = star(20, 15, red) + star(60, 45, blue) + rng.normal(0, 1.0, shape)
        bands[band] = (image.astype(np.float32), 25.0)
    rgb = colour_composite(bands)
    assert rgb.shape == (*shape, 3) and rgb.dtype == np.uint8
    red_star = rgb[shape[0] - 1 - 15, 20].astype(int)  # row 0 of the picture is the top
    blue_star = rgb[shape[0] - 1 - 45, 60].astype(int)
    assert red_star[0] > red_star[2] + 30
    assert blue_star[2] > blue_star[0] + 30
    # One filter: a grey picture.
    grey = colour_composite({"r": bands["r"]})
    assert np.array_equal(grey[..., 0], grey[..., 2])
    with pytest.raises(ValueError, match="none of the filters"):
        colour_composite({"Ha": bands["r"]})
    # From files, as the workflow does.
    paths = {}
    for band, (image, zp) in bands.items():
        paths[band] = tmp_path / f"stack_{band}.fits"
        header = fits.Header({"MAGZPT": zp})
        fits.PrimaryHDU(image, header).writeto(paths[band])
    out = tmp_path / "color.png"
    write_colour_image(paths, out)
    assert out.stat().st_size > 1000
    assert stacks_by_filter(paths.values()) == paths
    settings = ColourImageSettings.from_config({"colour_q": 3.0, "sigma": 2.0})
    assert settings == ColourImageSettings(colour_stretch_sigma=40.0, colour_q=3.0)
    softer = write_colour_image(paths, tmp_path / "soft.png", settings=settings)
    assert softer.shape == (*bands["r"][0].shape, 3)


def test_colour_composite_with_one_or_two_filters():
    rng = np.random.default_rng(2)
    image = rng.normal(0, 1.0, (30, 40)).astype(np.float32)
    image[10:13, 10:13] += 500.0
    grey = colour_composite({"Ha": (image, np.nan)}, order=["Ha"])
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    pair = colour_composite({"g": (image, 25.0), "i": (2 * image, 25.0)}, order=["i", "g"])
    star = pair[30 - 1 - 11, 11].astype(int)
    assert star[0] >= star[1] >= star[2] and star[0] > star[2]
