"""`python -m aifa_steps.init RAW_DIR` drafts a schema-valid night configuration."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from snakemake.utils import validate

from aifa_steps.init import draft_config

HEADERS = Path(__file__).parent / "data" / "headers"
SCHEMA = Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def cut_out(path: Path, header: fits.Header, shape=(20, 30), **cards) -> None:
    """A small frame with a real header; BIASSEC/TRIMSEC scaled to the cut-out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = header.copy()
    for key in ("NAXIS1", "NAXIS2", "BZERO", "BSCALE", "BITPIX"):
        header.remove(key, ignore_missing=True)
    if "BIASSEC" in header:
        header["BIASSEC"] = "[27:30,1:20]"
        header["TRIMSEC"] = "[2:25,1:20]"
    header.update(cards)
    data = (np.random.default_rng(0).normal(1000, 5, shape)).astype(np.int16)
    fits.PrimaryHDU(data, header).writeto(path)


@pytest.fixture(scope="module")
def lois_night(tmp_path_factory):
    root = tmp_path_factory.mktemp("lois")
    bias = fits.Header.fromtextfile(HEADERS / "lowell_lois_bias.hdr")
    flat = fits.Header.fromtextfile(HEADERS / "lowell_lois_skyflat.hdr")
    light = fits.Header.fromtextfile(HEADERS / "lowell_lois_object.hdr")
    for k in range(3):
        cut_out(root / "zero" / f"z{k}.fits", bias)
        cut_out(root / "flat" / f"f{k}.fits", flat)
        cut_out(root / "5945" / f"l{k}.fits", light, UTCSTART=f"02:{27 + 5 * k}:31.13")
    return root


def drafted(raw_dir: Path) -> tuple[dict, str, list[str]]:
    text, notes = draft_config(raw_dir, work_dir="results/test")
    config = yaml.safe_load(text)
    validate(config, str(SCHEMA))  # raises for a schema violation; fills in defaults
    return config, text, notes


def test_drafts_a_valid_config_from_lois_headers(lois_night):
    config, text, notes = drafted(lois_night)
    assert config["raw_dir"] == str(lois_night)
    inst = config["instrument"]
    assert (inst["gain"], inst["read_noise"]) == ("auto", "auto")  # measured from the night
    # The lights' WCS (from the observatory's pipeline) wins over its SECPIXX keyword (0.981,
    # the header's unbinned PIXSCAL 0.327 x 3): 1.107"/px agrees with the optics (1.07 m at
    # f/8, 15 um pixels binned 3x3: 1.09"/px).
    assert inst["pixel_scale"] == pytest.approx(1.1074, abs=1e-4)
    assert config["site"]["latitude"] == pytest.approx(35.09675)
    assert config["site"]["elevation"] == pytest.approx(2206.0)
    target = config["targets"]["5945 Roachapproach"]
    assert target["kind"] == "field" and target["filters"] == ["VR"]
    assert target["ra"] == pytest.approx(124.6246, abs=1e-3)
    assert config["readout"]["overscan"] == "header"
    # The comments say what was found and what to check.
    assert "DATE-OBS + UTC-OBS (9)" in text
    assert "BIASSEC = [27:30,1:20] (9)" in text
    assert "size after trim: 24x20 (9)" in text
    assert "ccdsum      CCDSUM (9)" in text
    assert any(n.startswith("targets:") for n in notes)


def test_lights_only_night_with_local_time_and_nothing_known(tmp_path):
    """The real transit night of the issue: no types, local time with a zone, no site."""
    for k in range(3):
        header = fits.Header()
        header["EXPTIME"] = 60.0
        header["FILTER"] = "V"
        header["OBJECT"] = "WASP-33"
        header["DATE-OBS"] = f"2017-12-19T18:{33 + k:02d}:43.317-0700"
        header["GAIN"] = 100  # a gain setting of the camera software, not e-/ADU
        header["XPIXSZ"] = 5.4
        header["FOCALLEN"] = 214.0
        cut_out(tmp_path / "night" / f"wasp33_{k:03d}.fits", header)
    config, text, notes = drafted(tmp_path / "night")
    assert config["instrument"]["gain"] == "auto" and config["instrument"]["read_noise"] == "auto"
    assert any("100 is not in e-/ADU" in n for n in notes)
    assert config["instrument"]["pixel_scale"] == pytest.approx(206.265 * 5.4 / 214.0, abs=1e-3)
    assert config["site"]["latitude"] == 0.0
    assert any("NOT IN THE HEADERS" in n and n.startswith("site") for n in notes)
    assert "3 DATE-OBS values carry a time zone" in text
    assert "light (3)" in text and "No calibration frames" in text


def test_command_line_writes_yaml_to_stdout_and_notes_to_stderr(lois_night):
    result = subprocess.run(
        [sys.executable, "-m", "aifa_steps.init", str(lois_night)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert yaml.safe_load(result.stdout)["targets"]
    assert "to check" in result.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "aifa_steps.init", str(lois_night / "nothing")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
