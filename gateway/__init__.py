"""Podgate: a multi-cluster Kubernetes pod dispatch gateway."""

__version__ = "0.1.0"
