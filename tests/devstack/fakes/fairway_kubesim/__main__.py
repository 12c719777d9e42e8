"""Fake kubesim: serves /readyz on --port and writes a kubeconfig pointing at it."""

import argparse
import os
from pathlib import Path

from _fake_common import maybe_fail, record, serve

parser = argparse.ArgumentParser()
parser.add_argument("--profile")
parser.add_argument("--kubeconfig", required=True)
parser.add_argument("--port", type=int, required=True)
args, extra = parser.parse_known_args()
record("kubesim", extra=extra)
maybe_fail("kubesim")

KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- name: kubesim
  cluster:
    server: http://127.0.0.1:{args.port}
contexts:
- name: kubesim
  context:
    cluster: kubesim
    user: kubesim
current-context: kubesim
users:
- name: kubesim
  user:
    token: fake
"""


def write_kubeconfig() -> None:
    path = Path(args.kubeconfig)
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(KUBECONFIG)
    os.replace(scratch, path)


serve("kubesim", args.port, before_serving=write_kubeconfig)
