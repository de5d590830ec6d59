"""Every vector of spec/vectors through the package's I/O paths: the
blocking FrameReader (recv_frame) -- in memory and streamed to a file object
-- and asyncio read_frame, under many splits of the stream.

The sans-IO Decoder runs the same vectors at every cut point in
conformance/python/test_vectors.py; here the receive loops themselves are
under test: whole, a sample of cut points (every cut for streams up to 2 KiB),
and one octet at a time (streams up to 2 KiB)."""

import asyncio
import hashlib
import io
import unittest

import support  # noqa: F401  (import path)
from lhp.aio import read_frame
from lhp.codec import DecodeError
from lhp.sockets import FrameReader
from lhp.vectors import Outcome, build_input, judge, load_vectors

VECTORS = load_vectors()
EXHAUSTIVE_MAX = 2048
SAMPLES = 24


class ChunkSocket:
    """A socket stand-in whose recv_into returns the stream in the given
    chunks (a chunk is split further when the caller's buffer is smaller)."""

    def __init__(self, data, chunks):
        self.data = memoryview(data)
        self.chunks = list(chunks)
        self.pos = 0
        self.left = 0            # rest of the current chunk

    def recv_into(self, buf, nbytes=0):
        if not self.left:
            if not self.chunks:
                return 0
            self.left = self.chunks.pop(0)
        n = min(self.left, len(buf), nbytes or len(buf))
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        self.left -= n
        return n


def plans(data):
    L = len(data)
    yield "whole", [L] if L else []
    if L < 2:
        return
    if L <= EXHAUSTIVE_MAX:
        cuts = range(1, L)
    else:
        step = max(1, L // SAMPLES)
        cuts = sorted(set(list(range(1, 9)) + list(range(1, L, step))
                          + list(range(L - 8, L))))
    for c in cuts:
        yield "cut %d" % c, [c, L - c]
    if L <= EXHAUSTIVE_MAX:
        yield "one octet at a time", [1] * L


def limits_of(v):
    lim = v.get("limits") or {}
    return dict(max_header_len=lim.get("max_header_len", 65536),
                max_body_len=lim.get("max_body_len", 64 << 20))


def record(frames, header, body):
    body = bytes(body)
    frames.append((header, len(body), hashlib.sha256(body).hexdigest(),
                   body if len(body) <= 4096 else None))


def run_reader(data, plan, v, streamed):
    r = FrameReader(ChunkSocket(data, plan), v["profile"],
                    offset=v.get("skip_bytes", 0), buffer_size=4096,
                    **limits_of(v))
    frames = []
    try:
        while True:
            sink = io.BytesIO() if streamed else None
            f = r.recv_frame(sink)
            if f is None:
                return Outcome(frames, None)
            record(frames, f.header, sink.getvalue() if streamed else f.body)
    except DecodeError as e:
        try:
            r.recv_frame()
        except DecodeError as e2:
            assert e2 is e, "error not sticky"
        return Outcome(frames, e)


async def _run_aio(data, plan, v):
    reader = asyncio.StreamReader()
    pos = 0
    for n in plan:
        reader.feed_data(data[pos:pos + n])
        pos += n
    reader.feed_eof()
    frames = []
    kw = dict(profile=v["profile"], offset=v.get("skip_bytes", 0),
              **limits_of(v))
    try:
        while True:
            f = await read_frame(reader, **kw)
            if f is None:
                return Outcome(frames, None)
            record(frames, f.header, f.body)
    except DecodeError as e:
        try:
            await read_frame(reader, **kw)
        except DecodeError as e2:
            assert e2 is e, "error not sticky"
        return Outcome(frames, e)


class VectorIOTests(unittest.TestCase):
    pass


def make_test(v):
    def test(self):
        full = build_input(v["input"])
        data = full[v.get("skip_bytes", 0):]
        loop = asyncio.new_event_loop()
        try:
            for k, (label, plan) in enumerate(plans(data)):
                for path, out in (
                        ("FrameReader", lambda: run_reader(data, plan, v, k & 1)),
                        ("asyncio", lambda: loop.run_until_complete(
                            _run_aio(data, plan, v)))):
                    if path == "asyncio" and label.startswith("cut") and k % 4:
                        continue      # asyncio: a quarter of the cut points
                    ok, _, why = judge(out(), v["expect"])
                    if not ok:
                        self.fail("%s [%s, %s]: %s" % (v["id"], path, label,
                                                       why))
        finally:
            loop.close()
    return test


for _v in VECTORS:
    _name = "test_" + _v["id"].replace("/", "__").replace("-", "_").replace(
        ".", "_")
    setattr(VectorIOTests, _name, make_test(_v))
