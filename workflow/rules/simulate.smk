# The built-in demo: create the simulated raw night when the configured raw_dir is missing.
if SIMULATE:

    rule simulate_night:
        output:
            directory(RAW),
        log:
            LOGS / "simulate_night.log",
        conda:
            "../../environment.yml"
        threads: workflow.cores
        params:
            preset=SIMULATE.get("preset", "demo"),
            seed=SIMULATE.get("seed", 1),
            frames=(
                f"--transit-frames {SIMULATE['transit_frames']}"
                if "transit_frames" in SIMULATE
                else ""
            ),
            work=WORK.resolve(),
        shell:
            "python -m aifa_steps.simulate {output} --preset {params.preset} "
            "--seed {params.seed} --jobs {threads} {params.frames} "
            "--work-dir {params.work} > {log} 2>&1"
