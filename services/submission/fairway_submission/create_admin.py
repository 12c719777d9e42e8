"""Create the first real administrator in a real deployment (where nobody reads the embedded
stack's .fairway/admin.json):

    DATABASE_URL=postgresql://… FAIRWAY_ADMIN_PASSWORD=… \\
        python -m fairway_submission.create_admin alice

Creates the user (or resets its password) with a cluster-wide "System administrator" access
rule, straight in submission's schema. The password comes from FAIRWAY_ADMIN_PASSWORD or is
prompted for; it is never printed. Afterwards: `fairway login --url https://… -u alice`, and
delete the bootstrap `admin` user with `DELETE /api/v1/users/{id}`.
"""

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fairway_store import migrate_dsn
from fairway_submission import repository as repo
from fairway_submission.core.access import SYSTEM_ADMIN
from fairway_submission.identity.auth import hash_password

SCHEMA = "submission"


class CreateAdminSettings(BaseSettings):
    """What the command reads from the environment."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, alias="DATABASE_URL",
                                     description="Fairway's PostgreSQL")
    admin_password: str | None = Field(default=None, alias="FAIRWAY_ADMIN_PASSWORD",
                                       description="the new administrator's password; unset: "
                                                   "prompted for")


async def create_admin(database_url: str, username: str, password: str) -> bool:
    """True when the user was created, False when it existed (its password is reset)."""
    await migrate_dsn(database_url, SCHEMA, Path(__file__).parent / "migrations")
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        async with conn.transaction():
            hashed = hash_password(password)
            created = await repo.create_user(conn, username, hashed, SYSTEM_ADMIN)
            if not created:
                await repo.set_password(conn, username, hashed)
            await repo.create_rule(conn, subject_type="user", subject_id=username,
                                   role_name=SYSTEM_ADMIN, scope_type="cluster", scope_id="",
                                   created_by="create_admin")
        return created
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("username")
    args = parser.parse_args(argv)
    settings = CreateAdminSettings()
    database_url = settings.database_url
    if not database_url:
        sys.exit("set DATABASE_URL to Fairway's PostgreSQL")
    password = settings.admin_password or getpass.getpass("password: ")
    if len(password) < 8:
        sys.exit("the password must have at least 8 characters")
    created = asyncio.run(create_admin(database_url, args.username, password))
    print(f"{'created' if created else 'updated'} System administrator {args.username}")


if __name__ == "__main__":
    main()
