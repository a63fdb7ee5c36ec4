# Photometry: detection on a reference frame per target, forced aperture photometry of every
# solved frame, PSF photometry of the frames of crowded targets (photometry.method), zero
# points against the reference catalogue, calibrated magnitudes.
from aifa_steps.photometry.settings import (
    DetectionParameters,
    PsfParameters,
    ZeropointParameters,
)

PHOT = config["photometry"]
ZP = config["zeropoints"]
FRAME_TABLE = r"(?!(?:reference|calibrated|magnitudes)\.ecsv$)[^/]+"


rule photometry_reference:
    input:
        frame=lambda wc: WORK / "calibrated" / f"{reference_frame(wc.object)}.fits",
        solution=lambda wc: WORK / "astrometry" / f"{reference_frame(wc.object)}.fits",
        refcat=WORK / "refcat" / "{object}.ecsv",
        status=ASTROMETRY_STATUS,
    output:
        table=WORK / "photometry" / "{object}" / "reference.ecsv",
        regions=WORK / "photometry" / "{object}" / "reference.reg",
        figure=report(
            WORK / "qc" / "detections" / "{object}.png",
            caption="../report/detections.rst",
            category="4. Photometry",
            labels={"figure": "detections on the reference frame of {object}"},
        ),
    log:
        LOGS / "photometry_reference" / "{object}.log",
    benchmark:
        BENCHMARKS / "photometry_reference" / "{object}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        photometry=keys_of(
            PHOT,
            *APERTURE_CONFIG_KEYS,
            "sky_annulus_fwhm",
            "background_box",
            "background_filter",
        ),
        detection=keys_of(PHOT.get("detection", {}), *DetectionParameters.keys()),
        isolation_arcsec=PHOT["isolation_arcsec"],
        match_radius=ZP["match_radius_arcsec"],
        requested=lambda wc: target_config(wc.object).get("reference_frame", ""),
        name=lambda wc: object_name(wc.object),
    script:
        "../scripts/photometry_reference.py"


rule photometry_frame:
    input:
        frame=after_inventory(WORK / "calibrated" / "{stem}.fits"),
        solution=WORK / "astrometry" / "{stem}.fits",
        reference=WORK / "photometry" / "{object}" / "reference.ecsv",
    output:
        WORK / "photometry" / "{object}" / "{stem}.ecsv",
    log:
        LOGS / "photometry_frame" / "{object}" / "{stem}.log",
    benchmark:
        BENCHMARKS / "photometry_frame" / "{object}" / "{stem}.tsv"
    wildcard_constraints:
        stem=FRAME_TABLE,
        object=r"[^/]+",
    conda:
        "../envs/aifa-steps.yaml"
    params:
        photometry=photometry_keys(),
        saturation=config["instrument"]["saturation"],
        site=config["site"],
        frame=lambda wc: frame_info(wc.stem),
        target=lambda wc: object_centre(wc.object),
    script:
        "../scripts/photometry_frame.py"


rule psf_photometry:
    input:
        frame=after_inventory(WORK / "calibrated" / "{stem}.fits"),
        solution=WORK / "astrometry" / "{stem}.fits",
        reference=WORK / "photometry" / "{object}" / "reference.ecsv",
        apertures=WORK / "photometry" / "{object}" / "{stem}.ecsv",
    output:
        WORK / "photometry" / "{object}" / "psf" / "{stem}.ecsv",
    log:
        LOGS / "psf_photometry" / "{object}" / "{stem}.log",
    benchmark:
        BENCHMARKS / "psf_photometry" / "{object}" / "{stem}.tsv"
    wildcard_constraints:
        stem=FRAME_TABLE,
        object=r"[^/]+",
    conda:
        "../envs/aifa-steps.yaml"
    params:
        psf=keys_of(PHOT.get("psf", {}), *PsfParameters.keys()),
        photometry=photometry_keys(),
        zeropoints=keys_of(ZP, "catalogue_aperture_arcsec", "catalogue_aperture_fwhm"),
        saturation=config["instrument"]["saturation"],
    script:
        "../scripts/psf_photometry.py"


rule zeropoints:
    input:
        tables=photometry_tables,
        status=ASTROMETRY_STATUS,
        references=lambda wc: [
            WORK / "photometry" / obj / "reference.ecsv"
            for obj in photometry_objects()
        ],
    output:
        table=WORK / "zeropoints.ecsv",
        extinction=WORK / "photometry" / "extinction.ecsv",
        stars=WORK / "photometry" / "zeropoint_stars.ecsv",
        targets=WORK / "qc" / "photometry_targets.ecsv",
        figure=report(
            WORK / "qc" / "zeropoints.png",
            caption="../report/zeropoints.rst",
            category="4. Photometry",
            labels={"figure": "zero points, seeing and aperture corrections"},
        ),
        residuals=report(
            WORK / "qc" / "zeropoint_residuals.png",
            caption="../report/zeropoint_residuals.rst",
            category="4. Photometry",
            labels={"figure": "zero-point residuals"},
        ),
    log:
        LOGS / "zeropoints.log",
    benchmark:
        BENCHMARKS / "zeropoints.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        zeropoints=keys_of(ZP, *ZeropointParameters.keys()),
        photometry=keys_of(PHOT, *APERTURE_CONFIG_KEYS),
        objects=lambda wc: light_objects(),
    script:
        "../scripts/zeropoints.py"


rule calibrated_magnitudes:
    input:
        zeropoints=WORK / "zeropoints.ecsv",
        reference=WORK / "photometry" / "{object}" / "reference.ecsv",
        status=ASTROMETRY_STATUS,
        tables=lambda wc: [
            WORK / "photometry" / wc.object / f"{s}.ecsv"
            for s in photometry_stems(wc.object)
        ],
        psf=lambda wc: psf_tables(wc.object),
    output:
        calibrated=WORK / "photometry" / "{object}" / "calibrated.ecsv",
        magnitudes=WORK / "photometry" / "{object}" / "magnitudes.ecsv",
    log:
        LOGS / "calibrated_magnitudes" / "{object}.log",
    benchmark:
        BENCHMARKS / "calibrated_magnitudes" / "{object}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        zeropoints=keys_of(
            ZP, "colour", "catalogue_aperture_arcsec", "catalogue_aperture_fwhm"
        ),
        photometry=keys_of(PHOT, *APERTURE_CONFIG_KEYS),
        psf=lambda wc: uses_psf(wc.object),
    script:
        "../scripts/calibrated_magnitudes.py"
