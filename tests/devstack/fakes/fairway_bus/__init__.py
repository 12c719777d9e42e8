"""Fake fairway_bus for devstack tests (only the bootstrap)."""
