# Master calibrations, bad-pixel mask, calibrated science frames, camera check and QC.
# Bias, darks and flats are each optional: lights are calibrated with whatever the night has,
# and a master that cannot be made is written as a header-only file that says why.
from aifa_steps.calibration.settings import (
    INSTRUMENT_KEYS,
    BadPixelSettings,
    CalibrationParameters,
    CameraCheckSettings,
    ClipParameters,
    FlatLevels,
)
from aifa_steps.inventory.settings import ReadoutSettings

CAL = config["calibration"]
READOUT = keys_of(config["readout"], *ReadoutSettings.keys())
CLIP = keys_of(CAL, *ClipParameters.keys())
DETECTOR_KEYS = keys_of(config["instrument"], *INSTRUMENT_KEYS)


rule master_bias:
    input:
        lambda wc: raw_frames("bias"),
    output:
        WORK / "masters" / "bias.fits",
    log:
        LOGS / "master_bias.log",
    benchmark:
        BENCHMARKS / "master_bias.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    threads: 2
    params:
        cal=CLIP,
        readout=READOUT,
    script:
        "../scripts/master_bias.py"


rule master_dark:
    input:
        darks=lambda wc: raw_frames("dark", exptime=wc.exptime),
        bias=master_bias_file,
    output:
        WORK / "masters" / "dark_{exptime}s.fits",
    log:
        LOGS / "master_dark_{exptime}s.log",
    benchmark:
        BENCHMARKS / "master_dark_{exptime}s.tsv"
    wildcard_constraints:
        exptime=r"[0-9.]+",
    conda:
        "../envs/aifa-steps.yaml"
    threads: 2
    params:
        cal=CLIP,
        readout=READOUT,
    script:
        "../scripts/master_dark.py"


rule master_flat:
    input:
        flats=lambda wc: raw_frames("flat", filter=wc.filter),
        bias=master_bias_file,
        darks=master_darks,
    output:
        flat=WORK / "masters" / "flat_{filter}.fits",
        frames=WORK / "qc" / "flat_frames_{filter}.ecsv",
    log:
        LOGS / "master_flat_{filter}.log",
    benchmark:
        BENCHMARKS / "master_flat_{filter}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    threads: 2
    params:
        cal={**CLIP, **keys_of(CAL, *FlatLevels.keys())},
        readout=READOUT,
        saturation=config["instrument"]["saturation"],
        bias_level=config["instrument"].get("bias_level", 0.0),
    script:
        "../scripts/master_flat.py"


rule bad_pixel_mask:
    input:
        darks=master_darks,
        flats=master_flats,
    output:
        WORK / "masters" / "bad_pixels.fits",
    log:
        LOGS / "bad_pixel_mask.log",
    benchmark:
        BENCHMARKS / "bad_pixel_mask.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        cal=keys_of(CAL, *BadPixelSettings.keys()),
    script:
        "../scripts/bad_pixel_mask.py"


rule calibrate_frame:
    input:
        raw=lambda wc: light_row(wc.stem)["path"],
        bias=master_bias_file,
        darks=master_darks,
        flat=lambda wc: master_flat_for(light_row(wc.stem)["filter"]),
        bad_pixels=WORK / "masters" / "bad_pixels.fits",
        detector=detector_input,
    output:
        WORK / "calibrated" / "{stem}.fits",
    log:
        LOGS / "calibrate" / "{stem}.log",
    benchmark:
        BENCHMARKS / "calibrate" / "{stem}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        frame=lambda wc: frame_info(wc.stem),
        cal=keys_of(CAL, *CalibrationParameters.keys()),
        readout=READOUT,
        instrument=DETECTOR_KEYS,
        detector=lambda wc: frame_detector(wc.stem),
        exptime_keyword=config["headers"].get("exptime"),
    script:
        "../scripts/calibrate_frame.py"


rule camera_characterisation:
    input:
        biases=lambda wc: raw_frames("bias"),
        flats=lambda wc: raw_frames("flat"),
        bias=master_bias_file,
        lights=lambda wc: raw_frames("light") if detector_auto() else [],
    output:
        summary=WORK / "qc" / "camera.ecsv",
        pairs=WORK / "qc" / "photon_transfer.ecsv",
        detector=DETECTOR_TABLE,
        sky=WORK / "qc" / "sky_transfer.ecsv",
        plot=report(
            WORK / "qc" / "photon_transfer.png",
            caption="../report/camera.rst",
            category="2. Calibration",
            labels={"figure": "camera gain and read noise"},
        ),
    log:
        LOGS / "camera_characterisation.log",
    benchmark:
        BENCHMARKS / "camera_characterisation.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        instrument=DETECTOR_KEYS,
        cal=keys_of(CAL, *CameraCheckSettings.keys()),
        auto=detector_auto(),
    script:
        "../scripts/camera_characterisation.py"


rule calibration_qc:
    input:
        bias=master_bias_file,
        darks=master_darks,
        flats=master_flats,
        bad_pixels=WORK / "masters" / "bad_pixels.fits",
        frames=calibrated_frames,
        detector=detector_inputs,
    output:
        masters=WORK / "qc" / "masters.ecsv",
        frames=WORK / "qc" / "calibrated_frames.ecsv",
        previews=report(
            directory(WORK / "qc" / "masters"),
            patterns=["{name}.png"],
            caption="../report/masters.rst",
            category="2. Calibration",
            labels={"figure": "{name}"},
        ),
        frames_plot=report(
            WORK / "qc" / "calibrated_frames.png",
            caption="../report/calibrated_frames.rst",
            category="2. Calibration",
            labels={"figure": "calibrated frames through the night"},
        ),
    log:
        LOGS / "calibration_qc.log",
    benchmark:
        BENCHMARKS / "calibration_qc.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        instrument=DETECTOR_KEYS,
    script:
        "../scripts/calibration_qc.py"
