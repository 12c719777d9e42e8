"""Fairway scheduler service: fair share, placement and decisions."""
