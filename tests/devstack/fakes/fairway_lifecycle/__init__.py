"""Fake fairway_lifecycle for devstack tests."""
