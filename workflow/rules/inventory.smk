# What every raw file is and whether it is used. A checkpoint: the per-frame jobs of the later
# rules are only known once the headers have been read.


checkpoint inventory:
    input:
        RAW,
    output:
        table=WORK / "inventory.ecsv",
        html=report(
            WORK / "qc" / "inventory.html",
            caption="../report/inventory.rst",
            category="1. Night overview",
            labels={"table": "inventory"},
        ),
    log:
        LOGS / "inventory.log",
    benchmark:
        BENCHMARKS / "inventory.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/inventory.py"
