"""Fairway bus: FastStream NATS broker factory, JetStream bootstrap, retries and dead letters."""

from fairway_bus.broker import (
    Delivery,
    Received,
    durable_batch_subscriber,
    durable_subscriber,
    jetstream,
    make_broker,
)
from fairway_bus.limits import MessageTooLarge
from fairway_bus.publish import publish_model, publish_raw
from fairway_bus.request import NoReply, connection, request

__all__ = ["Delivery", "MessageTooLarge", "NoReply", "Received", "connection",
           "durable_batch_subscriber", "durable_subscriber", "jetstream", "make_broker",
           "publish_model", "publish_raw", "request"]
