"""Fairway devstack: embedded NATS, PostgreSQL, kubesim and the five services on one machine."""
