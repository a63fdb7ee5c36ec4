# Astrometry: index files, a source list and two solve-field passes per frame (shell; the
# passes only on the frames astrometry.solve_field selects), per target the hand-over of
# solutions to the frames without one (asterism matching), SIP refinement against the
# reference catalogue (or a solved frame's stars), status of every frame (a checkpoint:
# later steps use solved frames only).
ASTRO = config["astrometry"]
SCALE = config["instrument"]["pixel_scale"]


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
        astro=keys_of(
            ASTRO, "build_index", "cpulimit", "index_dirs", "index_mag_column"
        ),
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
        hint=lambda wc: pointing_hint(wc.stem, ASTRO["search_radius_deg"]),
        width=lambda wc: int(light_row(wc.stem)["naxis1"]),
        height=lambda wc: int(light_row(wc.stem)["naxis2"]),
        low=SCALE * (1 - ASTRO["scale_tolerance"]),
        high=SCALE * (1 + ASTRO["scale_tolerance"]),
        cpulimit=ASTRO["cpulimit"],
        sip=ASTRO["sip_order"],
        solve=lambda wc: solve_field_wanted(wc.stem),
    shell:
        """
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        printf 'X_IMAGE\\nY_IMAGE\\nMAG_AUTO\\nFLUX_AUTO\\n' >$tmp/xy.param
        printf 'CONV NORM\\n1 2 1\\n2 4 2\\n1 2 1\\n' >$tmp/xy.conv
        echo "sources: Source Extractor on the science plane" >{log}
        source-extractor '{input.frame}[0]' -CATALOG_NAME $tmp/sources.fits -CATALOG_TYPE FITS_1.0 \
            -PARAMETERS_NAME $tmp/xy.param -FILTER_NAME $tmp/xy.conv -VERBOSE_TYPE QUIET \
            >>{log} 2>&1 || true
        common="--dir $tmp --overwrite --no-plots --new-fits none --temp-axy --index-xyls none \
            --rdls none --match none --width {params.width} --height {params.height} \
            --x-column X_IMAGE --y-column Y_IMAGE --sort-column MAG_AUTO --sort-ascending \
            --scale-units arcsecperpix --scale-low {params.low} --scale-high {params.high} \
            --crpix-center --cpulimit {params.cpulimit} --no-remove-lines {params.hint}"
        if [ -s $tmp/sources.fits ]; then
            cp $tmp/sources.fits {output.xyls:q}.partial && mv {output.xyls:q}.partial {output.xyls:q}
        else
            : >{output.xyls:q}
        fi
        if [ {params.solve} = no ]; then
            echo "solve-field skipped (astrometry.solve_field: the WCS comes from a neighbour)" >>{log}
        elif [ -s $tmp/sources.fits ]; then
            echo "pass 1: blind solve with scale and position hints" >>{log}
            solve-field $common --config {input.solver} --out pass1 --no-verify --uniformize 0 \
                --tweak-order 2 --corr $tmp/pass1.corr --wcs $tmp/pass1.wcs \
                $tmp/sources.fits >>{log} 2>&1 || true
        fi
        if [ -s $tmp/pass1.wcs ]; then
            echo "pass 2: verify pass 1 with all stars, SIP order {params.sip}" >>{log}
            solve-field $common --config {input.verifier} --out pass2 --verify $tmp/pass1.wcs \
                --no-verify-uniformize --objs 1000000 --tweak-order {params.sip} \
                --corr $tmp/pass2.corr --wcs $tmp/pass2.wcs $tmp/sources.fits >>{log} 2>&1 || true
        fi
        best=pass2
        [ -s $tmp/pass2.wcs ] || best=pass1
        if [ -s $tmp/$best.wcs ]; then
            cp $tmp/$best.wcs {output.wcs:q}.partial && mv {output.wcs:q}.partial {output.wcs:q}
            cp $tmp/$best.corr {output.corr:q}.partial && mv {output.corr:q}.partial {output.corr:q}
            echo "solution: $best" >>{log}
        else
            : >{output.wcs:q}
            : >{output.corr:q}
            echo "solution: none" >>{log}
        fi
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
        astro=keys_of(
            ASTRO,
            "header_wcs",
            "cpulimit",
            "max_extra_solves",
            "scale_tolerance",
            "search_radius_deg",
            "sip_order",
        ),
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
        astro=keys_of(
            ASTRO,
            "index_mag_column",
            "max_rms_arcsec",
            "max_rms_pixels",
            "min_matches",
            "refine",
            "scale_tolerance",
            "sip_order",
        ),
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
