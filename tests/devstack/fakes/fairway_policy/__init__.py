"""Fake fairway_policy for devstack tests."""
