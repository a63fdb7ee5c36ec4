"""Calibration (rules: workflow/rules/calibration.smk and detector.smk).

Master bias, dark and flat, the bad-pixel mask, calibrated science frames, camera
characterisation and calibration QC.
"""
