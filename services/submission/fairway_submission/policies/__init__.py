"""Policies: defaults and rules per workload type and scope, kept by the policy service."""
