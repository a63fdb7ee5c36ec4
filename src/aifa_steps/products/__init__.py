"""Science products (rules: workflow/rules/products.smk).

Light curves and transit fits, stacks, colour images and colour-magnitude diagrams.
"""
