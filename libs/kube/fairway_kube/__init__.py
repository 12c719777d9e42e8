"""Fairway's glue around the official Kubernetes client: configuration and list-then-watch."""

from fairway_kube.calls import ThreadedCalls, parse_body, urgent_calls
from fairway_kube.client import api_client, raw_json, status_code
from fairway_kube.watching import ListWatcher

__all__ = ["ListWatcher", "ThreadedCalls", "api_client", "parse_body", "raw_json", "status_code",
           "urgent_calls"]
