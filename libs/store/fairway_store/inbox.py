"""Idempotent handling: remember which messages a consumer has already applied."""

from collections.abc import Sequence

import asyncpg


async def first_delivery(conn: asyncpg.Connection, consumer: str, msg_id: str) -> bool:
    """Record `msg_id` for `consumer` inside the caller's transaction.

    True the first time; False when the message was applied before (a redelivery), in which
    case the handler changes nothing and lets the message be acked.
    """
    status = await conn.execute(
        "INSERT INTO inbox (consumer, msg_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        consumer,
        msg_id,
    )
    return status.endswith(" 1")


async def first_deliveries(conn: asyncpg.Connection, consumer: str,
                           msg_ids: Sequence[str]) -> set[str]:
    """`first_delivery` for a whole batch in one statement: the ids of `msg_ids` seen for the
    first time (an id repeated within the batch is returned once; the caller applies its
    first occurrence only)."""
    if not msg_ids:
        return set()
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, msg_id) SELECT $1, unnest($2::text[])"
        " ON CONFLICT DO NOTHING RETURNING msg_id",
        consumer, list(msg_ids))
    return {row[0] for row in rows}
