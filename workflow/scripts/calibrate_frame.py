# Snakemake adapter: calibrate one science frame with whatever masters the night has. A frame
# that cannot be calibrated gets a header-only file with the reason; the night goes on.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.calibration.calibrate import (
    CalibrationParameters,
    calibrate_light,
    failed_light_header,
)
from aifa_steps.calibration.detector import frame_detector
from aifa_steps.calibration.masterset import Masters
from aifa_steps.core.failures import run_frame_step, write_failed_fits
from aifa_steps.core.frames import write_ccd
from aifa_steps.core.runlog import log_to_file
from aifa_steps.inventory.readout import ReadoutSettings

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
    detector = frame_detector(
        params.instrument,
        params.detector,
        Table.read(inp.detector[0]) if inp.detector else None,
    )
    ccd, stats = calibrate_light(
        inp.raw,
        masters,
        frame,
        detector,
        params=CalibrationParameters.from_config(params.cal),
        readout=ReadoutSettings.from_config(params.readout),
        exptime_keyword=params.exptime_keyword,
    )
    write_ccd(ccd, out)
    log.info("calibrated %s: %s", inp.raw, stats)


def failed(reason):
    write_failed_fits(out, "calibration", reason, failed_light_header(frame))


run_frame_step("calibration", snakemake.wildcards.stem, work, failed)
