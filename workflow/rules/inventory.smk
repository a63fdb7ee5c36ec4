# What every raw file is and whether it is used. A checkpoint: the per-frame jobs of the later
# rules are only known once the headers have been read. Its inputs are the raw files
# themselves, so adding, removing or editing one reruns it; the header mapping is a parameter,
# so changing it does too. A local rule on a cluster: it reads headers only, and the DAG waits
# for it.


localrules:
    inventory,


checkpoint inventory:
    input:
        raw_files,
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
        "../envs/aifa-steps.yaml"
    params:
        raw_dir=str(RAW),
        headers=config["headers"],
        readout=config["readout"],
        frame_types=config["frame_types"],
        filters=config["filters"],
    script:
        "../scripts/inventory.py"
