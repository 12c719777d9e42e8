"""Idempotent handling: remember which messages a consumer has already applied."""

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
