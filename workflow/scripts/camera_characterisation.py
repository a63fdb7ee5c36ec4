# Snakemake adapter: gain and read noise from the night's biases and flats (what the night
# lacks is skipped with the reason in qc/camera.ecsv); with instrument.gain or read_noise
# 'auto' also from the lights' sky, and the night's values in qc/detector.ecsv.
from aifa_steps.calibration.calibrate import Masters
from aifa_steps.calibration.camera import (
    characterise_camera,
    is_auto,
    night_detector,
    photon_transfer_figure,
    sky_transfer,
)
from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inst = snakemake.params.instrument
inp, out = snakemake.input, snakemake.output
bias = Masters.load(inp.bias[0] if inp.bias else None, [], {}).bias


def configured(key):
    return float("nan") if is_auto(inst[key]) else float(inst[key])


summary, pairs = characterise_camera(
    list(inp.biases),
    list(inp.flats),
    None if bias is None else bias.data,
    configured("gain"),
    configured("read_noise"),
    inst["saturation"],
    snakemake.params.tolerance,
)
sky = sky_transfer(
    list(inp.lights),
    bias.data if bias is not None else inst.get("bias_level"),
    inst["saturation"],
)
detector = night_detector(inst, summary, sky)
write_table(summary, out.summary)
write_table(pairs, out.pairs)
write_table(sky, out.sky)
write_table(detector, out.detector)
photon_transfer_figure(summary, pairs, out.plot)
log.info("\n%s\n%s", summary, detector)
