"""Astrometry (rules: workflow/rules/astrometry.smk), one module per job.

- `settings`: the settings of each rule (section ``astrometry`` of the configuration).
- `index`: index files for astrometry.net and the solver configurations (``astrometry_index``).
- `solve`: runs ``workflow/scripts/solve_field.sh`` (the one ``solve-field`` implementation,
  which the rule ``solve_field`` runs) and reads its outputs.
- `match`, `chain`, `target`: asterism matching, the hand-over of solutions along a target's
  time series, and the rule ``astrometry_chain`` that combines them.
- `tan_sip`, `refine`, `reference`, `judge`, `frame`: TAN-SIP fits, the refinement with
  windowed centroids, what it is refined against, the judgement, and the rule
  ``astrometry_frame`` that combines them.
- `plots`: the figures (``astrometry_status``, ``astrometry_plots``); the only module that
  imports matplotlib.
"""
