"""Fairway policy service: defaults and rules for workloads."""
