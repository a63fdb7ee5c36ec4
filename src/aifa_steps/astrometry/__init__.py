"""Astrometry (rules: workflow/rules/astrometry.smk).

Index files for astrometry.net, what follows a solve-field run, TAN-SIP fits, refinement
against a reference catalogue, the time-series chain and the astrometry figures.
"""
