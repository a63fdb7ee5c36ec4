# The night's status: what happened to every raw file, and the page the report opens with.
# Both rules read tables and write pages in seconds: local rules on a cluster.


localrules:
    night_summary,
    results_summary,


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


# The night's results, read first: summary.json and summary.html in the work folder, and the
# same page at the top of the report (report/workflow.rst includes qc/summary_report.html).
rule results_summary:
    input:
        status=WORK / "night_status.ecsv",
        zeropoints=zeropoint_table,
        calibrated=calibration_qc_table,
        products=summary_products,
    output:
        json=WORK / "summary.json",
        html=WORK / "summary.html",
        fragment=WORK / "qc" / "summary_report.html",
        conditions=report(
            WORK / "qc" / "conditions.png",
            caption="../report/conditions.rst",
            category="1. Night overview",
            labels={"figure": "seeing, sky and airmass through the night"},
        ),
    log:
        LOGS / "results_summary.log",
    benchmark:
        BENCHMARKS / "results_summary.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        targets=config.get("targets") or {},
        work_dir=lambda wc, output: str(Path(output.json).parent),
    script:
        "../scripts/results_summary.py"
