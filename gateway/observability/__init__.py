"""Metrics and structured logs: the lowest layer, so every package may record into it.

Imports only the standard library and prometheus_client; callers pass plain values (no domain types).
"""
