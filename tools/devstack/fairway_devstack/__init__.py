"""Fairway devstack: embedded NATS, PostgreSQL, kubesim and the five services on one machine.

- `servers`: `EmbeddedNats`, `EmbeddedPostgres`, `free_port` (the servers from their wheels).
- `stack`: `Stack` / `StackConfig` (the whole platform as OS processes), `read_stack_info`.
- `up`: `main()` behind `fairway up`.
- `testing`: `infra_endpoints`, `fresh_database`, `running_stack` for pytest.
"""

from fairway_devstack.servers import EmbeddedNats, EmbeddedPostgres, ServerError, free_port
from fairway_devstack.stack import SERVICES, Stack, StackConfig, StackError, read_stack_info

__all__ = [
    "SERVICES",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "ServerError",
    "Stack",
    "StackConfig",
    "StackError",
    "free_port",
    "read_stack_info",
]
