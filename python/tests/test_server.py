"""FrameServer / FrameHandler (socketserver) and the asyncio helpers over
loopback: frames in order, tiny and coalesced writes, refusals that keep the
connection, connection errors (error frame, then close), busy, idle timeout."""

import asyncio
import socket
import struct
import threading
import unittest

import support  # noqa: F401  (import path)
from lhp import FrameReader, PeerError, raise_for_error, send_frame
from lhp.aio import read_frame, write_frame
from lhp.codec import encode_frame
from lhp.server import FrameHandler, FrameServer


class Upper(FrameHandler):
    def handle_frame(self, header, body):
        if header.get("kind") == "upper":
            self.send(header, body.upper())
        else:
            self.refuse("bad_request", "upper only", header)


class Served:
    def __init__(self, handler=Upper, **kw):
        self.srv = FrameServer(("127.0.0.1", 0), handler, **kw)
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def connect(self):
        s = socket.create_connection(self.srv.server_address[:2], timeout=20)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def read_all(sock):
    r = FrameReader(sock)
    return list(r)


class FrameServerTests(unittest.TestCase):
    def setUp(self):
        self.s = Served()

    def tearDown(self):
        self.s.close()

    def test_replies_in_order_to_coalesced_and_tiny_writes(self):
        frames = [({"kind": "upper", "id": i}, b"abc%d" % i) for i in range(50)]
        wire = b"".join(encode_frame(h, b) for h, b in frames)
        for tiny in (False, True):
            with self.s.connect() as c:
                if tiny:
                    for i in range(len(wire)):
                        c.sendall(wire[i:i + 1])
                else:
                    c.sendall(wire)
                c.shutdown(socket.SHUT_WR)
                got = read_all(c)
            self.assertEqual([(f.header["id"], bytes(f.body)) for f in got],
                             [(i, b"ABC%d" % i) for i in range(50)])

    def test_refusal_keeps_the_connection_and_copies_id(self):
        with self.s.connect() as c:
            send_frame(c, {"kind": "nope", "id": 7})
            send_frame(c, {"kind": "nope"})
            send_frame(c, {"kind": "upper"}, b"ok")
            r = FrameReader(c)
            h1, h2, f3 = r.recv_frame().header, r.recv_frame().header, r.recv_frame()
        self.assertEqual(list(h1), ["kind", "id", "code", "message"])
        self.assertEqual((h1["id"], h1["code"]), (7, "bad_request"))
        self.assertNotIn("id", h2)
        self.assertNotIn("offset", h2)
        with self.assertRaises(PeerError) as cm:
            raise_for_error(h1)
        self.assertFalse(cm.exception.connection)
        self.assertEqual(bytes(f3.body), b"OK")

    def test_decode_error_gets_its_error_frame_then_close(self):
        with self.s.connect() as c:
            send_frame(c, {"kind": "upper"}, b"a")
            c.sendall(b"\x00\x00\x00\x03{}x")          # header_not_json at 4+H1
            r = FrameReader(c)
            first = r.recv_frame()
            err = r.recv_frame().header
            end = r.recv_frame()
        offset = first.offset + 4 + first.header_len + 1 + 4
        self.assertEqual(err, {"kind": "error", "code": "header_not_json",
                               "message": err["message"], "offset": offset})
        self.assertIsNone(end)
        with self.assertRaises(PeerError) as cm:
            raise_for_error(err)
        self.assertTrue(cm.exception.connection)

    def test_unexpected_eof_error_frame_carries_missing(self):
        with self.s.connect() as c:
            c.sendall(b"\x00\x00\x00\x10{")
            c.shutdown(socket.SHUT_WR)
            got = read_all(c)
        self.assertEqual(got[0].header, {
            "kind": "error", "code": "unexpected_eof",
            "message": got[0].header["message"], "offset": 5, "missing": 15})


class Echo(FrameHandler):
    keep_header_octets = True

    def handle_frame(self, header, body):
        self.echo(body)


class EchoTests(unittest.TestCase):
    def test_echo_repeats_the_header_text_octet_for_octet(self):
        s = Served(Echo)
        try:
            head = b'{ "kind":"echo", "n":1E2, "z":-0, "f":0.10, "body_len":2 }'
            wire = struct.pack(">I", len(head)) + head + b"hi"
            with s.connect() as c:
                c.sendall(wire * 3)
                c.shutdown(socket.SHUT_WR)
                got = b""
                while True:
                    more = c.recv(65536)
                    if not more:
                        break
                    got += more
            self.assertEqual(got, wire * 3)
        finally:
            s.close()


class LimitTests(unittest.TestCase):
    def test_busy_past_max_connections(self):
        s = Served(max_connections=1)
        try:
            with s.connect() as c1:
                send_frame(c1, {"kind": "upper"}, b"x")
                self.assertEqual(bytes(FrameReader(c1).recv_frame().body), b"X")
                with s.connect() as c2:
                    got = read_all(c2)
            self.assertEqual([f.header["code"] for f in got], ["busy"])
            self.assertEqual(got[0].header["offset"], 0)
        finally:
            s.close()

    def test_idle_timeout_sends_timeout_with_octets_received(self):
        s = Served(idle_timeout=0.3)
        try:
            with s.connect() as c:
                c.sendall(b"\x00\x00")                # 2 octets, then silence
                got = read_all(c)
            self.assertEqual([(f.header["code"], f.header["offset"])
                              for f in got], [("timeout", 2)])
        finally:
            s.close()

    def test_seed_compat_server_replies_in_seed_compat(self):
        s = Served(profile="seed-compat")
        try:
            with s.connect() as c:
                head = b'{"kind": "upper", "total_size": 2}'
                c.sendall(struct.pack("<i", len(head)) + head + b"hi")
                c.shutdown(socket.SHUT_WR)
                prefix = c.recv(4, socket.MSG_WAITALL)
                (h,) = struct.unpack("<i", prefix)
                rest = c.recv(h + 2, socket.MSG_WAITALL)
            self.assertEqual(rest, b'{"kind":"upper","total_size":2}HI')
        finally:
            s.close()


class AsyncioTests(unittest.TestCase):
    def test_asyncio_server_and_client_tiny_and_coalesced(self):
        async def handle(reader, writer):
            while True:
                f = await read_frame(reader)
                if f is None:
                    break
                write_frame(writer, f.header, f.body[::-1])
                await writer.drain()
            writer.close()

        async def main():
            srv = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = srv.sockets[0].getsockname()[1]
            frames = [({"kind": "rev", "id": i}, b"%05d" % i * (i + 1))
                      for i in range(30)]
            wire = b"".join(encode_frame(h, b) for h, b in frames)
            out = []
            for tiny in (False, True):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                if tiny:
                    for i in range(len(wire)):
                        writer.write(wire[i:i + 1])
                        await writer.drain()
                else:
                    writer.write(wire)
                writer.write_eof()
                while True:
                    f = await read_frame(reader)
                    if f is None:
                        break
                    out.append((f.header["id"], f.body))
                writer.close()
            srv.close()
            await srv.wait_closed()
            return frames, out

        frames, out = asyncio.run(main())
        want = [(h["id"], b[::-1]) for h, b in frames]
        self.assertEqual(out, want + want)

    def test_asyncio_streamed_body_digest_and_hostile_claim(self):
        import hashlib
        import io
        import tracemalloc
        from lhp import DecodeError

        big = b"q" * (3 << 20)
        sha = hashlib.sha256(big).hexdigest()

        async def main():
            r = asyncio.StreamReader()
            r.feed_data(encode_frame({"kind": "f", "sha256": sha}, big))
            head = b'{"body_len":9007199254740991}'
            r.feed_data(struct.pack(">I", len(head)) + head + b"z" * 1000)
            r.feed_eof()
            sink = io.BytesIO()
            f = await read_frame(r, out=sink, max_body_len=2 ** 53 - 1)
            tracemalloc.start()
            try:
                with self.assertRaises(DecodeError) as cm:
                    await read_frame(r, max_body_len=2 ** 53 - 1)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            return f, sink.getvalue(), cm.exception, peak

        f, streamed, err, peak = asyncio.run(main())
        self.assertIsNone(f.body)
        self.assertTrue(streamed == big)
        start = len(encode_frame({"kind": "f", "sha256": sha}, big))
        self.assertEqual((err.code, err.offset, err.missing),
                         ("unexpected_eof", start + 4 + 29 + 1000, 2 ** 53 - 1 - 1000))
        self.assertLess(peak, 4 << 20)


if __name__ == "__main__":
    unittest.main()
