"""The UDP binding (spec/lhp-udp.md) in lhp.udp: every datagram vector of
spec/vectors/datagram.json through decode_datagram, and the echo server over loopback.

    python3 -m unittest discover -s conformance/python -p test_udp.py -v
"""

import json
import os
import socket
import struct
import sys
import threading
import unittest

# The Python implementation is the package in python/src.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python", "src"))

from lhp.udp import (  # noqa: E402
    DatagramError, EchoServer, decode_datagram, error_datagram, AMPLIFICATION_FACTOR)
from lhp.vectors import build_input  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "spec", "vectors", "datagram.json")


def load():
    with open(VECTORS, encoding="utf-8") as f:
        doc = json.load(f)
    return doc["max_datagram_len"], doc["datagrams"]


def mk(header, body=b""):
    return struct.pack(">I", len(header)) + header + body


def frame_matches(frame, want):
    if frame.header != want["header"] or len(frame.body) != want["body_len"]:
        return False
    return "body_hex" not in want or frame.body.hex() == want["body_hex"]


class DatagramVectors(unittest.TestCase):
    def test_every_datagram_vector(self):
        default_max, datagrams = load()
        self.assertGreater(len(datagrams), 100)
        failures = []
        for d in datagrams:
            m = d.get("max_datagram_len", default_max)
            lim = d.get("limits", {})
            data = build_input(d["input"])[:m + 1]      # a receive buffer of max + 1 octets
            exp = d["expect"]
            try:
                f = decode_datagram(data, d["profile"],
                                    lim.get("max_header_len", 65536),
                                    lim.get("max_body_len", 64 * 1024 * 1024), m)
                if exp["result"] != "valid" or not frame_matches(f, exp["frame"]):
                    failures.append("%s: got a frame, expected %s" % (d["id"], exp))
            except DatagramError as e:
                want = exp.get("error")
                if exp["result"] != "invalid" or e.as_dict() != want:
                    failures.append("%s: got %s, expected %s" % (d["id"], e.as_dict(), exp))
        self.assertEqual(failures, [], "\n".join(failures[:20]))


class EchoOverLoopback(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = EchoServer(max_datagram_len=1024)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    def exchange(self, data):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.5)
        try:
            s.sendto(data, self.server.address)
            return s.recvfrom(70000)[0]
        except socket.timeout:
            return None
        finally:
            s.close()

    def test_echo_truncation_and_two_frames(self):
        frame = mk(b'{"kind":"echo","id":1,"body_len":5}', b"hello")
        self.assertEqual(self.exchange(frame), frame)
        reply = self.exchange(frame + frame)
        self.assertIn(b'"code":"trailing_octets"', reply)
        self.assertIn(b'"offset":%d' % len(frame), reply)
        reply = self.exchange(frame[:-2])
        self.assertIn(b'"code":"unexpected_eof"', reply)
        self.assertIn(b'"missing":2', reply)
        big = mk(b'{"kind":"echo","body_len":2000}', b"x" * 2000)
        reply = self.exchange(big)
        self.assertIn(b'"code":"datagram_too_large","message":', reply)
        self.assertIn(b'"offset":1024', reply)
        self.assertLessEqual(len(reply), 3 * 1025)
        # A 6-octet datagram cannot pay for any error frame: no reply (section 6).
        self.assertIsNone(self.exchange(b"\x00\x00\x00\x02{}" + b"x"))

    def test_error_frames_fit_the_budget(self):
        err = DatagramError("trailing_octets", 6, message="x" * 500)
        out = error_datagram(err, 100)
        self.assertIsNotNone(out)
        self.assertLessEqual(len(out), 100)
        self.assertIsNone(error_datagram(err, 20))
        self.assertEqual(AMPLIFICATION_FACTOR, 3)


if __name__ == "__main__":
    unittest.main()
