"""Fake kubesim for devstack tests."""
