"""The transactional outbox and its relay.

A state change and the event that announces it commit together: the handler calls
`add_to_outbox` on the same connection, inside the same transaction. The relay publishes
unpublished rows in id order with `Nats-Msg-Id` set to the row's `msg_id`, so a relay that
crashes between publish and mark publishes again and JetStream drops the repeat.

A row is deleted once the broker acknowledged it. Marking it published instead (and purging
an hour later) rewrote every row with its index entries and kept an hour of rows (millions
under load) in the table every read and insert went through; an event added again after its
row is gone is published again with the same message id: JetStream's duplicate window drops
it, and after that window the consumers do (their inbox or the sequence each event carries).
"""

import asyncio
import contextlib
import json
import logging
import re
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from pydantic import BaseModel

from fairway_telemetry import inject_headers, trace_headers_only

log = logging.getLogger("fairway.store.outbox")


def notify_channel(schema: str) -> str:
    return f"{schema}_outbox"


async def add_to_outbox(
    conn: asyncpg.Connection,
    subject: str,
    payload: BaseModel,
    *,
    msg_id: str,
    trace_headers: Mapping[str, str] | None = None,
) -> None:
    """Queue `payload` for publication when the surrounding transaction commits.

    `trace_headers` (traceparent…) default to the current span's context, so consumers continue
    the trace that caused this event. A second add with the same `msg_id` is ignored while
    the first waits in the outbox (later, JetStream and the consumers' inboxes drop it).
    """
    # One round trip: the table's trigger wakes the relay when the transaction commits.
    await conn.execute(
        "INSERT INTO outbox (subject, payload, headers, msg_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (msg_id) DO NOTHING",
        *outbox_row(subject, payload, msg_id=msg_id, trace_headers=trace_headers),
    )


def outbox_row(
    subject: str,
    payload: BaseModel,
    *,
    msg_id: str,
    trace_headers: Mapping[str, str] | None = None,
) -> tuple[str, bytes, dict[str, str], str]:
    """The outbox row `add_to_outbox` writes, (subject, payload, headers, msg_id), for a service
    that writes it in the same statement as its state change (one round trip, no explicit
    transaction): `INSERT INTO outbox (subject, payload, headers, msg_id) …`."""
    return subject, payload.model_dump_json(by_alias=True).encode(), _headers(trace_headers), msg_id


def _headers(trace_headers: Mapping[str, str] | None) -> dict[str, str]:
    """The trace headers an event carries: the given ones, else the current span's context."""
    headers = trace_headers_only(trace_headers) if trace_headers else {}
    return headers if "traceparent" in headers else inject_headers()


type OutboxItem = tuple[str, BaseModel, str, Mapping[str, str] | None]
"""An event to queue: (subject, payload, msg_id, trace_headers)."""


async def add_many_to_outbox(conn: asyncpg.Connection, items: Sequence[OutboxItem]) -> None:
    """`add_to_outbox` for many events, `(subject, payload, msg_id, trace_headers)` each, in
    one round trip: the rows get ids (so the relay's publishing order) in the order given."""
    if not items:
        return
    await conn.execute(outbox_insert(1), *outbox_columns(items))


def outbox_insert(first: int) -> str:
    """The statement `add_many_to_outbox` runs, its four parameters numbered from `first`
    (`outbox_columns` gives them): also a data-modifying CTE's body, for a writer that stores
    its rows and queues their events in one statement."""
    s, p, h, m = (f"${first + i}" for i in range(4))
    # ORDER BY the arrays' ordinality: ids are drawn in the order rows are inserted.
    return ("INSERT INTO outbox (subject, payload, headers, msg_id)"
            f" SELECT s, p, h::jsonb, m FROM unnest({s}::text[], {p}::bytea[], {h}::text[],"
            f" {m}::text[]) WITH ORDINALITY AS t(s, p, h, m, n) ORDER BY n"
            " ON CONFLICT (msg_id) DO NOTHING")


def outbox_columns(items: Sequence[OutboxItem]
                   ) -> tuple[list[str], list[bytes], list[str], list[str]]:
    """The parameters of `outbox_insert` for `(subject, payload, msg_id, trace_headers)`
    each (trace headers default to the current span's context, as in `add_to_outbox`)."""
    subjects_, payloads, headers_, msg_ids = [], [], [], []
    for subject, payload, msg_id, trace_headers in items:
        subjects_.append(subject)
        payloads.append(payload.model_dump_json(by_alias=True).encode())
        headers_.append(json.dumps(_headers(trace_headers)))
        msg_ids.append(msg_id)
    return subjects_, payloads, headers_, msg_ids


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def ordering_key(subject: str) -> str:
    """What a row's order is kept within: the workload its subject names (the first token
    that is a workload id: a workload's submission, actions, decisions and phases, on whatever
    subjects, stay in commit order), else the subject itself (a queue, a node, an org unit)."""
    for token in subject.split("."):
        if len(token) == 36 and _UUID.match(token):
            return token
    return subject


@dataclass
class _Round:
    """Rows published together, their acks pending."""

    ids: list[int]
    futures: list[asyncio.Future]
    sent_at: float
    keys: list[str]


class OutboxRelay:
    """Publishes a schema's outbox to JetStream. Every instance of a service runs one; they
    take turns (an advisory lock), so order holds, and JetStream drops repeats by id.

    Rounds are pipelined: a round reads the oldest unpublished rows and publishes them, and
    the next round may follow before the broker has acknowledged them (at most
    `max_in_flight` rounds). A settling task takes the acknowledged rows, oldest round first;
    the next round's read deletes them in the same statement (or, when no round follows
    within `delete_delay`, a statement of their own). Rows in flight, or acknowledged and not
    yet deleted, are not read again by this relay; any other instance would read them (they
    are not deleted yet) and publish them again in id order, and JetStream
    drops the repeats, so the stream still holds each workload's events in commit order. When
    an ack fails, that round's unacknowledged rows and every later round's are read and
    published again.

    A row is not sent while an earlier row of the same workload (`ordering_key`) waits for its
    ack, in an earlier round or in the same one. Without that, the loss of a NATS server
    reorders a workload's events: rows written to the lost connection vanish, a later round
    queued meanwhile reaches the next server first, and the lost ones arrive after it when
    published again. Within one round it is the stream that decides: while a clustered stream
    elects a new leader, a message is refused ("no response from stream") and the next one,
    a moment later, may be stored, so what arrives of a round is not a prefix of it. One row
    per workload in flight keeps every workload's events in commit order whatever arrives.
    """

    def __init__(self, dsn: str, pool: asyncpg.Pool, schema: str, js: JetStreamContext, *,
                 batch: int = 200, poll_seconds: float = 1.0,
                 max_in_flight: int = 4, ack_timeout_seconds: float = 10.0,
                 delete_delay: float | None = None):
        self.dsn = dsn
        self.pool = pool
        self.schema = schema
        self.js = js
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.max_in_flight = max_in_flight
        self.ack_timeout_seconds = ack_timeout_seconds
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._listener: asyncpg.Connection | None = None
        self._in_flight: deque[_Round] = deque()
        self._in_flight_ids: set[int] = set()
        self._in_flight_keys: Counter[str] = Counter()
        self._held_back = False  # rows waited for an earlier row's ack: read again once settled
        # Acknowledged rows wait to be deleted by the next read (one statement does both) or,
        # when none follows soon, by the deleter; until the delete commits they are not read.
        self._acked: list[int] = []
        self._deleting: set[int] = set()
        self._delete_due = asyncio.Event()
        self.delete_delay = min(0.1, poll_seconds) if delete_delay is None else delete_delay
        self._sent = asyncio.Event()  # a round was published: the settler has work
        self._settling = asyncio.Lock()
        self.published = 0
        self._legacy_cleared = False

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name=f"outbox-listen-{self.schema}"),
            asyncio.create_task(self._run(), name=f"outbox-relay-{self.schema}"),
            asyncio.create_task(self._settle_loop(), name=f"outbox-settle-{self.schema}"),
            asyncio.create_task(self._delete_loop(), name=f"outbox-delete-{self.schema}"),
        ]

    def wake(self) -> None:
        """Relay now: for a writer in this process that has just committed outbox rows, so
        its events need not wait for the NOTIFY to come round through PostgreSQL."""
        self._wake.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A last drain, so events committed just before shutdown are not left waiting.
        with contextlib.suppress(Exception):
            await self.relay_once()
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()

    async def _listen(self) -> None:
        # LISTEN needs its own connection: a pooled one is reset (UNLISTEN *) on release.
        while True:
            try:
                lost = asyncio.Event()
                self._listener = await asyncpg.connect(self.dsn)
                self._listener.add_termination_listener(lambda *_, lost=lost: lost.set())
                await self._listener.add_listener(
                    notify_channel(self.schema), lambda *_: self._wake.set()
                )
                self._wake.set()  # catch up on anything committed while not listening
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox listener lost, reconnecting: %r", exc)
                await asyncio.sleep(1)

    async def _run(self) -> None:
        cleaned_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            # Cleared before reading, not after: a commit notified while a batch is being
            # published must wake the next round, not wait for the poll.
            self._wake.clear()
            try:
                while await self._publish_round() == self.batch:
                    pass
                if loop.time() - cleaned_at > 60:
                    await self._clean()
                    cleaned_at = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay failed, will retry: %r", exc)
                await asyncio.sleep(min(0.5, self.poll_seconds))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def relay_once(self) -> int:
        """Publish up to `batch` rows in id order and wait until every round in flight is
        settled; returns how many of this round's rows were acknowledged."""
        count = await self._publish_round()
        before = self.published
        while self._in_flight:
            await self._settle()
        await self._flush_deletes()
        return min(count, self.published - before)

    async def _publish_round(self) -> int:
        """Read the oldest unpublished rows not in flight and publish them without waiting
        for their acks; returns how many were sent.

        One relay per schema reads at a time (an advisory lock held by the reading
        statement), and every message is written in id order, so the stream holds each
        workload's events in the order they were committed.
        """
        while len(self._in_flight) >= self.max_in_flight:
            await self._settle()
        # The lock and the read in one statement, outside any explicit transaction (no BEGIN
        # and COMMIT round trips): no rows when another instance is reading this schema's
        # outbox right now (the CTE runs once: the function is volatile). The lock ends with
        # the statement, so two instances may publish the same rows; each publishes in id
        # order and a workload's rows are committed in id order, so the first copy of each
        # reaches the stream in order, and JetStream drops the second.
        # The rows acknowledged since the last read are deleted by the same statement: at a
        # moderate load a round carries a row or two, and a delete of its own would double the
        # statements per event. The read sees the table as it was before the delete, so they
        # are left out of it like the rows in flight.
        deleting = self._take_acked()
        try:
            rows = await self.pool.fetch(
                "WITH gone AS (DELETE FROM outbox WHERE id = ANY($4::bigint[])),"
                " relay AS (SELECT pg_try_advisory_xact_lock(hashtext($1)) AS mine)"
                " SELECT id, subject, payload, headers, msg_id FROM outbox, relay"
                " WHERE relay.mine AND published_at IS NULL AND id <> ALL($3::bigint[])"
                " ORDER BY id LIMIT $2",
                f"fairway.outbox.{self.schema}", self.batch,
                [*self._in_flight_ids, *self._acked, *self._deleting], deleting,
            )
        except BaseException:
            self._acked[:0] = deleting  # deleted by the next try
            raise
        finally:
            self._deleting.difference_update(deleting)
        if not rows:
            return 0
        futures, sent, keys, too_large = [], [], [], []
        held: set[str] = set()
        in_round: set[str] = set()
        for row in rows:
            key = ordering_key(row["subject"])
            if key in held or key in in_round or self._in_flight_keys[key]:
                held.add(key)  # and every later row of it, so its rows keep their order
                continue
            headers = dict(row["headers"] or {})
            headers["Nats-Msg-Id"] = row["msg_id"]
            try:
                futures.append(await self.js.publish_async(
                    row["subject"], bytes(row["payload"]), headers=headers))
                sent.append(row)
                keys.append(key)
                in_round.add(key)
            except MaxPayloadError as exc:
                too_large.append(row["id"])
                # It can never be sent: retrying would wedge every row behind it.
                log.error("outbox row %s (%s) can never be published, dropped: %s",
                          row["msg_id"], row["subject"], exc)
        if too_large:
            await self.pool.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                                    too_large)
        if held:
            self._held_back = True
        if sent:
            self._in_flight_keys.update(keys)  # after the loop: rows of one round go together
            ids = [row["id"] for row in sent]
            self._in_flight.append(
                _Round(ids, futures, asyncio.get_running_loop().time(), keys))
            self._in_flight_ids.update(ids)
            self._sent.set()
        # A full batch means more may be waiting, unless rows were held back: those are read
        # again once their predecessors are acknowledged (the settler wakes the relay).
        return len(rows) if not held else len(sent) + len(too_large)

    async def _settle_loop(self) -> None:
        while True:
            if not self._in_flight:
                self._sent.clear()
                await self._sent.wait()
                continue
            try:
                await self._settle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("settling published outbox rows failed, will retry: %r", exc)
                await asyncio.sleep(min(0.5, self.poll_seconds))

    async def _settle(self) -> None:
        """Wait for the oldest round's acks, then hand its rows, and those of every later round
        already acknowledged, to the next delete; they are not read again meanwhile."""
        async with self._settling:
            if not self._in_flight:
                return
            head = self._in_flight[0]
            remaining = (head.sent_at + self.ack_timeout_seconds
                         - asyncio.get_running_loop().time())
            await asyncio.wait(head.futures, timeout=max(0.0, remaining))
            acked: list[int] = []
            done_rounds, failed = 0, False
            for round_ in list(self._in_flight):
                if round_ is not head and not all(f.done() for f in round_.futures):
                    break
                for row_id, future in zip(round_.ids, round_.futures, strict=True):
                    error = (TimeoutError() if not future.done() else
                             asyncio.CancelledError() if future.cancelled() else
                             future.exception())
                    if error is not None:
                        log.warning("outbox publish not acknowledged: %r", error)
                        failed = True
                        break
                    acked.append(row_id)
                if failed:
                    break
                done_rounds += 1
            if acked:  # deleted by the next read, or by the deleter if none follows soon
                self._acked.extend(acked)
                self.published += len(acked)
                self._delete_due.set()
            if failed:
                # Only the acknowledged prefix counts: the rest, and every round after it,
                # is read and published again (JetStream drops what did arrive).
                self._in_flight.clear()
                self._in_flight_ids.clear()
                self._in_flight_keys.clear()
                self._wake.set()
            else:
                for _ in range(done_rounds):
                    for key in self._in_flight.popleft().keys:
                        self._in_flight_keys[key] -= 1
                        if not self._in_flight_keys[key]:
                            del self._in_flight_keys[key]
                self._in_flight_ids.difference_update(acked)
                if self._held_back and done_rounds:
                    self._held_back = False
                    self._wake.set()

    def _take_acked(self) -> list[int]:
        """The acknowledged rows, handed to a delete: left out of reads until it commits."""
        taken, self._acked = self._acked, []
        self._deleting.update(taken)
        return taken

    async def _flush_deletes(self) -> None:
        """Delete the acknowledged rows that no read has deleted yet."""
        deleting = self._take_acked()
        if not deleting:
            return
        try:
            await self.pool.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", deleting)
        except BaseException:
            self._acked[:0] = deleting
            raise
        finally:
            self._deleting.difference_update(deleting)

    async def _delete_loop(self) -> None:
        """Acknowledged rows that no read deleted within `delete_delay` are deleted here: the
        outbox empties when the events stop."""
        while True:
            await self._delete_due.wait()
            await asyncio.sleep(self.delete_delay)
            self._delete_due.clear()
            try:
                await self._flush_deletes()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("deleting published outbox rows failed, will retry: %r", exc)
                self._delete_due.set()
                await asyncio.sleep(min(0.5, self.poll_seconds))

    async def _clean(self) -> None:
        async with self.pool.acquire() as conn:
            if not self._legacy_cleared:  # once a process: rows older versions marked and kept
                await conn.execute("DELETE FROM outbox WHERE published_at IS NOT NULL")
                self._legacy_cleared = True
            await conn.execute(
                "DELETE FROM inbox WHERE processed_at < now() - interval '7 days'"
            )
