# One image for every Fairway service; the command picks the service.
#   docker build -t fairway .   then   docker run fairway python -m fairway_lifecycle
FROM python:3.12-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
COPY tools tools
RUN uv sync --frozen --no-dev --all-packages

FROM python:3.12-slim
WORKDIR /app
COPY --from=build /app /app
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1
USER 65532:65532
CMD ["python", "-m", "fairway_submission"]
