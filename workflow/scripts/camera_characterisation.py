# Snakemake adapter: gain and read noise from the night's biases and flats (what the night
# lacks is skipped with the reason in qc/camera.ecsv); with instrument.gain or read_noise
# 'auto' also from the lights' sky, and the night's values in qc/detector.ecsv.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from aifa_steps.calibration.camera import characterise_camera
from aifa_steps.calibration.detector import CameraCheckSettings, configured_value, night_detector
from aifa_steps.calibration.masterset import Masters
from aifa_steps.calibration.plots import photon_transfer_figure
from aifa_steps.calibration.skytransfer import sky_transfer
from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inst = snakemake.params.instrument
check = CameraCheckSettings.from_config(snakemake.params.cal)
inp, out = snakemake.input, snakemake.output
bias = Masters.load(inp.bias[0] if inp.bias else None, [], {}).bias

summary, pairs = characterise_camera(
    list(inp.biases),
    list(inp.flats),
    None if bias is None else bias.data,
    configured_value(inst, "gain"),
    configured_value(inst, "read_noise"),
    inst["saturation"],
    check.gain_tolerance,
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
