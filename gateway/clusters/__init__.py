"""Cluster registry, cluster file loading, health and live capacity."""
