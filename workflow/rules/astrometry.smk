# Astrometry: index files, a source list and two solve-field passes per frame (shell; the
# passes only on the frames astrometry.solve_field selects), per target the hand-over of
# solutions to the frames without one (asterism matching), SIP refinement against the
# reference catalogue (or a solved frame's stars), status of every frame (a checkpoint:
# later steps use solved frames only).
from aifa_steps.astrometry.settings import (
    ChainSettings,
    FrameSettings,
    IndexSettings,
    SolveSettings,
)

ASTRO = config["astrometry"]
SCALE = config["instrument"]["pixel_scale"]
SOLVE = SolveSettings.from_config(ASTRO)


rule astrometry_index:
    input:
        catalogues=lambda wc: (
            reference_catalogues() if ASTRO["build_index"] else inventory_ready()
        ),
    output:
        solver=WORK / "astrometry" / "index" / "solver.cfg",
        verifier=WORK / "astrometry" / "index" / "verify.cfg",
    log:
        LOGS / "astrometry_index.log",
    benchmark:
        BENCHMARKS / "astrometry_index.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        astro=keys_of(ASTRO, *IndexSettings.keys()),
        pixel_scale=SCALE,
        field_arcmin=lambda wc: field_size_arcmin(),
    script:
        "../scripts/astrometry_index.py"


rule solve_field:
    input:
        frame=after_inventory(WORK / "calibrated" / "{stem}.fits"),
        solver=WORK / "astrometry" / "index" / "solver.cfg",
        verifier=WORK / "astrometry" / "index" / "verify.cfg",
    output:
        wcs=WORK / "astrometry" / "solve" / "{stem}.wcs",
        corr=WORK / "astrometry" / "solve" / "{stem}.corr",
        xyls=WORK / "astrometry" / "solve" / "{stem}.xyls",
    log:
        LOGS / "solve_field" / "{stem}.log",
    benchmark:
        BENCHMARKS / "solve_field" / "{stem}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        hint=lambda wc: pointing_hint(wc.stem, SOLVE.search_radius_deg),
        width=lambda wc: int(light_row(wc.stem)["naxis1"]),
        height=lambda wc: int(light_row(wc.stem)["naxis2"]),
        low=SOLVE.scale_range(SCALE)[0],
        high=SOLVE.scale_range(SCALE)[1],
        cpulimit=SOLVE.cpulimit,
        sip=SOLVE.sip_order,
        solve=lambda wc: solve_field_wanted(wc.stem),
        script=f"{workflow.basedir}/scripts/solve_field.sh",
    shell:
        """
        bash {params.script:q} --frame {input.frame:q} \
            --solver {input.solver:q} --verifier {input.verifier:q} --wcs {output.wcs:q} \
            --corr {output.corr:q} --xyls {output.xyls:q} --width {params.width} \
            --height {params.height} --scale-low {params.low} --scale-high {params.high} \
            --cpulimit {params.cpulimit} --sip {params.sip} --solve {params.solve} \
            {params.hint} >{log:q} 2>&1
        """


# Per target: solve-field's solutions handed on to the frames without one (asterism matching
# of the source lists, along the time series), and the stars of one solved frame for nights
# without a reference catalogue.
rule astrometry_chain:
    input:
        frames=lambda wc: [
            WORK / "calibrated" / f"{s}.fits" for s in target_stems(wc.target)
        ],
        wcs=solve_files("wcs"),
        corr=solve_files("corr"),
        xyls=solve_files("xyls"),
        solver=WORK / "astrometry" / "index" / "solver.cfg",
        verifier=WORK / "astrometry" / "index" / "verify.cfg",
    output:
        frames=WORK / "astrometry" / "chain" / "{target}" / "frames.ecsv",
        stars=WORK / "astrometry" / "chain" / "{target}" / "stars.ecsv",
    log:
        LOGS / "astrometry_chain" / "{target}.log",
    benchmark:
        BENCHMARKS / "astrometry_chain" / "{target}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        astro=keys_of(ASTRO, *ChainSettings.keys()),
        pixel_scale=SCALE,
        frames=lambda wc: target_frames(wc.target),
    script:
        "../scripts/astrometry_chain.py"


rule astrometry_frame:
    input:
        frame=after_inventory(WORK / "calibrated" / "{stem}.fits"),
        wcs=WORK / "astrometry" / "solve" / "{stem}.wcs",
        corr=WORK / "astrometry" / "solve" / "{stem}.corr",
        chain=lambda wc: WORK
        / "astrometry"
        / "chain"
        / frame_object(wc.stem)
        / "frames.ecsv",
        stars=lambda wc: WORK
        / "astrometry"
        / "chain"
        / frame_object(wc.stem)
        / "stars.ecsv",
        solver=WORK / "astrometry" / "index" / "solver.cfg",
        refcat=lambda wc: (
            WORK / "refcat" / f"{frame_object(wc.stem)}.ecsv"
            if ASTRO["refine"]
            else []
        ),
    output:
        fits=WORK / "astrometry" / "{stem}.fits",
        matches=WORK / "astrometry" / "matches" / "{stem}.ecsv",
        status=WORK / "astrometry" / "status" / "{stem}.ecsv",
    log:
        LOGS / "astrometry_frame" / "{stem}.log",
    benchmark:
        BENCHMARKS / "astrometry_frame" / "{stem}.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    params:
        astro=keys_of(ASTRO, *FrameSettings.keys()),
        pixel_scale=SCALE,
        frame=lambda wc: frame_info(wc.stem),
        solve=lambda wc: solve_field_wanted(wc.stem),
    script:
        "../scripts/astrometry_frame.py"


checkpoint astrometry_status:
    input:
        status=lambda wc: [
            WORK / "astrometry" / "status" / f"{s}.ecsv" for s in light_stems()
        ],
        matches=lambda wc: [
            WORK / "astrometry" / "matches" / f"{s}.ecsv" for s in light_stems()
        ],
    output:
        table=WORK / "astrometry" / "status.ecsv",
        plot=report(
            WORK / "qc" / "astrometry.png",
            caption="../report/astrometry.rst",
            category="3. Astrometry",
            labels={"figure": "astrometric quality through the night"},
        ),
        residuals=report(
            directory(WORK / "qc" / "astrometry_residuals"),
            patterns=["{name}.png"],
            caption="../report/astrometry_residuals.rst",
            category="3. Astrometry",
            labels={"figure": "{name}"},
        ),
    log:
        LOGS / "astrometry_status.log",
    benchmark:
        BENCHMARKS / "astrometry_status.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    script:
        "../scripts/astrometry_status.py"


# The residual plot of every solved frame: apart from the checkpoint, which the photometry
# waits for.
rule astrometry_plots:
    input:
        table=WORK / "astrometry" / "status.ecsv",
        matches=lambda wc: [
            WORK / "astrometry" / "matches" / f"{s}.ecsv" for s in light_stems()
        ],
    output:
        directory(WORK / "astrometry" / "plots"),
    log:
        LOGS / "astrometry_plots.log",
    benchmark:
        BENCHMARKS / "astrometry_plots.tsv"
    conda:
        "../envs/aifa-steps.yaml"
    script:
        "../scripts/astrometry_plots.py"
