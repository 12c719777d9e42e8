"""Fake fairway_submission for devstack tests."""
