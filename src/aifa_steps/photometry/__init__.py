"""Photometry (rules: workflow/rules/refcat.smk and photometry.smk).

Reference catalogues, detection, background and forced apertures per frame, zero points and
calibrated magnitudes.
"""
