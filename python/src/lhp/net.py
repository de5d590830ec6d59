"""Blocking LHP/1 client and threaded echo server (spec/lhp-1.md sections
7.2, 8, 9, 11.2).  Standard library only."""

import socket
import threading
import time

from .codec import (Decoder, DecodeError, EncodeError, END, encode_frame,
                    DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_BODY_LEN)

RECV_SIZE = 65536


def _nodelay(sock):
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def parse_addr(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class TimeoutExpired(Exception):
    """An idle or per-frame timeout (section 11.2); not a decode error."""


class Connection:
    """One LHP connection: a decoder on the receiving direction and the
    canonical encoder on the sending direction."""

    def __init__(self, sock, profile="lhp1",
                 max_header_len=DEFAULT_MAX_HEADER_LEN,
                 max_body_len=DEFAULT_MAX_BODY_LEN,
                 idle_timeout=30.0, frame_timeout=120.0):
        self.sock = sock
        self.profile = profile
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.received = 0             # octets read from the socket
        self.decoder = Decoder(profile, max_header_len=max_header_len,
                               max_body_len=max_body_len)
        _nodelay(sock)

    def send_frame(self, header, body=b""):
        """Encode (canonical form) and write one frame with a single
        sendall (section 9: one write, loop until written)."""
        self.sock.sendall(encode_frame(header, body, self.profile))

    def recv_frame(self):
        """Return the next Frame, or None at a clean end of stream.
        Raises DecodeError or TimeoutExpired."""
        d = self.decoder
        deadline = None
        while True:
            f = d.next_frame()
            if f is END:
                return None
            if f is not None:
                return f
            # the per-frame clock runs only while a frame is partially
            # received; between frames only the idle timeout applies
            if deadline is None and self.frame_timeout and d.mid_frame:
                deadline = time.monotonic() + self.frame_timeout
            timeout = self.idle_timeout
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutExpired("frame not complete within %.1fs"
                                         % self.frame_timeout)
                timeout = left if timeout is None else min(timeout, left)
            self.sock.settimeout(timeout)
            try:
                data = self.sock.recv(RECV_SIZE)
            except socket.timeout:
                raise TimeoutExpired("no data for %.1fs" % timeout)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if data:
                self.received += len(data)
                d.feed(data)
            else:
                d.feed_eof()

    def send_error(self, code, message, offset=None, timeout=1.0,
                   missing=None):
        """Best-effort error frame (section 7.2 step 2): bounded by a short
        timeout, failures ignored.  With `offset` it is a connection error
        (`missing` only for unexpected_eof); without, a request refusal."""
        header = {"kind": "error", "code": code, "message": message}
        if offset is not None:
            header["offset"] = offset
            if missing is not None:
                header["missing"] = missing
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(encode_frame(header, b"", self.profile))
        except (OSError, EncodeError):
            pass

    def close_gracefully(self, drain_time=0.5):
        """Shut down the sending direction, briefly drain input (so a TCP
        reset does not discard the error frame), then close (7.2 step 3)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            end = time.monotonic() + drain_time
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                if not self.sock.recv(RECV_SIZE):
                    break
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Client(Connection):
    """Blocking client::

        with Client("127.0.0.1:7000") as c:
            reply = c.request({"kind": "echo", "id": 1}, b"hello")
    """

    def __init__(self, addr, profile="lhp1", connect_timeout=10.0, **kw):
        host, port = parse_addr(addr) if isinstance(addr, str) else addr
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        super().__init__(sock, profile, **kw)

    def request(self, header, body=b""):
        """Send one frame and return the next frame received (None if the
        server closed cleanly)."""
        self.send_frame(header, body)
        return self.recv_frame()

    def echo(self, header, body=b""):
        h = dict(header)
        h["kind"] = "echo"
        return self.request(h, body)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class EchoServer:
    """Threaded echo server (section 8).

    - a frame with "kind":"echo" is answered with a frame with the same
      members in the same order and the same body (re-encoded canonically);
    - a decode error: error frame (code, message, offset), then close;
    - more than `max_connections` concurrent connections: error frame with
      application code `busy`, then close;
    - idle / per-frame timeouts: error frame with code `timeout`, then close;
    - frames of other kinds: error frame `bad_request` (connection stays
      open; the stream is still in sync); frames of kind "error" are ignored.
    """

    def __init__(self, addr="127.0.0.1:0", profile="lhp1",
                 max_header_len=DEFAULT_MAX_HEADER_LEN,
                 max_body_len=DEFAULT_MAX_BODY_LEN, max_connections=64,
                 idle_timeout=30.0, frame_timeout=120.0, log=None):
        host, port = parse_addr(addr)
        self.sock = socket.create_server((host, port), backlog=128)
        self.address = self.sock.getsockname()[:2]
        self.profile = profile
        self.max_header_len = max_header_len
        self.max_body_len = max_body_len
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.log = log or (lambda *a: None)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self._thread = None

    @property
    def addr(self):
        return "%s:%d" % self.address

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass

    def serve_forever(self):
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                continue
            if not self._slots.acquire(blocking=False):
                threading.Thread(target=self._refuse_busy, args=(conn,),
                                 daemon=True).start()
                continue
            threading.Thread(target=self._handle, args=(conn, peer),
                             daemon=True).start()

    def _connection(self, conn):
        return Connection(conn, self.profile, self.max_header_len,
                          self.max_body_len, self.idle_timeout,
                          self.frame_timeout)

    def _refuse_busy(self, conn):
        c = self._connection(conn)
        c.send_error("busy", "server is at its connection limit (%d)"
                     % self.max_connections, offset=0)
        c.close_gracefully()

    def _handle(self, conn, peer):
        c = self._connection(conn)
        try:
            while True:
                try:
                    f = c.recv_frame()
                except DecodeError as e:
                    self.log("%s: %s" % (peer, e))
                    c.send_error(e.code, e.message, e.offset,
                                 missing=e.missing)
                    c.close_gracefully()
                    return
                except TimeoutExpired as e:
                    self.log("%s: timeout: %s" % (peer, e))
                    c.send_error("timeout", str(e), offset=c.received)
                    c.close_gracefully()
                    return
                if f is None:
                    c.close()
                    return
                kind = f.header.get("kind")
                if kind == "echo":
                    try:
                        reply = encode_frame(f.header, f.body, self.profile)
                    except EncodeError as e:
                        c.send_error("internal", "cannot re-encode: %s" % e)
                        continue
                    c.sock.settimeout(self.frame_timeout)
                    c.sock.sendall(reply)
                elif kind == "error":
                    continue
                else:
                    c.send_error("bad_request",
                                 "this server only answers kind \"echo\"")
        except OSError as e:
            self.log("%s: socket error: %s" % (peer, e))
            c.close()
        finally:
            self._slots.release()
