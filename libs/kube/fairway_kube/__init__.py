"""Fairway Kubernetes glue: client from kubeconfig, list-then-watch."""
