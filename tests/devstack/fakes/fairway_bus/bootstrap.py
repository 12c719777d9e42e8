"""Fake bus bootstrap: checks NATS_URL answers, records its environment, exits 0."""

import os
import socket
from urllib.parse import urlsplit

from _fake_common import maybe_fail, record

record("bootstrap")
maybe_fail("bootstrap")
url = urlsplit(os.environ["NATS_URL"])
with socket.create_connection((url.hostname, url.port), timeout=5) as conn:
    assert conn.recv(4) == b"INFO"
print("streams and consumers in place", flush=True)
