"""The watcher's line splitting: events cut anywhere by the HTTP chunks come out whole."""

import json

from fairway_kube.watching import _lines


class _Stream:
    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks

    def stream(self, amt=None, decode_content=False):
        yield from self.chunks


def test_events_split_across_chunks_and_many_per_chunk_come_out_whole_in_order():
    events = [{"type": "MODIFIED", "object": {"metadata": {"name": f"p{i}", "x": "é" * i}}}
              for i in range(50)]
    data = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    # Chunks of every size from 1 byte up, so cuts fall inside events and between them.
    chunks, i, size = [], 0, 1
    while i < len(data):
        chunks.append(data[i:i + size])
        i, size = i + size, size * 2 + 1
    chunks.insert(2, b"")
    got = [json.loads(line) for line in _lines(_Stream(chunks)) if line]
    assert got == events


def test_a_partial_last_line_is_not_an_event():
    assert list(_lines(_Stream([b'{"a": 1}\n{"b"']))) == [b'{"a": 1}']
