"""Persistence of clusters, pod records, placements and results."""
