# Shared paths and helpers for all rules.
from pathlib import Path

RAW = Path(config["raw_dir"])
WORK = Path(config["work_dir"])
LOGS = WORK / "logs"
SIMULATE = config.get("simulate")


def raw_night_missing_message():
    return (
        f"raw_dir {RAW} does not exist. Point raw_dir in the configuration at the "
        "night's folder, or add a 'simulate' section to create a simulated night."
    )


if not SIMULATE and not RAW.is_dir():
    raise WorkflowError(raw_night_missing_message())
