# The reference catalogue around each target: positions for astrometry, magnitudes for zero
# points. A local rule: it may query VizieR, which compute nodes cannot reach.
from aifa_steps.photometry.settings import RefcatSettings

REFCAT = config["reference_catalogue"]


localrules:
    reference_catalogue,


rule reference_catalogue:
    input:
        lambda wc: [
            *inventory_ready(),
            *([REFCAT["path"]] if REFCAT.get("source") == "file" else []),
        ],
    output:
        WORK / "refcat" / "{object}.ecsv",
    log:
        LOGS / "reference_catalogue_{object}.log",
    benchmark:
        BENCHMARKS / "reference_catalogue_{object}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        refcat=keys_of(REFCAT, *RefcatSettings.keys()),
        centre=lambda wc: object_centre(wc.object),
        cache_dir=str(WORK / "refcat" / "cache"),
    script:
        "../scripts/reference_catalogue.py"
