"""Fairway service runtime: the skeleton every service runs on."""

from fairway_runtime import gc_tuning
from fairway_runtime.service import Service, main
from fairway_runtime.settings import ServiceSettings

__all__ = ["Service", "ServiceSettings", "gc_tuning", "main"]
