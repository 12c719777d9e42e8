"""Lifecycle's pure core: the phase fold, the state machine around it, what recording its
steps writes, pod manifests, scheduling rules and node inventory. Synchronous, no I/O."""
