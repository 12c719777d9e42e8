"""Fairway submission service: the public REST API."""
