# Science products: cluster catalogues and CMDs, transit light curves, stacks and colour images.
from aifa_steps.products.settings import (
    BackgroundSettings,
    CmdSettings,
    ColourImageSettings,
    StackParameters,
    TransitSettings,
)


rule cluster_products:
    input:
        magnitudes=WORK / "photometry" / "{object}" / "magnitudes.ecsv",
        isochrone=lambda wc: target_config(wc.object).get("isochrone", []),
    output:
        catalogue=WORK / "products" / "{object}" / "catalogue.ecsv",
        figure=report(
            WORK / "products" / "{object}" / "cmd.png",
            caption="../report/cmd.rst",
            category="5. Science products",
            labels={"figure": "colour-magnitude diagram of {object}"},
        ),
    log:
        LOGS / "cluster_products" / "{object}.log",
    benchmark:
        BENCHMARKS / "cluster_products" / "{object}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        target=lambda wc: keys_of(target_config(wc.object), *CmdSettings.keys()),
        name=lambda wc: object_name(wc.object),
    script:
        "../scripts/cluster_products.py"


rule transit_products:
    input:
        reference=WORK / "photometry" / "{object}" / "reference.ecsv",
        status=ASTROMETRY_STATUS,
        tables=lambda wc: [
            WORK / "photometry" / wc.object / f"{s}.ecsv"
            for s in photometry_stems(wc.object)
        ],
    output:
        table=WORK / "products" / "{object}" / "lightcurve.ecsv",
        fit=WORK / "products" / "{object}" / "transit_fit.json",
        comparisons=WORK / "products" / "{object}" / "comparisons.ecsv",
        figure=report(
            WORK / "products" / "{object}" / "lightcurve.png",
            caption="../report/lightcurve.rst",
            category="5. Science products",
            labels={"figure": "transit light curve of {object}"},
        ),
    log:
        LOGS / "transit_products" / "{object}.log",
    benchmark:
        BENCHMARKS / "transit_products" / "{object}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        target=lambda wc: keys_of(target_config(wc.object), *TransitSettings.keys()),
        name=lambda wc: object_name(wc.object),
        aperture_m=config["instrument"].get("aperture_m", 0.0),
        elevation_m=config["site"].get("elevation", 0.0),
    script:
        "../scripts/transit_products.py"


rule stack:
    input:
        frames=lambda wc: [
            WORK / "calibrated" / f"{s}.fits"
            for s in stack_stems(wc.object, wc.filter)
        ],
        solutions=lambda wc: [
            WORK / "astrometry" / f"{s}.fits"
            for s in stack_stems(wc.object, wc.filter)
        ],
        grid=lambda wc: WORK / "astrometry" / f"{reference_frame(wc.object)}.fits",
        zeropoints=WORK / "zeropoints.ecsv",
        status=ASTROMETRY_STATUS,
    output:
        WORK / "products" / "{object}" / "stack_{filter}.fits",
    log:
        LOGS / "stack" / "{object}_{filter}.log",
    benchmark:
        BENCHMARKS / "stack" / "{object}_{filter}.tsv"
    wildcard_constraints:
        object=r"[^/]+",
        filter=r"[^/.]+",
    conda:
        "../envs/aifa-steps.yaml"
    params:
        stacks=keys_of(config["stacks"], *StackParameters.keys()),
        photometry=keys_of(
            config["photometry"], *BackgroundSettings.keys(), *APERTURE_CONFIG_KEYS
        ),
        frames=lambda wc: stack_frame_rows(wc.object, wc.filter),
    script:
        "../scripts/stack.py"


rule colour_image:
    input:
        status=ASTROMETRY_STATUS,
        stacks=lambda wc: [
            WORK / "products" / wc.object / f"stack_{f}.fits"
            for f in colour_filters(wc.object)
        ],
    output:
        report(
            WORK / "products" / "{object}" / "color.png",
            caption="../report/colour_image.rst",
            category="5. Science products",
            labels={"figure": "colour image of {object}"},
        ),
    log:
        LOGS / "colour_image" / "{object}.log",
    benchmark:
        BENCHMARKS / "colour_image" / "{object}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        order=lambda wc: colour_filters(wc.object),
        stacks=keys_of(config["stacks"], *ColourImageSettings.keys()),
    script:
        "../scripts/colour_image.py"
