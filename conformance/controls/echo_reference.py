#!/usr/bin/env python3
"""A small, correct LHP/1 echo server (spec/lhp-1.md sections 7, 8, 11.2, with
the error model of the round-2 decisions), and the negative controls built on
it: each `--break CLASS` breaks exactly one behaviour.

    python3 echo_reference.py --addr 127.0.0.1:0 [--read-timeout-ms 400 ...]
    python3 echo_reference.py --break no-timeouts ...

The first line on stdout is `listening on HOST:PORT`.

Behaviour (the reference):
- echo: the reply is the request's header text octet for octet, with the
  profile's prefix, and the same body (section 8); replies in request order;
- a frame of another kind gets a request error frame
  {"kind":"error","id":I,"code":"bad_request","message":M} (no offset; `id`
  only if the request had one); the connection goes on;
- a decode error gets {"kind":"error","code":C,"message":M,"offset":N
  [,"missing":K]}, then: shut down the sending direction, discard input for at
  most close_linger, close;
- deadlines: idle_timeout at a frame boundary; a frame's prefix and header
  within read_timeout of its first octet; its body within read_timeout +
  B / min_body_rate of the header; on expiry a `timeout` error frame whose
  offset is the number of octets received, then the close above;
- a write that makes no progress for write_timeout: close, no error frame;
- more than max_connections connections: `busy` (offset 0), then the close;
- end of stream at a frame boundary: close (everything was answered).

Controls (`--break`), each failing one class of conversation flags:
  no-limit        never sends `busy`                    (busy)
  no-timeouts     never times out a slow, idle or non-reading peer
                                                        (timeout-*)
  preallocate     allocates and zeroes each declared body on its header (memory)
  no-error-frame  closes without an error frame         (error-frame)
  keep-reading    after a fatal error frame keeps reading until its idle timeout
                                                        (close-after-error)
  reorder         answers requests that arrive in one read in reverse order
                                                        (pipelining)
"""

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

# The Python implementation is the pip-installable package in python/src.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python", "src"))

from lhp.codec import (Decoder, DecodeError, Head, BodyChunk,  # noqa: E402
                       FrameEnd, END)

BREAKS = ("no-limit", "no-timeouts", "preallocate", "no-error-frame",
          "keep-reading", "reorder")


class Settings:
    def __init__(self, a):
        self.profile = a.profile
        self.idle = a.idle_timeout_ms / 1000.0
        self.read = a.read_timeout_ms / 1000.0
        self.rate = max(1, a.min_body_rate)
        self.write = a.write_timeout_ms / 1000.0
        self.linger = a.close_linger_ms / 1000.0
        self.max_connections = a.max_connections
        self.max_header_len = a.max_header_len
        self.max_body_len = a.max_body_len
        self.broken = a.broken


def frame_octets(profile, header_text, body=b""):
    fmt = ">I" if profile == "lhp1" else "<i"
    return struct.pack(fmt, len(header_text)) + header_text + body


def header_text(members):
    return json.dumps(members, separators=(",", ":"),
                      ensure_ascii=False).encode()


class WriteStalled(Exception):
    pass


class Conn:
    def __init__(self, sock, s):
        self.sock = sock
        self.s = s
        self.received = 0

    def write(self, data):
        """Write everything; a write that makes no progress for write_timeout
        raises WriteStalled (section 11.2)."""
        view = memoryview(data)
        while view:
            self.sock.settimeout(None if "no-timeouts" in self.s.broken
                                 else self.s.write)
            try:
                n = self.sock.send(view)
            except socket.timeout:
                raise WriteStalled()
            view = view[n:]

    def fatal(self, code, message, offset, missing=None):
        """Connection error (E3): the error frame, bounded by close_linger,
        then shut down, discard input for close_linger, close."""
        if "no-error-frame" not in self.s.broken:
            members = {"kind": "error", "code": code, "message": message,
                       "offset": offset}
            if missing is not None:
                members["missing"] = missing
            try:
                self.sock.settimeout(self.s.linger)
                self.sock.sendall(frame_octets(self.s.profile,
                                               header_text(members)))
            except OSError:
                pass
        if "keep-reading" in self.s.broken and code != "timeout":
            self.keep_reading()
            return
        self.linger_close()

    def keep_reading(self):
        """The broken behaviour: go on reading until the idle timeout."""
        while True:
            self.sock.settimeout(self.s.idle)
            try:
                if not self.sock.recv(65536):
                    break
            except OSError:
                break
        self.close()

    def linger_close(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
            end = time.monotonic() + self.s.linger
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                if not self.sock.recv(65536):
                    break
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Server:
    def __init__(self, addr, s):
        host, _, port = addr.rpartition(":")
        self.sock = socket.create_server((host.strip("[]") or "127.0.0.1",
                                          int(port)), backlog=256)
        self.s = s
        self.lock = threading.Lock()
        self.active = 0

    @property
    def addr(self):
        return "%s:%d" % self.sock.getsockname()[:2]

    def serve_forever(self):
        while True:
            conn, _ = self.sock.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                over = (self.active >= self.s.max_connections
                        and "no-limit" not in self.s.broken)
                if not over:
                    self.active += 1
            target = self.refuse if over else self.handle
            threading.Thread(target=target, args=(conn,), daemon=True).start()

    def refuse(self, sock):
        Conn(sock, self.s).fatal(
            "busy", "at the connection limit (%d)" % self.s.max_connections, 0)

    def handle(self, sock):
        try:
            self.connection(Conn(sock, self.s))
        except WriteStalled:
            sock.close()
        except OSError:
            sock.close()
        finally:
            with self.lock:
                self.active -= 1

    def connection(self, c):
        s = self.s
        dec = Decoder(s.profile, max_header_len=s.max_header_len,
                      max_body_len=s.max_body_len)
        raw = bytearray()          # octets of the frame in progress
        raw_base = 0               # absolute offset of raw[0]
        last_octet = time.monotonic()
        frame_start = None         # when the first octet of a frame came
        body_deadline = None       # set when a header completes
        head = None
        body = []
        prealloc = None
        no_timeouts = "no-timeouts" in s.broken
        while True:
            now = time.monotonic()
            if body_deadline is not None:
                deadline = body_deadline
            elif frame_start is not None:
                deadline = frame_start + s.read
            else:
                deadline = last_octet + s.idle
            c.sock.settimeout(None if no_timeouts
                              else max(0.0, deadline - now))
            try:
                data = c.sock.recv(65536)
            except socket.timeout:
                c.fatal("timeout", "no octet in time", c.received)
                return
            except ConnectionResetError:
                c.close()
                return
            now = time.monotonic()
            if data:
                c.received += len(data)
                last_octet = now
                if frame_start is None:
                    frame_start = now
                raw += data
                dec.feed(data)
            else:
                dec.feed_eof()
            replies = []
            try:
                while True:
                    ev = dec.next_event()
                    if ev is None:
                        break
                    if ev is END:
                        self.flush(c, replies)
                        c.close()
                        return
                    if isinstance(ev, Head):
                        start = ev.offset + 4 - raw_base
                        text = bytes(raw[start:start + ev.header_len])
                        head = (ev.header, text)
                        body = []
                        body_deadline = now + s.read + ev.body_len / s.rate
                        if "preallocate" in s.broken:
                            prealloc = bytearray(b"\x00") * ev.body_len
                    elif isinstance(ev, BodyChunk):
                        body.append(ev.data)
                    elif isinstance(ev, FrameEnd):
                        del raw[:dec.offset - raw_base]
                        raw_base = dec.offset
                        replies.append(self.answer(head, b"".join(body)))
                        head, body, prealloc = None, [], None
                        body_deadline = None
                        frame_start = now if raw else None
            except DecodeError as e:
                self.flush(c, replies)
                c.fatal(e.code, e.message or e.code, e.offset, e.missing)
                return
            self.flush(c, replies)

    def flush(self, c, replies):
        if "reorder" in self.s.broken:
            replies = replies[::-1]
        for r in replies:
            c.write(r)

    def answer(self, head, body):
        members, text = head
        if members.get("kind") == "echo":
            return frame_octets(self.s.profile, text, body)
        reply = {"kind": "error"}
        if "id" in members:
            reply["id"] = members["id"]
        reply["code"] = "bad_request"
        reply["message"] = "this server only answers kind \"echo\""
        return frame_octets(self.s.profile, header_text(reply))


def argument_parser(description):
    """The flags of the reference servers: address, profile, the settings of
    spec section 11.2 (the harness's `{config_flags}`), limits."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--addr", default="127.0.0.1:0")
    ap.add_argument("--profile", default="lhp1",
                    choices=("lhp1", "seed-compat"))
    ap.add_argument("--idle-timeout-ms", type=int, default=60000)
    ap.add_argument("--read-timeout-ms", type=int, default=30000)
    ap.add_argument("--min-body-rate", type=int, default=65536)
    ap.add_argument("--write-timeout-ms", type=int, default=30000)
    ap.add_argument("--close-linger-ms", type=int, default=250)
    ap.add_argument("--max-connections", type=int, default=1024)
    ap.add_argument("--max-header-len", type=int, default=65536)
    ap.add_argument("--max-body-len", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--break", dest="broken", action="append", default=[],
                    choices=BREAKS)
    return ap


def main(argv=None):
    a = argument_parser(__doc__.splitlines()[0]).parse_args(argv)
    srv = Server(a.addr, Settings(a))
    print("listening on %s" % srv.addr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
