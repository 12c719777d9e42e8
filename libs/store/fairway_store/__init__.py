"""Fairway store: asyncpg pools per schema, SQL migrations under an advisory lock, the
transactional outbox with its relay, and the inbox that makes handlers idempotent."""

from fairway_store.inbox import first_deliveries, first_delivery
from fairway_store.migrations import migrate, migrate_dsn
from fairway_store.outbox import (
    OutboxItem,
    OutboxRelay,
    add_many_to_outbox,
    add_to_outbox,
    outbox_columns,
    outbox_insert,
    outbox_row,
)
from fairway_store.pool import create_pool

__all__ = ["OutboxItem", "OutboxRelay", "add_many_to_outbox", "add_to_outbox", "create_pool",
           "first_deliveries", "first_delivery", "migrate", "migrate_dsn", "outbox_columns",
           "outbox_insert", "outbox_row"]
