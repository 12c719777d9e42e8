"""Policy's pure core: synchronous and deterministic, no I/O.

- `fields`: the catalogue of spec fields a policy may name, and the rules each kind takes.
- `paths`: reading and writing a field path (`compute.gpuDevicesRequest`) in a spec tree.
- `policies`: scopes, and one scope's policy document checked (and patched).
- `merge`: the effective policy of a branch (cluster → department → project).
- `rules`: an effective policy applied to a submitted spec: defaults, rules, imposed values.
- `evaluation`: a submitted spec in, the effective spec or every violation out.
"""
