"""The workflow's configuration: the default file, its schema, and the errors a wrong
configuration gives (dry runs)."""

import yaml
from snakemake.utils import validate

from aifa_steps.simulate import get_preset, plan_night
from aifa_steps.simulate.night import night_config

from ..helpers import DEFAULT_CONFIG, SCHEMA, run_snakemake, write_config


def test_default_config_is_valid_and_gets_defaults():
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    validate(cfg, str(SCHEMA))
    assert cfg["frame_types"]["light"][0] == "LIGHT"
    assert "g" in cfg["filters"]
    assert cfg["reference_catalogue"]["source"] == "file"


def test_default_config_describes_the_demo_night():
    preset = get_preset("demo")
    _, transit = plan_night(preset, 2025)
    expected = night_config(preset, "raw", "work", transit)
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert cfg["simulate"]["preset"] == "demo"
    for key in ("instrument", "site", "targets"):
        assert cfg[key] == expected[key], key


def test_a_typo_in_the_config_names_the_key(tmp_path):
    cfg = write_config(tmp_path / "bad.yaml", raw_dri="x")
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    assert "raw_dri" in proc.stdout + proc.stderr


def test_a_wrong_value_names_the_key(tmp_path):
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg["instrument"]["gain"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(path), check=False)
    assert proc.returncode != 0
    assert "gain" in proc.stdout + proc.stderr


def test_missing_raw_folder_without_simulation_is_a_clear_error(tmp_path):
    cfg = write_config(
        tmp_path / "c.yaml",
        simulate=None,
        raw_dir=str(tmp_path / "nowhere"),
        work_dir=str(tmp_path / "work"),
    )
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    assert "nowhere" in proc.stderr + proc.stdout and "does not exist" in proc.stderr + proc.stdout


def test_a_nights_configfile_replaces_the_default_night(tiny_night, tmp_path):
    proc = run_snakemake(
        tmp_path,
        "-n",
        "--configfile",
        str(tiny_night / "config.yaml"),
        "--config",
        f"work_dir={tmp_path / 'w'}",
    )
    text = proc.stdout + proc.stderr
    assert "simulate_night" not in text  # the demo night's simulate section did not leak in
    assert "inventory" in text
