"""What a handler is told of a delivery: the same as the NATS client's own reading of it."""

import pytest
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError

from fairway_bus.broker import _delivery

REPLIES = [
    "$JS.ACK.FAIRWAY_PHASES.metrics-phases.3.12345.6789.1733480000000000000.17",
    "$JS.ACK.hub.ACCHASH.FAIRWAY_PHASES.metrics-phases.3.12345.6789.1733480000000000000.17",
    "$JS.ACK.hub.ACCHASH.FAIRWAY_PHASES.metrics-phases.3.12345.6789.1733480000000000000.17.tok",
]


@pytest.mark.parametrize("reply", REPLIES)
def test_a_delivery_reads_its_reply_subject_as_the_client_does(reply):
    raw = Msg(_client=None, subject="fairway.phases.x", reply=reply, data=b"{}",
              headers={"Nats-Msg-Id": "m-1"})
    delivery = _delivery(raw)
    meta = Msg(_client=None, subject="s", reply=reply).metadata
    assert (delivery.delivered, delivery.stream_sequence) == (meta.num_delivered,
                                                               meta.sequence.stream) == (3, 12345)
    assert delivery.msg_id == "m-1" and delivery.headers == {"Nats-Msg-Id": "m-1"}
    unnamed = _delivery(Msg(_client=None, subject="s", reply=reply))
    assert unnamed.msg_id == f"{meta.stream}:12345" == "FAIRWAY_PHASES:12345"


def test_a_message_not_from_jetstream_is_no_delivery():
    with pytest.raises(NotJSMessageError):
        _delivery(Msg(_client=None, subject="s", reply="_INBOX.abc"))
