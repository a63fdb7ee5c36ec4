"""Raw frames and the night's inventory (rules: workflow/rules/inventory.smk).

Reading raw files whatever wrote them, their headers, overscan and trim, and the table of
what every raw file is.
"""
