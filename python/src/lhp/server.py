"""A ``socketserver`` base class that hands over frames, not ``recv`` data.

The seeds' concurrent server, with frames::

    import socketserver
    from lhp.server import FrameHandler, FrameServer

    class Echo(FrameHandler):
        def handle_frame(self, header, body):
            if header.get("kind") == "echo":
                self.send(header, body)
            else:
                self.refuse("bad_request", "only echo here", header)

    with FrameServer(("127.0.0.1", 7000), Echo) as srv:
        srv.serve_forever()           # one thread per connection

``FrameHandler.handle`` runs the receive loop (spec/lhp-1.md sections 3-7)
and applies the connection rules: a decode error is answered with its error
frame, then the connection is closed after a short linger (section 7.2); a
connection idle for ``idle_timeout`` gets ``timeout``; the connection past
``max_connections`` gets ``busy`` (offset 0).  ``handle_frame`` is called
once per complete, verified frame, in order.
"""

from __future__ import annotations

import socket
import socketserver
from typing import Any, Dict, Optional, Tuple, Type
import threading
import time

from .codec import (DEFAULT_MAX_BODY_LEN, DEFAULT_MAX_HEADER_LEN, DecodeError,
                    frame_prefix)
from .errors import connection_error_header, request_error_header
from .sockets import (Buffer, FrameReader, Header, Source, Writer, send_frame,
                      send_stream)

__all__ = ["FrameHandler", "FrameServer"]


class FrameServer(socketserver.ThreadingTCPServer):
    """``socketserver.ThreadingTCPServer`` with the LHP settings its
    handlers read: ``profile`` (``"lhp1"`` or ``"seed-compat"``; replies use
    it too), ``max_header_len``, ``max_body_len``, ``idle_timeout``
    (seconds; None: wait forever), ``close_linger`` and
    ``max_connections``.  Handler threads are daemon threads."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, server_address: Tuple[str, int],
                 handler_class: Type[socketserver.BaseRequestHandler],
                 profile: str = "lhp1",
                 max_header_len: int = DEFAULT_MAX_HEADER_LEN,
                 max_body_len: int = DEFAULT_MAX_BODY_LEN,
                 idle_timeout: Optional[float] = 60.0,
                 close_linger: float = 0.25, max_connections: int = 1024,
                 bind_and_activate: bool = True) -> None:
        self.profile = profile
        self.max_header_len = max_header_len
        self.max_body_len = max_body_len
        self.idle_timeout = idle_timeout
        self.close_linger = close_linger
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(server_address, handler_class, bind_and_activate)

    @property
    def address(self) -> str:
        """``"HOST:PORT"`` the server listens on."""
        host, port = self.server_address[:2]
        return "%s:%d" % (str(host), int(port))

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            t = threading.Thread(target=self._refuse_busy, args=(request,),
                                 daemon=True)
            t.start()
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any,
                               client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse_busy(self, sock: socket.socket) -> None:
        header = connection_error_header(
            "busy", "the server is at its connection limit (%d)"
            % self.max_connections, 0)
        _error_then_close(sock, header, self.profile, self.close_linger)


class FrameHandler(socketserver.BaseRequestHandler):
    """Base class for handlers of a ``FrameServer`` (or any
    ``socketserver`` TCP server: settings missing on the server take their
    defaults).  Override ``handle_frame``; optionally ``body_sink`` to
    stream large bodies to files.  Set ``keep_header_octets = True`` on a
    subclass to use ``echo``."""

    keep_header_octets = False

    request: socket.socket

    def setup(self) -> None:
        srv = self.server
        self.profile = getattr(srv, "profile", "lhp1")
        self.idle_timeout = getattr(srv, "idle_timeout", 60.0)
        self.close_linger = getattr(srv, "close_linger", 0.25)
        self.reader = FrameReader(
            self.request, self.profile,
            getattr(srv, "max_header_len", DEFAULT_MAX_HEADER_LEN),
            getattr(srv, "max_body_len", DEFAULT_MAX_BODY_LEN),
            keep_header_octets=self.keep_header_octets)

    # -- override these ----------------------------------------------------

    def handle_frame(self, header: Dict[str, Any],
                     body: Optional[bytearray]) -> None:
        """One complete, verified frame: ``header`` a dict, ``body`` a
        ``bytearray`` (or ``None`` if ``body_sink`` took it).  The default
        refuses it with ``bad_request``."""
        self.refuse("bad_request", "this server does not handle kind %r"
                    % (header.get("kind"),), header)

    def body_sink(self, header: Dict[str, Any]) -> Optional[Writer]:
        """Where the body of the frame with ``header`` goes: ``None`` (the
        default) to get it in memory, or an object with ``write`` that
        receives it in chunks as it arrives."""
        return None

    def body_failed(self, header: Dict[str, Any], sink: Writer,
                    error: Exception) -> None:
        """The body streamed to ``sink`` did not complete (``error``: a
        ``DecodeError`` such as digest_mismatch or unexpected_eof, or an
        ``OSError``): discard what ``sink`` holds.  Default: nothing."""

    # -- use these ---------------------------------------------------------

    def send(self, header: Header, body: Buffer = b"") -> None:
        """Send one frame in the server's profile."""
        send_frame(self.request, header, body, self.profile)

    def echo(self, body: Buffer) -> None:
        """Section 8: reply to the frame being handled with its header text
        octet for octet (numbers, member order and all) and ``body``, in
        the server's profile.  Needs ``keep_header_octets = True``."""
        raw = self.reader.header_octets
        if raw is None:
            raise ValueError("echo() needs keep_header_octets = True")
        self.request.sendall(frame_prefix(len(raw), self.profile) + raw + body)

    def send_stream(self, header: Header, body_len: int, src: Source) -> None:
        """Send one frame whose body is read from ``src`` (``readinto``)."""
        send_stream(self.request, header, body_len, src, self.profile)

    def refuse(self, code: str, message: str,
               request_header: Optional[Dict[str, Any]] = None) -> None:
        """Refuse one request (a request error; the connection goes on),
        copying the request's ``id`` when it had one."""
        rid = None if request_header is None else request_header.get("id")
        self.send(request_error_header(code, message, rid))

    # -- the loop ----------------------------------------------------------

    def handle(self) -> None:
        sock = self.request
        sock.settimeout(self.idle_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        reader = self.reader
        while True:
            try:
                head = reader.recv_head()
                if head is None:
                    return                       # clean end (section 3.4)
                sink = self.body_sink(head.header)
                try:
                    body = reader.recv_body(sink)
                except (DecodeError, OSError) as e:
                    if sink is not None:
                        self.body_failed(head.header, sink, e)
                    raise
            except DecodeError as e:
                _error_then_close(sock, e.error_header(), self.profile,
                                  self.close_linger)
                return
            except socket.timeout:
                header = connection_error_header(
                    "timeout", "no octet for %ss" % (self.idle_timeout,),
                    reader.received)
                _error_then_close(sock, header, self.profile,
                                  self.close_linger)
                return
            except OSError:
                return                           # reset: a transport error
            try:
                self.handle_frame(head.header, body)
            except OSError:
                return                           # the peer went away


def _error_then_close(sock: socket.socket, header: Dict[str, Any],
                      profile: str, linger: float) -> None:
    """Section 7.2: attempt the error frame (bounded by ``linger``, write
    failures ignored), shut down the sending direction, read and discard
    input for at most ``linger``, close."""
    try:
        sock.settimeout(linger)
        send_frame(sock, header, b"", profile)
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_WR)
        end = time.monotonic() + linger
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            if not sock.recv(65536):
                break
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
