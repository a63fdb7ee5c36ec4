#!/usr/bin/env bash
# One frame's astrometry.net solution: a Source Extractor source list, then two solve-field passes.
#
# The ONE place where Source Extractor and solve-field are run: the workflow's rule solve_field
# runs this script, and so do the package (aifa_steps.astrometry.solve.run_solve_field, for a
# frame the rule skipped), the tests and the benchmark.
#
#   1. Source Extractor runs once on the science plane (FRAME[0]; the uncertainty, mask and flag
#      planes of a calibrated frame are not images of the sky) and writes the source list XYLS.
#      With --sources, an existing source list is read instead and XYLS is left alone.
#   2. Pass 1 solves that list blindly with scale and position hints (SIP order 2).
#   3. Pass 2 verifies pass 1's solution with all sources and tweaks a SIP distortion of order
#      --sip, with the configuration --verifier (e.g. the densest index only).
#   The better pass (2, else 1) gives WCS and CORR.
#
# Usage:
#   solve_field.sh --frame FRAME --solver CFG --verifier CFG --wcs OUT --corr OUT --xyls OUT \
#       --width NX --height NY --scale-low L --scale-high H [--cpulimit S] [--sip N] \
#       [--solve yes|no] [--sources LIST] [--ra RA --dec DEC --radius R]
#
#   --frame        calibrated frame (its primary HDU holds the image)
#   --solver       astrometry.net configuration of pass 1; --verifier: of pass 2
#   --wcs, --corr  outputs: solve-field's solution and its matched stars (.corr)
#   --xyls         output: the source list (FITS table X_IMAGE, Y_IMAGE, MAG_AUTO, FLUX_AUTO)
#   --width, --height   image size (pixels)
#   --scale-low, --scale-high   accepted pixel scale (arcsec per pixel)
#   --cpulimit     CPU seconds per pass (default 60); --sip: SIP order of pass 2 (default 3)
#   --solve        "no": the source list only (the frame gets its WCS from a neighbour)
#   --sources      an existing source list to solve (Source Extractor does not run)
#   --ra, --dec, --radius   pointing hint (deg); without them a blind solve
#
# Messages go to standard output (the rule sends them to its log). Failures do not stop the
# script: without Source Extractor or without sources XYLS is empty; without solve-field, without
# sources or without a solution WCS and CORR are empty ("no solution", which the astrometry
# reports per frame). Outputs are written to *.partial and renamed, so a file is whole or absent.
# Exit status: 0, or 2 for a wrong command line.
set -euo pipefail

usage() {
    sed -n '/^# Usage:/,/^# Messages/p' "$0" | sed 's/^# \{0,1\}//' | sed '$d' >&2
    exit 2
}

frame="" solver="" verifier="" wcs="" corr="" xyls="" width="" height="" low="" high=""
cpulimit=60 sip=3 solve=yes sources="" hint=()
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case "$1" in
    --frame) frame=$2 ;;
    --solver) solver=$2 ;;
    --verifier) verifier=$2 ;;
    --wcs) wcs=$2 ;;
    --corr) corr=$2 ;;
    --xyls) xyls=$2 ;;
    --width) width=$2 ;;
    --height) height=$2 ;;
    --scale-low) low=$2 ;;
    --scale-high) high=$2 ;;
    --cpulimit) cpulimit=$2 ;;
    --sip) sip=$2 ;;
    --solve) solve=$2 ;;
    --sources) sources=$2 ;;
    --ra | --dec | --radius) hint+=("$1" "$2") ;;
    *) echo "solve_field.sh: unknown option $1" >&2 && usage ;;
    esac
    shift 2
done
for name in frame solver verifier wcs corr xyls width height low high; do
    [ -n "${!name}" ] || { echo "solve_field.sh: --${name} is missing" >&2 && usage; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# publish SOURCE TARGET: copy whole, or an empty TARGET without SOURCE.
publish() {
    if [ -s "$1" ]; then
        cp "$1" "$2.partial" && mv "$2.partial" "$2"
    else
        : >"$2"
    fi
}

if [ -n "$sources" ]; then
    echo "sources: the existing list $sources"
    if [ -s "$sources" ]; then cp "$sources" "$tmp/sources.fits"; fi
elif command -v source-extractor >/dev/null; then
    printf 'X_IMAGE\nY_IMAGE\nMAG_AUTO\nFLUX_AUTO\n' >"$tmp/xy.param"
    printf 'CONV NORM\n1 2 1\n2 4 2\n1 2 1\n' >"$tmp/xy.conv"
    echo "sources: Source Extractor on the science plane"
    source-extractor "$frame[0]" -CATALOG_NAME "$tmp/sources.fits" -CATALOG_TYPE FITS_1.0 \
        -PARAMETERS_NAME "$tmp/xy.param" -FILTER_NAME "$tmp/xy.conv" -VERBOSE_TYPE QUIET ||
        echo "Source Extractor failed (exit $?): no source list"
    publish "$tmp/sources.fits" "$xyls"
else
    echo "source-extractor is not installed: no source list, so no solution"
    publish "$tmp/sources.fits" "$xyls"
fi

common=(--dir "$tmp" --overwrite --no-plots --new-fits none --temp-axy --index-xyls none
    --rdls none --match none --width "$width" --height "$height"
    --x-column X_IMAGE --y-column Y_IMAGE --sort-column MAG_AUTO --sort-ascending
    --scale-units arcsecperpix --scale-low "$low" --scale-high "$high"
    --crpix-center --cpulimit "$cpulimit" --no-remove-lines "${hint[@]}")
if [ "$solve" = no ]; then
    echo "solve-field skipped (astrometry.solve_field: the WCS comes from a neighbour)"
elif ! command -v solve-field >/dev/null; then
    echo "solve-field is not installed: no solution (install astrometry.net)"
elif [ -s "$tmp/sources.fits" ]; then
    echo "pass 1: blind solve with scale and position hints"
    solve-field "${common[@]}" --config "$solver" --out pass1 --no-verify --uniformize 0 \
        --tweak-order 2 --corr "$tmp/pass1.corr" --wcs "$tmp/pass1.wcs" \
        "$tmp/sources.fits" || echo "solve-field pass 1 failed (exit $?)"
fi
if [ -s "$tmp/pass1.wcs" ]; then
    echo "pass 2: verify pass 1 with all stars, SIP order $sip"
    solve-field "${common[@]}" --config "$verifier" --out pass2 --verify "$tmp/pass1.wcs" \
        --no-verify-uniformize --objs 1000000 --tweak-order "$sip" \
        --corr "$tmp/pass2.corr" --wcs "$tmp/pass2.wcs" "$tmp/sources.fits" ||
        echo "solve-field pass 2 failed (exit $?)"
fi
best=pass2
[ -s "$tmp/pass2.wcs" ] || best=pass1
if [ -s "$tmp/$best.wcs" ]; then
    publish "$tmp/$best.wcs" "$wcs"
    publish "$tmp/$best.corr" "$corr"
    echo "solution: $best"
else
    : >"$wcs"
    : >"$corr"
    echo "solution: none"
fi
