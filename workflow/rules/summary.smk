# The night's status: what happened to every raw file, and the page the report opens with.


rule night_summary:
    input:
        inventory=WORK / "inventory.ecsv",
        astrometry=WORK / "astrometry" / "status.ecsv",
        zeropoints=zeropoint_table,
        catalogues=lambda wc: reference_catalogues() if zeropoint_table() else [],
        flats=flat_qc_tables,
    output:
        table=WORK / "night_status.ecsv",
        html=report(
            WORK / "qc" / "night_summary.html",
            caption="../report/night_summary.rst",
            category="1. Night overview",
            labels={"table": "night summary"},
        ),
    log:
        LOGS / "night_summary.log",
    benchmark:
        BENCHMARKS / "night_summary.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        targets=config.get("targets") or {},
    script:
        "../scripts/night_summary.py"
