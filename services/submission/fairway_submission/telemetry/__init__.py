"""Telemetry: current figures and time series, answered by the metrics service."""
