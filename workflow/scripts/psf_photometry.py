# Snakemake adapter: PSF photometry of one solved frame. A frame whose PSF photometry fails
# gets a table without rows that says why; its catalogue magnitudes then come from the others.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.core.failures import run_frame_step
from aifa_steps.core.frames import read_solved
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.frame import photometry_failed
from aifa_steps.photometry.psf_frame import (
    failed_psf_photometry,
    psf_frame_photometry,
    psf_summary,
)
from aifa_steps.photometry.settings import (
    PhotometryParameters,
    PsfParameters,
    catalogue_aperture_key,
)

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output[0]
stem = snakemake.wildcards.stem
apertures = Table.read(inp.apertures)


def work():
    reason = photometry_failed(apertures)
    if reason:
        write_table(failed_psf_photometry(stem, f"aperture photometry: {reason}"), out)
        log.warning("%s: no PSF photometry, the aperture photometry failed (%s)", stem, reason)
        return
    table = psf_frame_photometry(
        read_solved(inp.frame, inp.solution),
        Table.read(inp.reference),
        apertures,
        PsfParameters.from_config(snakemake.params.psf),
        PhotometryParameters.from_config(snakemake.params.photometry),
        snakemake.params.saturation,
        catalogue_aperture_key(snakemake.params.photometry, snakemake.params.zeropoints),
    )
    write_table(table, out)
    log.info(psf_summary(table))


run_frame_step(
    "PSF photometry",
    stem,
    work,
    lambda reason: write_table(failed_psf_photometry(stem, reason, apertures.meta), out),
)
