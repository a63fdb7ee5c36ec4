"""The schema owns the defaults: every step's settings class agrees with it."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import yaml

from aifa_steps.core.config import StepSettings, settings_classes

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def schema_section(schema: dict, dotted: str) -> dict:
    """The ``properties`` of a (nested) section of the config schema.

    ``*`` stands for any key of a map of sections (``targets.*``: every target's section,
    the map's ``additionalProperties``).
    """
    node = schema
    for part in dotted.split("."):
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    return node.get("properties", {})


def comparable(value):
    return list(value) if isinstance(value, tuple) else value


CLASSES = settings_classes()


def test_the_stages_read_their_settings_through_step_settings():
    assert len(CLASSES) >= 1
    assert all(issubclass(c, StepSettings) for c in CLASSES)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_settings_defaults_are_the_schemas(cls):
    schema = yaml.safe_load(SCHEMA.read_text())
    properties = schema_section(schema, cls.section)
    for field in fields(cls):
        if not field.init:
            continue
        assert field.name in properties, f"{cls.__name__}.{field.name} is not in {cls.section}"
        default = field.default
        if default is MISSING and field.default_factory is not MISSING:
            default = field.default_factory()
        if default is MISSING or "default" not in properties[field.name]:
            continue
        assert comparable(default) == properties[field.name]["default"], (
            f"{cls.__name__}.{field.name}: {default!r} in the code, "
            f"{properties[field.name]['default']!r} in the schema"
        )
