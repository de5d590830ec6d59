"""send_frame / recv_frame / FrameReader over loopback TCP: tiny writes,
coalesced writes, streamed bodies, digests, hostile lengths (bounded memory,
clear exceptions)."""

import hashlib
import io
import socket
import struct
import threading
import tracemalloc
import unittest

import support  # noqa: F401  (import path)
from lhp import (DecodeError, EncodeError, FrameReader, recv_frame,
                 send_frame, send_stream)
from lhp.codec import encode_frame, encode_head


def tcp_pair():
    """A connected loopback TCP pair (client, server side)."""
    with socket.create_server(("127.0.0.1", 0)) as lst:
        c = socket.create_connection(lst.getsockname())
        s, _ = lst.accept()
    for x in (c, s):
        x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        x.settimeout(20)
    return c, s


def in_thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


class SendRecvTests(unittest.TestCase):
    def setUp(self):
        self.c, self.s = tcp_pair()

    def tearDown(self):
        self.c.close()
        self.s.close()

    def test_round_trip_and_clean_end(self):
        send_frame(self.c, {"kind": "echo", "id": 1}, b"hello")
        send_frame(self.c, {"kind": "empty"})
        self.c.shutdown(socket.SHUT_WR)
        header, body = recv_frame(self.s)
        self.assertEqual(header, {"kind": "echo", "id": 1, "body_len": 5})
        self.assertEqual(list(header), ["kind", "id", "body_len"])
        self.assertEqual(body, b"hello")
        header, body = recv_frame(self.s)
        self.assertEqual((header, body), ({"kind": "empty"}, b""))
        self.assertIsNone(recv_frame(self.s))

    def test_one_octet_per_write(self):
        frames = [({"kind": "k", "n": i}, bytes([i]) * i) for i in range(20)]
        wire = b"".join(encode_frame(h, b) for h, b in frames)

        def dribble():
            for i in range(len(wire)):
                self.c.sendall(wire[i:i + 1])
            self.c.shutdown(socket.SHUT_WR)
        t = in_thread(dribble)
        got = list(FrameReader(self.s))
        t.join()
        self.assertEqual([(f.header["n"], bytes(f.body)) for f in got],
                         [(h["n"], b) for h, b in frames])

    def test_many_frames_in_one_write(self):
        frames = [({"kind": "k", "n": i}, b"x" * (i % 7)) for i in range(2000)]
        wire = b"".join(encode_frame(h, b) for h, b in frames)
        t = in_thread(lambda: (self.c.sendall(wire),
                               self.c.shutdown(socket.SHUT_WR)))
        n = 0
        while True:
            f = recv_frame(self.s)
            if f is None:
                break
            self.assertEqual(f.header["n"], n)
            self.assertEqual(bytes(f.body), b"x" * (n % 7))
            n += 1
        t.join()
        self.assertEqual(n, 2000)

    def test_large_bodies_in_memory_and_streamed_to_a_file(self):
        big = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 5)
        sha = hashlib.sha256(big).hexdigest()

        def send():
            send_frame(self.c, {"kind": "a", "sha256": sha}, big)
            send_stream(self.c, {"kind": "b", "sha256": sha}, len(big),
                        io.BytesIO(big))
            send_frame(self.c, {"kind": "c"}, b"tail")
        t = in_thread(send)
        f = recv_frame(self.s, max_body_len=64 << 20)
        self.assertEqual(f.header["kind"], "a")
        self.assertTrue(f.body == big)
        sink = io.BytesIO()
        f = recv_frame(self.s, out=sink)
        self.assertEqual((f.header["kind"], f.body), ("b", None))
        self.assertTrue(sink.getvalue() == big)
        self.assertEqual(bytes(recv_frame(self.s).body), b"tail")
        t.join()

    def test_sha256_mismatch_is_a_sticky_digest_mismatch(self):
        head = b'{"kind":"x","sha256":"%s","body_len":3}' % (
            hashlib.sha256(b"abc").hexdigest().encode())
        self.c.sendall(struct.pack(">I", len(head)) + head + b"abd")
        with self.assertRaises(DecodeError) as cm:
            recv_frame(self.s)
        e = cm.exception
        self.assertEqual((e.code, e.section, e.offset),
                         ("digest_mismatch", "6", 4 + len(head)))
        with self.assertRaises(DecodeError) as cm2:
            recv_frame(self.s)
        self.assertIs(cm2.exception, e)
        self.assertEqual(e.error_header(), {
            "kind": "error", "code": "digest_mismatch", "message": e.message,
            "offset": 4 + len(head)})

    def test_timeout_inside_a_header_can_be_retried(self):
        wire = encode_frame({"kind": "k"}, b"body")
        self.c.sendall(wire[:6])
        self.s.settimeout(0.2)
        with self.assertRaises(socket.timeout):
            recv_frame(self.s)
        self.c.sendall(wire[6:])
        self.s.settimeout(20)
        header, body = recv_frame(self.s)
        self.assertEqual((header["kind"], bytes(body)), ("k", b"body"))

    def test_timeout_inside_a_large_body_breaks_the_reader(self):
        head = encode_head({"kind": "k"}, 1 << 20)
        r = FrameReader(self.s)
        self.c.sendall(head + b"x" * 100000)
        self.s.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            r.recv_frame()
        with self.assertRaises(ValueError):
            r.recv_frame()

    def test_seed_compat_profile(self):
        head = b'{"file_name": "a.txt", "file_size": 3}'
        self.c.sendall(struct.pack("<i", len(head)) + head + b"abc")
        send_frame(self.c, {"kind": "x"}, b"12", profile="seed-compat")
        r = FrameReader(self.s, profile="seed-compat")
        f = r.recv_frame()
        self.assertEqual((f.header["file_name"], bytes(f.body)),
                         ("a.txt", b"abc"))
        f = r.recv_frame()
        self.assertEqual((f.header, bytes(f.body)),
                         ({"kind": "x", "body_len": 2}, b"12"))

    def test_encoder_refuses_what_a_receiver_would_reject(self):
        with self.assertRaises(EncodeError):
            send_frame(self.c, {"kind": 1})
        with self.assertRaises(EncodeError):
            send_frame(self.c, {"sha256": "0" * 64}, b"abc")
        with self.assertRaises(EncodeError):
            send_frame(self.c, {"body_len": 4}, b"abc")


class HostileInputTests(unittest.TestCase):
    """Declared lengths never drive allocation: errors come before it, and
    a huge permitted claim costs only what actually arrives."""

    def setUp(self):
        self.c, self.s = tcp_pair()

    def tearDown(self):
        self.c.close()
        self.s.close()

    def assert_error(self, exc, code, offset, missing=None):
        self.assertEqual((exc.code, exc.offset, exc.missing),
                         (code, offset, missing))
        self.assertIn("section", str(exc))

    def test_4_gib_declared_header(self):
        self.c.sendall(b"\xff\xff\xff\xff{")
        tracemalloc.start()
        try:
            with self.assertRaises(DecodeError) as cm:
                recv_frame(self.s)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assert_error(cm.exception, "header_len_too_large", 0)
        self.assertEqual(cm.exception.section, "3.2")
        self.assertLess(peak, 1 << 20)

    def test_4_gib_header_allowed_by_the_limit_costs_what_arrives(self):
        # max_header_len at its maximum: the reader still grows its buffer
        # only as octets arrive; the stream ends after 64 KiB.
        def send():
            self.c.sendall(b"\xff\xff\xff\xff" + b" " * 65536)
            self.c.close()
        t = in_thread(send)
        tracemalloc.start()
        try:
            with self.assertRaises(DecodeError) as cm:
                recv_frame(self.s, max_header_len=2 ** 32 - 1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        t.join()
        self.assert_error(cm.exception, "unexpected_eof", 4 + 65536,
                          2 ** 32 - 1 - 65536)
        self.assertLess(peak, 16 << 20)

    def test_2_pow_53_body_claim_over_the_default_limit(self):
        head = b'{"body_len":9007199254740991}'
        self.c.sendall(struct.pack(">I", len(head)) + head)
        with self.assertRaises(DecodeError) as cm:
            recv_frame(self.s)
        self.assert_error(cm.exception, "body_too_large", 4)
        self.assertEqual(cm.exception.section, "5")

    def test_2_pow_53_body_claim_within_the_limit_costs_what_arrives(self):
        head = b'{"body_len":9007199254740991}'

        def send():
            self.c.sendall(struct.pack(">I", len(head)) + head
                           + b"z" * (3 << 20))
            self.c.close()
        t = in_thread(send)
        tracemalloc.start()
        try:
            with self.assertRaises(DecodeError) as cm:
                recv_frame(self.s, max_body_len=2 ** 53 - 1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        t.join()
        end = 4 + len(head) + (3 << 20)
        self.assert_error(cm.exception, "unexpected_eof", end,
                          2 ** 53 - 1 - (3 << 20))
        self.assertLess(peak, 24 << 20)   # ~ the 3 MiB that arrived, doubled

    def test_http_request_is_named(self):
        self.c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with self.assertRaises(DecodeError) as cm:
            recv_frame(self.s)
        self.assert_error(cm.exception, "header_len_too_large", 0)
        self.assertIn("HTTP", str(cm.exception))

    def test_end_inside_prefix_header_and_body(self):
        for wire, offset, missing in ((b"\x00\x00", 2, 2),
                                      (b"\x00\x00\x00\x05{\"a\"", 8, 1),
                                      (b"\x00\x00\x00\x0e{\"body_len\":3}ab",
                                       20, 1)):
            c, s = tcp_pair()
            c.sendall(wire)
            c.close()
            with self.assertRaises(DecodeError) as cm:
                recv_frame(s)
            s.close()
            self.assert_error(cm.exception, "unexpected_eof", offset, missing)


if __name__ == "__main__":
    unittest.main()
