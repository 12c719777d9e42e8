"""Fake fairway_scheduler for devstack tests."""
