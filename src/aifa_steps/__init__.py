"""Reduction steps for a night of imaging with a small university telescope.

Each module holds one step of the reduction; the Snakemake workflow in ``workflow/`` calls them.
``aifa_steps.simulate`` makes a realistic raw night together with its truth, so that every step
can be tested against known answers.
"""

__version__ = "0.1.0"
