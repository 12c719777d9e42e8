"""Fairway lifecycle service: pods, binding and the phase fold."""
