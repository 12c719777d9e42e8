"""asyncpg pools bound to one service's schema."""

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10
                      ) -> asyncpg.Pool:
    """A pool whose connections see `schema` first and decode json/jsonb to Python values."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings={"search_path": f"{schema},public",
                         "application_name": f"fairway-{schema}"},
    )
