"""asyncpg pools bound to one service's schema."""

import asyncpg
import orjson


def _json_text(value: object) -> str:
    # orjson: a tenth of the stdlib's CPU for the pods and specs every view update writes.
    # Keys that are not strings become strings, as with json.dumps.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=_json_text, decoder=orjson.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool beyond asyncpg's own part (which
    rolls back a transaction left open and drops listeners): nothing. asyncpg's default reset
    sends one more statement per release (unlock every advisory lock, close cursors, UNLISTEN,
    RESET ALL), a round trip for every handler's transaction; pooled connections here keep no
    session state: LISTEN has a connection of its own (the outbox relay), advisory locks are
    taken per transaction, settings are the connection's start-up parameters. Keep it so."""


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10
                      ) -> asyncpg.Pool:
    """A pool whose connections see `schema` first and decode json/jsonb to Python values."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"search_path": f"{schema},public",
                         "application_name": f"fairway-{schema}"},
    )
