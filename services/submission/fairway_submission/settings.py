"""Submission's settings: the shared ones, the public API, access tokens and the organisation."""

from ipaddress import IPv4Network, IPv6Network, ip_network

from pydantic import AliasChoices, Field, field_validator

from fairway_runtime import ServiceSettings


def _renamed(setting: str) -> AliasChoices:
    """FAIRWAY_SUBMISSION_<setting>, still accepting its older name FAIRWAY_<setting>."""
    return AliasChoices(f"FAIRWAY_SUBMISSION_{setting}", f"FAIRWAY_{setting}")


class SubmissionSettings(ServiceSettings):
    """The public API's port, access tokens, logins, and what submission asks of policy."""

    http_port: int = Field(
        default=8080, alias="FAIRWAY_API_PORT",
        description="port of the public API, which also serves /healthz, /readyz and /metrics "
                    "(instead of FAIRWAY_HTTP_PORT)")
    token_ttl_seconds: int = Field(
        default=12 * 3600, validation_alias=_renamed("TOKEN_TTL_SECONDS"),
        description="how long an access token issued at login stays valid")
    admin_token_ttl_seconds: int = Field(
        default=30 * 24 * 3600, validation_alias=_renamed("ADMIN_TOKEN_TTL_SECONDS"),
        description="how long the administrator token written to the state directory stays "
                    "valid")
    token_secret: str | None = Field(
        default=None, validation_alias=_renamed("TOKEN_SECRET"),
        description="HMAC key for access tokens; unset: generated once and kept in the database",
    )
    default_project: str = Field(
        default="default", validation_alias=_renamed("DEFAULT_PROJECT"),
        description="the project created at start, so a fresh installation can take workloads")
    policy_timeout_seconds: float = Field(
        default=5.0, validation_alias=_renamed("POLICY_TIMEOUT_SECONDS"),
        description="how long a request waits for the policy service before it fails with 503")
    remember_seconds: float = Field(
        default=2.0, ge=0, le=60, alias="FAIRWAY_SUBMISSION_REMEMBER_SECONDS",
        description="how long the API keeps a caller's access rules, the organisation a "
                    "submission reads and the policy service's answers before reading them "
                    "again; a change made through this API applies at once, one made elsewhere "
                    "(another replica, by hand) within this many seconds; 0: read every time")
    view_pause_seconds: float = Field(
        default=0.1, ge=0, le=5, alias="FAIRWAY_SUBMISSION_VIEW_PAUSE_SECONDS",
        description="after a batch of phase or pod-group events smaller than a full fetch, wait "
                    "this long before the next, so batches fill (fewer transactions; the "
                    "workload view the API shows lags by as much)")
    write_admin_files: bool = Field(
        default=True, validation_alias=_renamed("WRITE_ADMIN_FILES"),
        description="write admin.json and admin-token (the bootstrap administrator's "
                    "credentials) to the state directory at start")
    allow_department_oversubscription: bool = Field(
        default=False, validation_alias=_renamed("ALLOW_DEPARTMENT_OVERSUBSCRIPTION"),
        description="let projects' deserved quotas add up to more than their department's")
    login_max_failures: int = Field(
        default=5, validation_alias=_renamed("LOGIN_MAX_FAILURES"),
        description="failed logins of one user or service account from one client address "
                    "allowed within the login window before further attempts of that pair "
                    "answer 429 (the same name from elsewhere, and other names from the same "
                    "address, are not held back)")
    login_window_seconds: float = Field(
        default=300.0, validation_alias=_renamed("LOGIN_WINDOW_SECONDS"),
        description="the window over which failed logins are counted")
    max_body_bytes: int = Field(
        default=512 * 1024, ge=1024, le=768 * 1024, alias="FAIRWAY_SUBMISSION_MAX_BODY_BYTES",
        description="the largest request body the API reads; a larger one answers 413. At "
                    "most 768 KiB, so that what is accepted always fits a message on the bus "
                    "(NATS carries 1 MiB by default)")
    login_client_max_failures: int = Field(
        default=25, ge=1, alias="FAIRWAY_SUBMISSION_LOGIN_CLIENT_MAX_FAILURES",
        description="failed logins from one client address, across all names, within the "
                    "login window after which that address's attempts are taken one at a time "
                    "(against spraying one password over many names); they wait their turn "
                    "rather than being refused")
    login_client_pace_seconds: float = Field(
        default=1.0, gt=0, le=60, alias="FAIRWAY_SUBMISSION_LOGIN_CLIENT_PACE_SECONDS",
        description="the time between two login attempts of a client address past its cap "
                    "of failures across names")
    trusted_proxies: str = Field(
        default="", alias="FAIRWAY_SUBMISSION_TRUSTED_PROXIES",
        description="comma-separated addresses or CIDR blocks of the reverse proxies in front "
                    "of the API (e.g. 10.0.0.0/8): only a request from one of them has its "
                    "client address read from X-Forwarded-For; unset: the header is ignored")
    kubeconfig: str | None = Field(
        default=None, alias="KUBECONFIG",
        description="the cluster whose pod logs the API reads (GET /workloads/{id}/pods/{pod}"
                    "/logs; it only lists pods and reads logs); unset: the in-cluster service "
                    "account")
    log_streams: int = Field(
        default=32, ge=1, le=1024, alias="FAIRWAY_SUBMISSION_LOG_STREAMS",
        description="pod logs the API reads from Kubernetes at once (a followed log holds one "
                    "until it ends or its reader leaves); more wait for a free one")

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"not an address or CIDR block: {part!r}") from None
        return value

    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(ip_network(p.strip(), strict=False)
                     for p in self.trusted_proxies.split(",") if p.strip())
