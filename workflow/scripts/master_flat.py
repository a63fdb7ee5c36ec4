# Snakemake adapter: combine the flats of one filter (bias and scaled dark removed). When no
# flat is usable the master is a header-only file saying why, and the lights of the filter
# are calibrated without a flat.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.calibration.flats import (
    FlatLevels,
    NoUsableFlat,
    failed_flats_table,
    make_master_flat,
)
from aifa_steps.calibration.masters import ClipParameters
from aifa_steps.calibration.masterset import Masters
from aifa_steps.core.atomic import write_table
from aifa_steps.core.failures import run_frame_step, write_failed_fits
from aifa_steps.core.frames import write_ccd
from aifa_steps.core.runlog import log_to_file
from aifa_steps.inventory.readout import ReadoutSettings

log = log_to_file(snakemake.log[0])
params = snakemake.params
band = snakemake.wildcards.filter
out = snakemake.output
clip = ClipParameters.from_config(params.cal)
levels = FlatLevels.from_config(params.cal)
readout = ReadoutSettings.from_config(params.readout)
flats = list(snakemake.input.flats)


def work():
    masters = Masters.load(
        snakemake.input.bias[0] if snakemake.input.bias else None, list(snakemake.input.darks), {}
    )
    try:
        master, frames = make_master_flat(
            flats,
            masters.bias,
            masters.darks,
            min_level=levels.flat_min_adu,
            max_level=levels.flat_max_adu,
            saturation=params.saturation,
            clip=clip,
            filter_name=band,
            bias_level=float(params.bias_level or 0.0),
            readout=readout,
            threads=snakemake.threads,
        )
    except NoUsableFlat as exc:
        write_table(exc.frames, out.frames)
        raise
    write_ccd(master, out.flat, compact=False)
    write_table(frames, out.frames)
    log.info("master flat %s from %d of %d flats", band, frames["used"].sum(), len(frames))


def failed(reason):
    write_failed_fits(out.flat, "master_flat", reason)
    try:
        Table.read(out.frames)
    except Exception:  # noqa: BLE001 - no table from the attempt: list the flats as unused
        write_table(failed_flats_table(flats, reason), out.frames)


run_frame_step("master_flat", f"flat_{band}", work, failed)
