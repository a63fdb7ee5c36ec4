"""Groups of stars for the PSF fits: the photutils call, star models, the second fit.

`run_photometry` is one call of photutils' `~photutils.psf.PSFPhotometry` (neighbours closer
than ``group_radius_fwhm`` fitted together); `model_image` draws fitted stars; `refit_groups`
fits groups again with the models of all other stars subtracted (DAOPHOT's ALLSTAR), far-apart
groups batched into one call. Used by `aifa_steps.photometry.psf_fit.fit_psf`.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from astropy.table import Table

from aifa_steps.photometry.psf_model import FramePsf

__all__ = [
    "MAX_REFIT_GROUP",
    "batches",
    "fit_box_size",
    "forget_group_models",
    "model_image",
    "refit_groups",
    "run_photometry",
]

log = logging.getLogger(__name__)

#: Groups of more stars are not fitted a second time (the cost grows with the cube of the
#: size); their first fit stands.
MAX_REFIT_GROUP = 25


def fit_box_size(fwhm_pixels: float, radius_fwhm: float) -> int:
    """Odd side (pixels) of the box fitted around each star."""
    half = int(round(radius_fwhm * max(fwhm_pixels, 1.0)))
    return 2 * max(half, 2) + 1


def refit_groups(image, error, bad, psf, fits, table, n, params) -> int:
    """Fit groups again on the image minus every star outside them (DAOPHOT's ALLSTAR).

    Groups whose neighbours put light worth half the flux error of a member into its fitted
    box, and groups with a source found in the residual, are fitted again on the image from
    which the current models of all other stars are subtracted. Groups far enough apart
    that their stars' light does not reach each other's boxes are fitted together in one
    batch (one photutils call); the model image follows each batch. ``fits`` (positions, the
    first ``n`` rows the input stars, then the added sources) and ``table`` (the input
    stars' results) change in place.

    Returns
    -------
    int
        Groups fitted again.
    """
    from photutils.psf import SourceGrouper

    fwhm = psf.fwhm_pixels
    half = fit_box_size(fwhm, params.fit_radius_fwhm) // 2
    finite = np.isfinite(fits["x_fit"]) & np.isfinite(fits["y_fit"])
    gx = np.where(finite, fits["x_fit"], fits["x"])
    gy = np.where(finite, fits["y_fit"], fits["y"])
    ok = np.isfinite(gx) & np.isfinite(gy)
    groups = np.zeros(len(fits), int)
    if ok.sum() == 1:
        groups[ok] = 1
    elif ok.sum() > 1:
        grouper = SourceGrouper(min_separation=params.group_radius_fwhm * fwhm)
        groups[ok] = grouper(gx[ok], gy[ok])
    model = model_image(image.shape, psf, fits)
    flux_err = np.concatenate([np.asarray(table["flux_err"], float), np.zeros(len(fits) - n)])
    ny, nx = image.shape
    wanted = []  # (members, box) of the groups to fit again
    too_large = 0
    for group in np.unique(groups[ok]):
        members = np.flatnonzero(groups == group)
        i0 = max(int(np.floor(gy[members].min())) - half - 1, 0)
        i1 = min(int(np.ceil(gy[members].max())) + half + 2, ny)
        j0 = max(int(np.floor(gx[members].min())) - half - 1, 0)
        j1 = min(int(np.ceil(gx[members].max())) + half + 2, nx)
        if i1 <= i0 or j1 <= j0:
            continue
        own = model_image((i1 - i0, j1 - j0), psf, fits[members], origin=(i0, j0))
        others = model[i0:i1, j0:j1] - own
        added = bool(np.any(members >= n))
        if len(members) > MAX_REFIT_GROUP:
            too_large += 1
        elif added or _contaminated(others, gx, gy, members, flux_err, half, (i0, j0)):
            wanted.append((members, (i0, i1, j0, j1)))
    if too_large:
        log.warning(
            "%d groups of more than %d stars keep their first fit", too_large, MAX_REFIT_GROUP
        )
    reach = psf.stamp_half + 1  # a star's light reaches into boxes this far away
    for batch in batches([box for _, box in wanted], reach):
        members = np.concatenate([wanted[k][0] for k in batch])
        group_id = np.concatenate([np.full(len(wanted[k][0]), k + 1) for k in batch])
        before = model_image(image.shape, psf, fits[members])
        init = Table(
            {
                "x": fits["x"][members],
                "y": fits["y"][members],
                "flux": np.where(fits["flux_fit"][members] > 0, fits["flux_fit"][members], 1.0),
                "group_id": group_id,
            }
        )
        result, _ = run_photometry(image - (model - before), error, bad, psf, init, params)
        for name in ("x_fit", "y_fit", "flux_fit"):
            fits[name][members] = result[name]
        mine = members < n
        for name in table.colnames:
            table[name][members[mine]] = result[name][mine]
        model += model_image(image.shape, psf, fits[members]) - before
    return len(wanted)


def batches(boxes: list[tuple[int, int, int, int]], margin: int) -> list[list[int]]:
    """Split boxes (i0, i1, j0, j1) into batches whose boxes lie ``margin`` apart or more."""
    batches: list[list[int]] = []
    taken: list[list[tuple[int, int, int, int]]] = []
    for k, (i0, i1, j0, j1) in enumerate(boxes):
        grown = (i0 - margin, i1 + margin, j0 - margin, j1 + margin)
        for batch, occupied in zip(batches, taken, strict=True):
            if not any(_overlap(grown, other) for other in occupied):
                batch.append(k)
                occupied.append((i0, i1, j0, j1))
                break
        else:
            batches.append([k])
            taken.append([(i0, i1, j0, j1)])
    return batches


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _contaminated(others, gx, gy, members, flux_err, half, origin) -> bool:
    """True when the other stars put light worth half a member's flux error in its box."""
    i0, j0 = origin
    for k in members:
        if not flux_err[k] > 0:
            return True
        i, j = int(round(gy[k])) - i0, int(round(gx[k])) - j0
        box = others[max(i - half, 0) : i + half + 1, max(j - half, 0) : j + half + 1]
        if abs(float(box.sum())) > 0.5 * flux_err[k]:
            return True
    return False


def model_image(
    shape: tuple[int, int], psf: FramePsf, stars: Table, origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """An image of fitted stars (``x_fit``, ``y_fit``, ``flux_fit``).

    ``origin`` is the frame's pixel (row, column) of the image's first pixel: each star is
    drawn in the same box around it (`FramePsf.stamp_half`), cut to the image, so that
    models of a part of the frame cancel those of the whole frame exactly.
    """
    out = np.zeros(shape)
    model = psf.model.copy()
    half = psf.stamp_half
    r0, c0 = origin
    ny, nx = shape
    for xc, yc, f in zip(stars["x_fit"], stars["y_fit"], stars["flux_fit"], strict=True):
        if not (np.isfinite(xc) and np.isfinite(yc) and np.isfinite(f)):
            continue
        i0, i1 = max(int(yc) - half, r0), min(int(yc) + half + 1, r0 + ny)
        j0, j1 = max(int(xc) - half, c0), min(int(xc) + half + 1, c0 + nx)
        if i1 <= i0 or j1 <= j0:
            continue
        yy, xx = np.mgrid[i0:i1, j0:j1]
        model.x_0, model.y_0, model.flux = xc, yc, f
        out[i0 - r0 : i1 - r0, j0 - c0 : j1 - c0] += model(xx, yy)
    return out


def forget_group_models() -> None:
    """Empty photutils' cache of group models before fitting with another PSF.

    photutils 3.0 caches the model class of a group by its number of stars and the PSF's
    class only, and that class keeps a copy of the PSF it was first made with: a second frame
    fitted in the same process (the job server, a test session) would be fitted with the
    first frame's PSF in every group of two or more stars. ``tests/test_psf.py`` checks that
    a frame's fits do not depend on what was fitted before.
    """
    from photutils.psf import _components

    cache = getattr(_components, "_FLAT_MODEL_CACHE", None)
    if cache is not None:
        cache.clear()


def run_photometry(image, error, bad, psf, init, params) -> tuple[Table, object]:
    """PSFPhotometry of the stars of ``init`` (``x``, ``y``, ``flux``, maybe ``group_id``)."""
    from photutils.psf import PSFPhotometry, SourceGrouper

    forget_group_models()
    fwhm = psf.fwhm_pixels
    photometry = PSFPhotometry(
        psf.model,
        fit_box_size(fwhm, params.fit_radius_fwhm),
        grouper=SourceGrouper(min_separation=params.group_radius_fwhm * fwhm),
        xy_bounds=params.max_shift_pixels,
        aperture_radius=max(fwhm, 1.5),
        group_warning_threshold=100,
    )
    with warnings.catch_warnings():
        # Per-source fit warnings end up in the flags column.
        warnings.simplefilter("ignore")
        result = photometry(image, mask=bad, error=error, init_params=init)
    order = np.argsort(np.asarray(result["id"]))
    result = result[order]
    keep = (
        "x_fit",
        "y_fit",
        "flux_fit",
        "flux_err",
        "qfit",
        "cfit",
        "reduced_chi2",
        "group_size",
        "flags",
    )
    return Table({k: np.asarray(result[k]) for k in keep}), photometry
