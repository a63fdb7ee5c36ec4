"""How configuration reaches the code: one frozen dataclass per step, read from its section.

The workflow validates ``config/config.yaml`` against ``workflow/schemas/config.schema.yaml``,
which fills in every default: **the schema owns the defaults**. Each step's settings are a
frozen dataclass derived from `StepSettings`; its fields are keys of one config section
(``section`` names it, dotted for nested sections), and its own defaults repeat the schema's
only so that the functions can be called from Python without a configuration
(``tests/test_config.py`` checks that they agree with the schema).

A script builds the settings with ``Settings.from_config(snakemake.params.<section>)``; a rule
passes only the keys the step uses with ``keys_of(config[...], *Settings.keys())`` (in
``workflow/rules/common.smk``), so changing another key does not rerun the rule.

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Clip(StepSettings):
...     section = "calibration"
...     sigma: float = 3.0
>>> Clip.from_config({"sigma": 4, "other": 1})
Clip(sigma=4)
>>> Clip.keys()
('sigma',)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

__all__ = ["StepSettings", "settings_classes"]

S = TypeVar("S", bound="StepSettings")


@dataclass(frozen=True)
class StepSettings:
    """Base of the settings of one step: fields are keys of the config section ``section``."""

    #: Dotted path of the config section the fields come from (``photometry.detection``).
    section: ClassVar[str] = ""

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The config keys this step reads (its init fields)."""
        return tuple(f.name for f in fields(cls) if f.init)

    @classmethod
    def from_config(cls: type[S], section: Mapping[str, Any], **extra: Any) -> S:
        """Settings from a config section; keys of other steps are ignored.

        Parameters
        ----------
        section : mapping
            The config section (validated, so with the schema's defaults) or the subset of it
            that the rule passed.
        **extra
            Values that do not come from the section (for example the detector's saturation
            level from the inventory); they override the section.

        Returns
        -------
        StepSettings
            An instance of the class it is called on.
        """
        names = set(cls.keys())
        values = {key: value for key, value in section.items() if key in names}
        values.update(extra)
        return cls(**values)


def settings_classes() -> list[type[StepSettings]]:
    """Every settings class of the package that names a config section (for the schema test).

    Importing the stage packages registers their classes; this imports them first.
    """
    import importlib
    import pkgutil

    import aifa_steps

    for module in pkgutil.walk_packages(aifa_steps.__path__, "aifa_steps."):
        if not module.name.endswith("__main__") and ".simulate" not in module.name:
            importlib.import_module(module.name)

    found: list[type[StepSettings]] = []
    stack = list(StepSettings.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.section:
            found.append(cls)
    return sorted(found, key=lambda c: (c.__module__, c.__name__))
