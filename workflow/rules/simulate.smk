# The built-in demo: create the simulated raw night when the configured raw_dir is missing.
# A checkpoint: the raw files (the inventory's inputs) are only known once it has run.
if SIMULATE:

    checkpoint simulate_night:
        output:
            directory(RAW),
        log:
            LOGS / "simulate_night.log",
        conda:
            "../envs/aifa-steps.yaml"
        # Locally capped at --cores; on a cluster a job of this many CPUs (workflow.cores is
        # unknown there).
        threads: 8
        params:
            preset=SIMULATE.get("preset", "demo"),
            seed=SIMULATE.get("seed", 1),
            transit_frames=SIMULATE.get("transit_frames"),
            work_dir=str(WORK.resolve()),
        script:
            "../scripts/simulate_night.py"
