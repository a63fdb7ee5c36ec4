"""The night as a whole (rules: workflow/rules/summary.smk).

Problems that stop a night early, and the status and summary of every frame.
"""
