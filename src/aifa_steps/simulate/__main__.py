"""Entry point for ``python -m aifa_steps.simulate``."""

import sys

from .cli import main

sys.exit(main())
