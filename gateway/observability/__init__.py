"""Metrics, traces, logs, health and the debug endpoint."""
