"""Settings every service shares, from the environment (pydantic-settings)."""

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fairway_runtime.gc_tuning import DEFAULT_THRESHOLDS, parse_thresholds


class ServiceSettings(BaseSettings):
    """NATS_URL, DATABASE_URL, FAIRWAY_HTTP_PORT … ; a service subclasses this for its own."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    nats_url: str = Field(default="nats://127.0.0.1:4222", alias="NATS_URL")
    database_url: str = Field(default="postgresql://postgres@127.0.0.1:5432/fairway",
                              alias="DATABASE_URL")
    http_host: str = Field(default="127.0.0.1", alias="FAIRWAY_HTTP_HOST")
    http_port: int = Field(default=0, alias="FAIRWAY_HTTP_PORT",
                           description="health, readiness and /metrics; 0 picks a free port")
    state_dir: Path = Field(default=Path(".fairway"), alias="FAIRWAY_STATE_DIR")
    heartbeat_seconds: float = Field(default=2.0, alias="FAIRWAY_HEARTBEAT_SECONDS")
    db_pool_size: int = Field(default=10, alias="FAIRWAY_DB_POOL_SIZE")
    readiness_probe_seconds: float = Field(
        default=2.0, gt=0, alias="FAIRWAY_READINESS_PROBE_SECONDS",
        description="how often the database is probed for /readyz (also the probe's deadline)")
    gc_thresholds: str = Field(
        default=DEFAULT_THRESHOLDS, alias="FAIRWAY_GC_THRESHOLDS",
        description="the garbage collector's three thresholds, 'young,middle,old' (see "
                    "fairway_runtime.gc_tuning; CPython's own are 700,10,10)")

    @field_validator("gc_thresholds")
    @classmethod
    def _valid_thresholds(cls, value: str) -> str:
        parse_thresholds(value)
        return value
