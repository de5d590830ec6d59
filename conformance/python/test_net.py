"""Echo server / client tests over loopback (sections 7.2, 8, 11.2)."""

import hashlib
import os
import socket
import subprocess
import sys
import time
import unittest

# The package lives in python/src (pip-installable); use the copy in this checkout.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python", "src"))

from lhp.codec import decode_all, encode_frame, Decoder, END  # noqa: E402
from lhp.net import Client, EchoServer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def read_all(sock, timeout=3.0):
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            more = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not more:
            break
        data += more
    return data


class EchoTests(unittest.TestCase):
    def setUp(self):
        self.srv = EchoServer("127.0.0.1:0", max_connections=4,
                              idle_timeout=1.0, frame_timeout=2.0).start()

    def tearDown(self):
        self.srv.stop()

    def test_echo_roundtrip(self):
        with Client(self.srv.addr) as c:
            body = bytes(range(256)) * 10
            hdr = {"kind": "echo", "id": 7, "name": "澳门.mp4",
                   "x-extra": {"a": [1, 2.5, None, True, "\u0001"]},
                   "sha256": hashlib.sha256(body).hexdigest()}
            r = c.request(hdr, body)
            self.assertEqual(r.body, body)
            self.assertEqual(list(r.header), list(hdr) + ["body_len"])
            self.assertEqual(r.header["x-extra"], hdr["x-extra"])
            r2 = c.echo({"id": 8})
            self.assertEqual(r2.header, {"kind": "echo", "id": 8})

    def test_echo_bytewise_writes(self):
        frame = encode_frame({"kind": "echo", "id": 1}, b"hello") * 2
        s = socket.create_connection(self.srv.address)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in frame:
            s.sendall(bytes([b]))
        s.shutdown(socket.SHUT_WR)
        frames, err = decode_all(read_all(s))
        s.close()
        self.assertIsNone(err)
        self.assertEqual([f.body for f in frames], [b"hello", b"hello"])

    def test_decode_error_frame_then_close(self):
        s = socket.create_connection(self.srv.address)
        first = encode_frame({"kind": "echo"}, b"x")
        s.sendall(first + b"GET / HTTP/1.1\r\n")
        frames, err = decode_all(read_all(s))
        s.close()
        self.assertIsNone(err)
        self.assertEqual(len(frames), 2)
        self.assertEqual(frames[0].body, b"x")
        e = frames[1].header
        self.assertEqual((e["kind"], e["code"], e["offset"]),
                         ("error", "header_len_too_large", len(first)))
        self.assertIn("HTTP", e["message"])

    def test_unexpected_eof_after_half_close(self):
        s = socket.create_connection(self.srv.address)
        s.sendall(b"\x00\x00\x00\x05{}")
        s.shutdown(socket.SHUT_WR)
        frames, err = decode_all(read_all(s))
        s.close()
        self.assertEqual(frames[0].header["code"], "unexpected_eof")
        self.assertEqual(frames[0].header["offset"], 6)

    def test_busy(self):
        held = [socket.create_connection(self.srv.address) for _ in range(4)]
        time.sleep(0.2)
        s = socket.create_connection(self.srv.address)
        frames, err = decode_all(read_all(s))
        s.close()
        for h in held:
            h.close()
        self.assertEqual(frames[0].header["code"], "busy")

    def test_timeout_mid_frame(self):
        s = socket.create_connection(self.srv.address)
        s.sendall(b"\x00\x00\x00\x10{")
        t = time.monotonic()
        frames, err = decode_all(read_all(s, timeout=5))
        s.close()
        self.assertLess(time.monotonic() - t, 4)
        self.assertEqual(frames[0].header["code"], "timeout")


class EchoServerScriptTests(unittest.TestCase):
    def test_script_prints_address(self):
        p = subprocess.Popen([sys.executable, os.path.join(HERE,
                                                           "echo_server.py"),
                              "--addr", "127.0.0.1:0"],
                             stdout=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline().strip()
            self.assertTrue(line.startswith("listening on 127.0.0.1:"), line)
            with Client(line.split()[-1]) as c:
                self.assertEqual(c.echo({}, b"hi").body, b"hi")
        finally:
            p.terminate()
            p.wait()
            p.stdout.close()


class CodecUnitTests(unittest.TestCase):
    def test_appendix_a(self):
        a2 = bytes.fromhex("000000237b226b696e64223a226563686f222c226964223a31"
                           "2c22626f64795f6c656e223a357d68656c6c6f")
        self.assertEqual(encode_frame({"kind": "echo", "id": 1}, b"hello"), a2)
        a4 = encode_frame({"kind": "error", "code": "header_not_json",
                           "message": "header is not valid JSON", "offset": 4})
        self.assertEqual(a4[:4].hex(), "00000059")

    def test_sticky_and_no_prealloc(self):
        d = Decoder()
        d.feed(b"\x00\x00\x00\x1d" + b'{"body_len":9007199254740991}')
        with self.assertRaises(Exception) as c1:
            d.next_frame()
        with self.assertRaises(Exception) as c2:
            d.next_frame()
        self.assertIs(c1.exception, c2.exception)
        self.assertEqual(c1.exception.code, "body_too_large")
        d = Decoder(max_body_len=2 ** 53 - 1)
        d.feed(b"\x00\x00\x00\x1d" + b'{"body_len":9007199254740991}')
        self.assertEqual(d.next_event().body_len, 2 ** 53 - 1)
        self.assertIsNone(d.next_event())
        self.assertLess(len(d._buf), 100)
        d.feed_eof()
        with self.assertRaises(Exception) as c3:
            d.next_event()
        self.assertEqual(c3.exception.missing, 2 ** 53 - 1)

    def test_seed_compat_roundtrip(self):
        f = encode_frame({"file_name": "a.txt", "file_size": 3}, b"abc",
                         profile="seed-compat")
        self.assertEqual(f[:4], len(f[4:-3]).to_bytes(4, "little"))
        frames, err = decode_all(f, "seed-compat")
        self.assertIsNone(err)
        self.assertEqual(frames[0].header, {"file_name": "a.txt",
                                            "file_size": 3})


if __name__ == "__main__":
    unittest.main()
