"""Submission's pure core: who may do what (access), the API's error shape, the platform's
health from heartbeats and a unit's queue status. Synchronous, no I/O; the slices' own pure
checks live in their `checks` modules."""
