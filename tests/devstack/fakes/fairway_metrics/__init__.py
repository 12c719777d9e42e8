"""Fake fairway_metrics for devstack tests."""
