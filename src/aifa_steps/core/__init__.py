"""What every stage shares.

Reading and writing frames, names and formats, atomic writes, provenance, failures of
single frames, logging, observing geometry and star centroids.
"""
