"""The fast resampling against reproject_interp on distorted (TAN-SIP) frames."""

import numpy as np
import pytest
from reproject import reproject_interp

from aifa_steps.products.resample import expand_grid, linear_weights, pixel_mapping, resample
from aifa_steps.simulate.optics import make_wcs


def distorted_pair(shape=(700, 1000)):
    """Two overlapping frames with the simulator's SIP distortion (scaled up 50 x, so the
    mapping bends by several pixels across the frame), offset and turned."""
    a = make_wcs(shape, 150.0, 20.0, 0.607, 0.6, k3=5e-8, k2=(1e-7, -7.5e-8))
    b = make_wcs(shape, 150.004, 20.003, 0.607, 1.1, k3=5e-8, k2=(1e-7, -7.5e-8))
    return a, b


def test_pixel_mapping_matches_the_exact_transformation():
    wcs_in, wcs_out = distorted_pair()
    y, x = pixel_mapping(wcs_in, wcs_out, (700, 1000))
    rows, cols = np.mgrid[0:700:7, 0:1000:9]
    exact_x, exact_y = wcs_in.world_to_pixel_values(*wcs_out.pixel_to_world_values(cols, rows))
    assert np.max(np.abs(x[rows, cols] - exact_x)) < 2e-3
    assert np.max(np.abs(y[rows, cols] - exact_y)) < 2e-3
    # The mapping really is curved: the best affine transformation is off by pixels.
    design = np.column_stack([np.ones(rows.size), cols.ravel(), rows.ravel()])
    coef, *_ = np.linalg.lstsq(design, exact_x.ravel(), rcond=None)
    assert np.max(np.abs(design @ coef - exact_x.ravel())) > 0.5


def test_resample_agrees_with_reproject_interp():
    wcs_in, wcs_out = distorted_pair()
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:700, :1000]
    image = 100 + 0.05 * xx + rng.normal(0, 1, (700, 1000))
    for _ in range(60):  # stars of 2.5 px FWHM
        x0, y0 = rng.uniform(0, 1000), rng.uniform(0, 700)
        image += 5000 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.06**2))
    image[300, 400] = np.nan
    fast = resample(image, wcs_in, wcs_out, (700, 1000))
    exact, footprint = reproject_interp(
        (image, wcs_in), wcs_out, shape_out=(700, 1000), order="bilinear"
    )
    both = np.isfinite(fast) & np.isfinite(exact) & (footprint > 0)
    assert both.mean() > 0.9
    # Differences come only from the 1e-3 px mapping error times the local gradient.
    assert np.max(np.abs(fast[both] - exact[both])) < 0.01 * np.max(image[np.isfinite(image)])
    assert np.median(np.abs(fast[both] - exact[both])) < 1e-3
    # Off the input frame and around the bad pixel: NaN, as reproject gives.
    assert np.isnan(fast).sum() == pytest.approx(np.isnan(exact).sum(), rel=0.05)
    with pytest.raises(ValueError, match="order"):
        resample(image, wcs_in, wcs_out, (700, 1000), order=3)


def test_linear_weights_interpolate_and_extrapolate():
    nodes = np.array([0.0, 10.0, 30.0])
    weights = linear_weights(np.array([-5.0, 0.0, 5.0, 20.0, 40.0]), nodes)
    values = weights @ (2.0 * nodes + 1.0)  # a straight line is reproduced everywhere
    assert np.allclose(values, 2.0 * np.array([-5.0, 0.0, 5.0, 20.0, 40.0]) + 1.0)
    assert np.allclose(weights.sum(axis=1), 1.0)
    assert np.allclose(linear_weights(np.arange(3.0), np.array([4.0])), 1.0)


def test_expand_grid_equals_the_separable_matrix_products():
    rng = np.random.default_rng(5)
    nodes_y, nodes_x = np.array([0.0, 7.5, 20.0, 29.0]), np.array([3.0, 16.0, 40.0])
    values = rng.normal(100.0, 5.0, (4, 3)).astype(np.float32)
    shape = (30, 45)
    expected = (
        linear_weights(np.arange(30), nodes_y) @ values @ linear_weights(np.arange(45), nodes_x).T
    )
    image = expand_grid(values, nodes_y, nodes_x, shape)
    assert image.dtype == np.float32 and image.shape == shape
    assert np.allclose(image, expected, rtol=1e-6)
    # A plane is reproduced everywhere, beyond the outer nodes too.
    yy, xx = np.meshgrid(nodes_y, nodes_x, indexing="ij")
    plane = expand_grid(0.5 * yy - 0.25 * xx + 3.0, nodes_y, nodes_x, shape)
    y, x = np.mgrid[:30, :45]
    assert np.allclose(plane, 0.5 * y - 0.25 * x + 3.0, atol=1e-4)
    # A single node in one direction: constant along it.
    flat = expand_grid(values[:1], np.array([10.0]), nodes_x, shape)
    assert np.allclose(flat, flat[0])
