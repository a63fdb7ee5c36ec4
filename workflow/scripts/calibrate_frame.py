# Snakemake adapter: calibrate one science frame with whatever masters the night has. A frame
# that cannot be calibrated gets a header-only file with the reason; the night goes on.
from astropy.io import fits
from astropy.table import Table

from aifa_steps.calibration.calibrate import (
    CalibrationParameters,
    Masters,
    calibrate_frame,
    frame_statistics,
)
from aifa_steps.calibration.camera import resolve_detector
from aifa_steps.core.failures import run_frame_step, write_failed_fits
from aifa_steps.core.fitsutil import set_card
from aifa_steps.core.frames import write_ccd
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inp, params, out = snakemake.input, snakemake.params, snakemake.output[0]
frame = params.frame
band = frame["filter"]


def work():
    masters = Masters.load(
        inp.bias[0] if inp.bias else None,
        list(inp.darks),
        {band: inp.flat[0] if inp.flat else None},
        inp.bad_pixels,
    )
    gain, read_noise, gain_source, read_noise_source = resolve_detector(
        params.instrument,
        params.detector["gain"],
        params.detector["read_noise"],
        Table.read(inp.detector[0]) if inp.detector else None,
    )
    cal_params = CalibrationParameters(
        gain=gain,
        read_noise=read_noise,
        gain_source=gain_source,
        read_noise_source=read_noise_source,
        saturation=params.instrument["saturation"],
        cosmic_rays=params.cal["cosmic_rays"],
        cosmic_ray_sigma=params.cal["cosmic_ray_sigma"],
        exptime_keyword=params.exptime_keyword,
        bias_level=params.instrument.get("bias_level"),
        readout=params.readout,
    )
    ccd = calibrate_frame(inp.raw, masters, band, cal_params)
    stats = frame_statistics(ccd)
    for key, card in (
        ("sky_median", "SKYMED"),
        ("sky_std", "SKYSTD"),
        ("predicted_std", "SKYPRED"),
        ("n_saturated", "NSATUR"),
        ("n_masked", "NMASKED"),
    ):
        set_card(ccd.meta, card, stats[key], f"QC: {key.replace('_', ' ')}")
    ccd.meta["OBJECT"] = frame["object"]
    ccd.meta["TARGET"] = (frame["target"], "file-safe name of OBJECT")
    ccd.meta["FRAMEOK"] = (True, "calibrated")
    write_ccd(ccd, out)
    log.info("calibrated %s: %s", inp.raw, stats)


def failed(reason):
    header = fits.Header({"OBJECT": frame["object"], "TARGET": frame["target"]})
    header["FILTNAME"] = band
    header["EXPTIME"] = frame["exptime"]
    write_failed_fits(out, "calibration", reason, header)


run_frame_step("calibration", snakemake.wildcards.stem, work, failed)
