"""Metrics' pure core: synchronous, no I/O.

- `workloads`: one workload's submission and phase events folded into its view, and what the
  event-driven series record for each.
- `projection`: the whole in-memory projection and the `Snapshot` every figure is read from.
- `queries`: telemetry answers, the periodic samples and downsampled time series, from a
  snapshot.
"""
