"""Workloads: submission of the four types, the list and one workload, the actions."""
