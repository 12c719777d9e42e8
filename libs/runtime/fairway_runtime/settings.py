"""Settings every service shares, from the environment (pydantic-settings).

One naming scheme: a variable only one service reads is `FAIRWAY_<SERVICE>_*`, one every
service reads is `FAIRWAY_*`, and the names users already know stay as they are (`NATS_URL`,
`DATABASE_URL`, `KUBECONFIG`, `FAIRWAY_API_PORT`, `FAIRWAY_STATE_DIR`, `FAIRWAY_LOG_LEVEL`, the
standard `OTEL_*`). A renamed variable keeps its old name as a deprecated alias:
`validation_alias=AliasChoices(new, old)`; reading an old name warns. Every field has a
description: the configuration reference in docs/operations.md is generated from these classes
(`make settings-doc`).
"""

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from fairway_bus.settings import NatsClientSettings, nats_servers
from fairway_runtime.gc_tuning import DEFAULT_THRESHOLDS, parse_thresholds
from fairway_telemetry import TracingOptions


@dataclass(frozen=True)
class Variable:
    """The environment variable a setting is read from, and its deprecated older names."""

    name: str
    deprecated: tuple[str, ...] = ()


def variable_of(field_name: str, field: FieldInfo) -> Variable:
    """The variable of one settings field (its alias; the first of its alias choices)."""
    alias = field.validation_alias or field.alias
    if isinstance(alias, AliasChoices):
        names = [str(choice) for choice in alias.choices]
        return Variable(names[0], tuple(names[1:]))
    return Variable(str(alias) if alias else field_name.upper())


def variables(settings: type[BaseSettings]) -> dict[str, Variable]:
    """Field name -> its variable, for every field of a settings class."""
    return {name: variable_of(name, field) for name, field in settings.model_fields.items()}


class ServiceSettings(NatsClientSettings):
    """NATS_URL, DATABASE_URL, FAIRWAY_HTTP_PORT … ; a service subclasses this for its own."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    nats_url: str = Field(
        default="nats://127.0.0.1:4222", alias="NATS_URL",
        description="the NATS server (JetStream enabled) carrying every event and request; "
                    "the servers of a cluster separated by commas")
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/fairway", alias="DATABASE_URL",
        description="the PostgreSQL database; each service keeps its tables in a schema of "
                    "its own")
    http_host: str = Field(
        default="127.0.0.1", alias="FAIRWAY_HTTP_HOST",
        description="address of /healthz, /readyz and /metrics (0.0.0.0 in containers)")
    http_port: int = Field(
        default=0, alias="FAIRWAY_HTTP_PORT",
        description="port of /healthz, /readyz and /metrics; 0 picks a free port")
    state_dir: Path = Field(
        default=Path(".fairway"), alias="FAIRWAY_STATE_DIR",
        description="where files are written (submission's admin.json and admin-token)")
    heartbeat_seconds: float = Field(
        default=2.0, alias="FAIRWAY_HEARTBEAT_SECONDS",
        description="how often the service publishes its heartbeat (submission's /healthz "
                    "aggregates them)")
    db_pool_size: int = Field(
        default=10, alias="FAIRWAY_DB_POOL_SIZE",
        description="PostgreSQL connections per process")
    readiness_probe_seconds: float = Field(
        default=2.0, gt=0, alias="FAIRWAY_READINESS_PROBE_SECONDS",
        description="how often the database is probed for /readyz (also the probe's deadline)")
    broker_liveness_grace_seconds: float = Field(
        default=60.0, gt=0, alias="FAIRWAY_BROKER_LIVENESS_GRACE_SECONDS",
        description="how long the service may be cut off from NATS before /healthz (liveness) "
                    "answers 503 so an orchestrator restarts it; a shorter outage only fails "
                    "/readyz")
    gc_thresholds: str = Field(
        default=DEFAULT_THRESHOLDS, alias="FAIRWAY_GC_THRESHOLDS",
        description="the garbage collector's three thresholds, 'young,middle,old' (CPython's "
                    "own, 700,10,10, ran a full collection every few seconds under thousands "
                    "of changing pods); what start-up loaded is frozen out of collections")
    log_level: str = Field(
        default="INFO", alias="FAIRWAY_LOG_LEVEL",
        description="log level of the service's JSON lines on stderr (with workload and "
                    "trace ids)")

    # Tracing: the standard OpenTelemetry variables (the SDK reads the rest of OTEL_* itself).
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="send traces (OTLP/HTTP) to this Jaeger or collector; unset: spans carry "
                    "trace ids into logs and messages but nothing is exported")
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        description="the same for traces only (wins over OTEL_EXPORTER_OTLP_ENDPOINT)")
    # Text, as the OpenTelemetry specification reads it: only "true" turns the SDK off.
    otel_sdk_disabled: str = Field(
        default="false", alias="OTEL_SDK_DISABLED",
        description="true: export nothing whatever the endpoint (any other value: as unset)")
    otel_traces_exporter: str = Field(
        default="otlp", alias="OTEL_TRACES_EXPORTER",
        description="none: export nothing whatever the endpoint")
    otel_traces_sampler: str | None = Field(
        default=None, alias="OTEL_TRACES_SAMPLER",
        description="the SDK's standard sampler; unset: every span of an exporting service is "
                    "recorded, whatever its parent decided")
    otel_service_name: str | None = Field(
        default=None, alias="OTEL_SERVICE_NAME",
        description="the service name spans carry; unset: fairway- followed by the "
                    "service's name (fairway-scheduler …)")

    @field_validator("nats_url")
    @classmethod
    def _nats_servers(cls, value: str) -> str:
        nats_servers(value)  # names the entry that is not a server URL
        return value

    @field_validator("gc_thresholds")
    @classmethod
    def _valid_thresholds(cls, value: str) -> str:
        parse_thresholds(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _warn_of_deprecated_names(cls, data: Any) -> Any:
        # The environment source hands values over under a field's first name whichever name
        # was set, so the old names are looked for in the environment itself.
        given = {name.upper() for name in os.environ}
        if isinstance(data, dict):
            given |= {str(name).upper() for name in data}
        for variable in variables(cls).values():
            for old in variable.deprecated:
                if old in given:
                    warnings.warn(f"{old} is deprecated: set {variable.name} instead",
                                  FutureWarning, stacklevel=2)
        return data

    def tracing(self) -> TracingOptions:
        """What the tracer provider needs from the OTEL_* variables above."""
        exporting = (self.otel_sdk_disabled.lower() != "true"
                     and self.otel_traces_exporter.lower() != "none"
                     and bool(self.otel_exporter_otlp_traces_endpoint
                              or self.otel_exporter_otlp_endpoint))
        return TracingOptions(exporting=exporting, service_name=self.otel_service_name,
                              sampler_from_environment=bool(self.otel_traces_sampler))
