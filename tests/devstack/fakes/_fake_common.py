"""Shared code of the fake processes: record the environment, serve health endpoints."""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RECORDED_PREFIXES = ("FAIRWAY_", "OTEL_", "NATS_URL", "DATABASE_URL", "KUBECONFIG")


def record(name: str, **extra: object) -> None:
    state = Path(os.environ["FAIRWAY_STATE_DIR"])
    env = {k: v for k, v in os.environ.items() if k.startswith(RECORDED_PREFIXES)}
    data = {"name": name, "pid": os.getpid(), "argv": sys.argv, "env": env, **extra}
    (state / f"fake-{name}.json").write_text(json.dumps(data))


def maybe_fail(name: str) -> None:
    if os.environ.get("FAKE_FAIL") == name:
        print(f"boom {name}", flush=True)
        sys.exit(3)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path in ("/healthz", "/readyz", "/metrics")
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"not found")

    def log_message(self, *args: object) -> None:
        pass


def serve(name: str, port: int, before_serving=None) -> None:
    """Serve /healthz and /readyz on 127.0.0.1:port until SIGTERM (exit 0)."""

    def on_term(signum: int, frame: object) -> None:
        print(f"{name} got SIGTERM", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    server = ThreadingHTTPServer(("127.0.0.1", port), _Health)
    if before_serving is not None:
        before_serving()
    print(f"{name} serving on {port}", flush=True)
    server.serve_forever()


def run_service() -> None:
    # Run as `python -m fairway_<name>`: the package's directory names the service.
    name = Path(sys.argv[0]).parent.name.removeprefix("fairway_")
    record(name)
    maybe_fail(name)
    serve(name, int(os.environ["FAIRWAY_HTTP_PORT"]))
