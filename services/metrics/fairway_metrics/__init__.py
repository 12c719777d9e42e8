"""Fairway metrics service: projections and Prometheus series."""
