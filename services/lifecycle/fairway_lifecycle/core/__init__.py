"""Lifecycle's pure core: the phase fold, the state machine around it, pod manifests,
scheduling rules and node inventory. Synchronous, no I/O: dicts and contracts in and out."""
