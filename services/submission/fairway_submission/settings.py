from pydantic import Field

from fairway_runtime import ServiceSettings


class SubmissionSettings(ServiceSettings):
    http_port: int = Field(default=8080, alias="FAIRWAY_API_PORT")
    token_ttl_seconds: int = Field(default=12 * 3600, alias="FAIRWAY_TOKEN_TTL_SECONDS")
    admin_token_ttl_seconds: int = Field(default=30 * 24 * 3600,
                                         alias="FAIRWAY_ADMIN_TOKEN_TTL_SECONDS")
    token_secret: str | None = Field(
        default=None, alias="FAIRWAY_TOKEN_SECRET",
        description="HMAC key for access tokens; unset: generated once and kept in the database",
    )
    default_project: str = Field(default="default", alias="FAIRWAY_DEFAULT_PROJECT")
    policy_timeout_seconds: float = Field(default=5.0, alias="FAIRWAY_POLICY_TIMEOUT_SECONDS")
    write_admin_files: bool = Field(default=True, alias="FAIRWAY_WRITE_ADMIN_FILES")
    allow_department_oversubscription: bool = Field(
        default=False, alias="FAIRWAY_ALLOW_DEPARTMENT_OVERSUBSCRIPTION",
        description="let projects' deserved quotas add up to more than their department's")
    login_max_failures: int = Field(default=5, alias="FAIRWAY_LOGIN_MAX_FAILURES")
    login_window_seconds: float = Field(default=300.0, alias="FAIRWAY_LOGIN_WINDOW_SECONDS")
