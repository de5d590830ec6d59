"""LHP/1 over UDP (spec/lhp-udp.md): one frame per datagram, independent of the Rust code.

    decode_datagram(data, ...)  -> Frame, or raises DatagramError (code, offset, missing)
    error_datagram(err, budget) -> the error frame of section 5.3 within `budget`, or None
    EchoServer(addr, ...)       -> a UDP echo server with the rate limits of section 7 and
                                   the amplification bound of section 6

    python3 -m lhp.udp serve HOST:PORT [--max-datagram N]   # prints "listening on HOST:PORT"

Standard library only.
"""

import hashlib
import os
import socket
import sys
import time

from .codec import Decoder, DecodeError, END, encode_frame

MAX_DATAGRAM_LEN = 65507      # section 3.1
MIN_DATAGRAM_LEN = 512
AMPLIFICATION_FACTOR = 3      # section 6
DEFAULT_MAX_HEADER_LEN = 65536
DEFAULT_MAX_BODY_LEN = 64 * 1024 * 1024


class DatagramError(Exception):
    """A datagram that is not exactly one valid frame (section 4), or too large (3.2)."""

    def __init__(self, code, offset, missing=None, message=None):
        self.code = code
        self.offset = offset
        self.missing = missing
        self.message = message or code
        super().__init__("%s at offset %d: %s" % (code, offset, self.message))

    def as_dict(self):
        d = {"code": self.code, "offset": self.offset}
        if self.missing is not None:
            d["missing"] = self.missing
        return d


def clamped_limits(max_header_len, max_body_len, max_datagram_len):
    """Section 4.1: no limit larger than a datagram can hold."""
    return (min(max_header_len, max_datagram_len - 4),
            min(max_body_len, max_datagram_len - 6))


def decode_datagram(data, profile="lhp1", max_header_len=DEFAULT_MAX_HEADER_LEN,
                    max_body_len=DEFAULT_MAX_BODY_LEN, max_datagram_len=MAX_DATAGRAM_LEN):
    """The one frame of `data` (what one receive into max_datagram_len + 1 octets returned)."""
    if len(data) > max_datagram_len:                                   # 3.2
        raise DatagramError("datagram_too_large", max_datagram_len,
                            message="longer than the %d-octet maximum" % max_datagram_len)
    if not data:                                                        # 4.2
        raise DatagramError("unexpected_eof", 0, 4, "an empty datagram holds no frame")
    mh, mb = clamped_limits(max_header_len, max_body_len, max_datagram_len)
    dec = Decoder(profile, max_header_len=mh, max_body_len=mb)          # 4.1: stream rules
    dec.feed(data)
    dec.feed_eof()
    try:
        frame = dec.next_frame()
    except DecodeError as e:
        raise DatagramError(e.code, e.offset, e.missing, e.message)
    if frame is END or frame is None:                                   # not reachable
        raise DatagramError("unexpected_eof", len(data), 4)
    end = frame.offset + 4 + frame.header_len + len(frame.body)
    if end != len(data):                                                # 4.3
        raise DatagramError("trailing_octets", end,
                            message="%d octet(s) follow the frame" % (len(data) - end))
    return frame


def error_datagram(err, budget, profile="lhp1"):
    """The error frame of section 5.3 in at most `budget` octets (message shortened), or
    None when even an empty message does not fit (section 6: send nothing)."""
    def build(msg):
        items = [("kind", "error"), ("code", err.code), ("message", msg),
                 ("offset", err.offset)]
        if err.missing is not None:
            items.append(("missing", err.missing))
        return encode_frame(items, b"", profile)

    msg = err.message
    while True:
        out = build(msg)
        if len(out) <= budget:
            return out
        if not msg:
            return None
        msg = msg[:len(msg) // 2]


class RateLimiter:
    """Section 7: token buckets in a fixed table, indexed by a keyed hash of the source."""

    def __init__(self, slots=4096, burst=64, per_second=256):
        self.key = os.urandom(16)
        self.burst = burst
        self.rate = per_second
        self.tokens = [float(burst)] * slots
        self.last = [None] * slots

    def allow(self, source, now):
        h = hashlib.blake2b(repr(source).encode(), key=self.key, digest_size=8).digest()
        i = int.from_bytes(h, "big") % len(self.tokens)
        if self.last[i] is not None:
            self.tokens[i] = min(self.burst, self.tokens[i] + (now - self.last[i]) * self.rate)
        self.last[i] = now
        if self.tokens[i] >= 1:
            self.tokens[i] -= 1
            return True
        return False


class EchoServer:
    """An echo server (LHP/1 section 8) over UDP: a valid datagram comes back as it is."""

    def __init__(self, addr=("127.0.0.1", 0), profile="lhp1",
                 max_datagram_len=MAX_DATAGRAM_LEN, factor=AMPLIFICATION_FACTOR):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(addr)
        self.profile = profile
        self.max = max(MIN_DATAGRAM_LEN, min(max_datagram_len, MAX_DATAGRAM_LEN))
        self.factor = min(factor, AMPLIFICATION_FACTOR)
        self.limiter = RateLimiter()

    @property
    def address(self):
        return self.sock.getsockname()

    def handle(self, data, source):
        """The reply datagram for `data` from `source`, or None."""
        if not self.limiter.allow(source, time.monotonic()):
            return None
        budget = min(len(data), self.max + 1) * self.factor             # 6
        try:
            decode_datagram(data, self.profile, max_datagram_len=self.max)
        except DatagramError as e:
            return error_datagram(e, budget, self.profile)
        return data if len(data) <= budget else None

    def serve_forever(self):
        while True:
            data, source = self.sock.recvfrom(self.max + 1)            # 3.2: one more
            reply = self.handle(data, source)
            if reply is not None:
                try:
                    self.sock.sendto(reply, source)
                except OSError:
                    pass


def main(argv):
    if len(argv) < 2 or argv[0] != "serve":
        print(__doc__, file=sys.stderr)
        return 2
    host, port = argv[1].rsplit(":", 1)
    max_len = MAX_DATAGRAM_LEN
    if "--max-datagram" in argv:
        max_len = int(argv[argv.index("--max-datagram") + 1])
    server = EchoServer((host, int(port)), max_datagram_len=max_len)
    print("listening on %s:%d" % server.address, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
