# syntax=docker/dockerfile:1
# One image for every Fairway process; the command picks which one runs:
#   docker build -t fairway .
#   docker run fairway python -m fairway_scheduler     (submission, policy, lifecycle, metrics …)
#   docker run fairway python -m fairway_bus.bootstrap (once per NATS, before the services)
#   docker run fairway python -m fairway_kubesim …     (the simulated cluster, for demos)
# One image rather than five: the services share almost all of their dependencies, so five
# images would hold five copies of the same layers; one tag also keeps a deployment's
# services on the same build. See docs/operations.md.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: resolve from uv.lock into a self-contained virtualenv --------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv
WORKDIR /app
# Byte-compiled at build time (faster start, read-only root file system at run time); copied,
# not hard-linked, out of the cache mount; the base image's Python, never a downloaded one.
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.12 UV_PROJECT_ENVIRONMENT=/app/.venv
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
COPY tools tools
# --no-editable: the packages are copied into the venv, so the run stage needs no sources.
# Only what runs in a container: the five services, kubesim and the bus bootstrap — not the
# dev stack (embedded NATS/PostgreSQL binaries) nor the dev dependencies.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
      --package fairway-submission --package fairway-policy --package fairway-scheduler \
      --package fairway-lifecycle --package fairway-metrics --package fairway-kubesim \
      --package fairway-bus

# --- run: the interpreter, the virtualenv, a user without privileges -----------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="fairway" \
      org.opencontainers.image.description="Fairway GPU workload manager (all services)" \
      org.opencontainers.image.source="https://example.invalid/fairway"
RUN groupadd --system --gid 10001 fairway \
 && useradd --system --uid 10001 --gid fairway --home-dir /app --no-create-home fairway \
 && mkdir -p /state && chown fairway:fairway /state
COPY --from=build --chown=root:root /app/.venv /app/.venv
WORKDIR /app
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    FAIRWAY_HTTP_HOST=0.0.0.0 FAIRWAY_HTTP_PORT=9000 FAIRWAY_STATE_DIR=/state
USER 10001:10001
# 8080: submission's public API; 9000: every service's /healthz, /readyz and /metrics.
EXPOSE 8080 9000
CMD ["python", "-m", "fairway_submission"]
