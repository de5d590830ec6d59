"""LHP/1 over a blocking socket: ``send_frame`` and ``recv_frame``.

The two calls the seeds' readers write by hand, done right::

    import socket
    from lhp import send_frame, recv_frame

    sock = socket.create_connection(("127.0.0.1", 7000))
    send_frame(sock, {"kind": "echo", "id": 1}, b"hello")
    header, body = recv_frame(sock)     # None instead at a clean end

``recv_frame`` loops until the whole frame is there (TCP delivers a byte
stream, not messages: spec/lhp-1.md section 2), checks the header length
against ``max_header_len`` and the body length against ``max_body_len``
before allocating anything for them (sections 3.2, 5), validates the header
(section 4.5) and verifies ``sha256`` (and, in ``seed-compat``, ``md5``)
when present (section 6).  Bad input raises ``DecodeError`` with the
spec's ``code``, ``section`` and absolute ``offset``; errors are sticky.

Receiving is buffered: one ``recv_into`` can carry many small frames, so a
socket read with ``recv_frame`` must be read *only* with ``recv_frame``
(its reader keeps what it read ahead).  Large bodies go straight from the
socket into their destination -- the body's own buffer, or a file object
given as ``out`` -- without intermediate copies.
"""

from __future__ import annotations

import socket
import weakref
from typing import Any, Iterator, Mapping, Optional, Protocol, Tuple, Union

from .codec import (DEFAULT_MAX_BODY_LEN, DEFAULT_MAX_HEADER_LEN, DecodeError,
                    Frame, Head, _HeaderError, body_digests, encode_head,
                    header_len_from_prefix, parse_header)

__all__ = ["FrameReader", "recv_frame", "send_frame", "send_stream",
           "reader_for"]

#: A header to send: a mapping in the order the members go on the wire (or a
#: list of (name, value) pairs).
Header = Union[Mapping[str, Any], "list[tuple[str, Any]]"]
#: Any bytes-like body.
Buffer = Union[bytes, bytearray, memoryview]


class Writer(Protocol):
    """Where a streamed body goes: anything with ``write`` (a file opened
    ``"wb"``).  It must consume the data before returning (the buffer is
    reused)."""

    def write(self, data: Buffer, /) -> Any: ...


class Source(Protocol):
    """Where a streamed body comes from: anything with ``readinto``."""

    def readinto(self, buffer: memoryview, /) -> Optional[int]: ...

#: Size of a reader's receive buffer (and of the chunks a streamed body is
#: received in).
BUFFER_SIZE = 256 * 1024

#: A body up to this size is allocated whole once its header has passed the
#: limit checks; above it, the body's buffer grows as octets arrive, so a
#: peer that claims a large body and sends little pins little memory.
PREALLOC_MAX = 1024 * 1024

# Bodies at least this large bypass the read-ahead buffer.
_DIRECT_MIN = BUFFER_SIZE // 4


class FrameReader:
    """The receiving direction of one connection (spec/lhp-1.md sections
    3-7): a read-ahead buffer filled with ``recv_into`` and the checks of
    ``lhp.codec`` applied to each frame.

    ``recv_frame()`` returns a ``Frame`` (``header, body = frame``), or
    ``None`` at a clean end of stream (section 3.4).  ``received`` is the
    number of octets read from the socket so far; ``offset`` the absolute
    offset of the next frame (``offset`` when created: the position of the
    socket's first octet in the stream, 0 for a new connection).  With
    ``keep_header_octets``, ``header_octets`` is the last header's text as
    received (for an echo that repeats it octet for octet, section 8)."""

    def __init__(self, sock: socket.socket, profile: str = "lhp1",
                 max_header_len: int = DEFAULT_MAX_HEADER_LEN,
                 max_body_len: int = DEFAULT_MAX_BODY_LEN,
                 buffer_size: int = BUFFER_SIZE, offset: int = 0,
                 keep_header_octets: bool = False) -> None:
        if profile not in ("lhp1", "seed-compat"):
            raise ValueError("unknown profile %r" % (profile,))
        self.sock = sock
        self.profile = profile
        self.max_header_len = max_header_len
        self.max_body_len = max_body_len
        self._buf = bytearray(buffer_size)
        self._view = memoryview(self._buf)
        self._start = 0          # unread octets are _buf[_start:_end]
        self._end = 0
        self.offset = offset     # absolute offset of _buf[_start]
        self.received = 0
        self.error: Optional[DecodeError] = None
        self._pending: Optional[Tuple[Any, int, int]] = None  # (info, start, h)
        self.keep_header_octets = keep_header_octets
        self._broken = False     # a body was cut short by a non-LHP error
        self.header_octets: Optional[bytes] = None

    # -- public ------------------------------------------------------------

    def recv_frame(self, out: Optional[Writer] = None) -> Optional[Frame]:
        """Receive one frame.  With ``out`` (an object with ``write``, e.g.
        a file opened ``"wb"``) the body is written to it in chunks as it
        arrives and ``frame.body`` is ``None``.

        Raises ``DecodeError`` (sticky: every later call raises it again),
        ``OSError`` for transport failures (a reset is not a clean end,
        section 3.4) and ``socket.timeout`` when the socket's timeout
        passes."""
        if self.error is not None:
            raise self.error
        if self._broken:
            raise ValueError("a transport error or timeout interrupted a "
                             "body on this connection: close it")
        try:
            return self._recv(out)
        except DecodeError as e:
            self.error = e
            raise

    def recv_head(self) -> Optional[Head]:
        """Receive the next frame's prefix and header only: a ``Head``
        (``header``, ``body_len``, ``offset``, ``header_len``) or ``None``
        at a clean end; then call ``recv_body`` exactly once.  Lets a
        program choose where a body goes after seeing its header."""
        if self.error is not None:
            raise self.error
        if self._broken:
            raise ValueError("a transport error or timeout interrupted a "
                             "body on this connection: close it")
        if self._pending is not None:
            raise ValueError("recv_body() was not called for the last head")
        try:
            got = self._recv_head()
        except DecodeError as e:
            self.error = e
            raise
        if got is None:
            return None
        self._pending = got
        info, start, h = got
        return Head(info.header, info.body_len, start, h)

    def recv_body(self, out: Optional[Writer] = None) -> Optional[bytearray]:
        """The body of the frame whose head ``recv_head`` returned: a
        ``bytearray``, or ``None`` when written to ``out`` in chunks.
        Digests are verified at its end (``DecodeError`` digest_mismatch:
        what was written to ``out`` must then be discarded)."""
        if self.error is not None:
            raise self.error
        if self._broken:
            raise ValueError("a transport error or timeout interrupted a "
                             "body on this connection: close it")
        if self._pending is None:
            raise ValueError("recv_body() without recv_head()")
        info, start, h = self._pending
        self._pending = None
        try:
            return self._recv_body(info, start + 4 + h, out)
        except DecodeError as e:
            self.error = e
            raise

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the clean end of the stream."""
        while True:
            f = self.recv_frame()
            if f is None:
                return
            yield f

    # -- internals ---------------------------------------------------------

    def _recv(self, out):
        if self._pending is not None:
            raise ValueError("recv_body() was not called for the last head")
        got = self._recv_head()
        if got is None:
            return None
        info, start, h = got
        body = self._recv_body(info, start + 4 + h, out)
        return Frame(info.header, body, start, h)

    def _recv_head(self):
        start = self.offset
        if self._end - self._start < 4 and not self._fill(4):
            avail = self._end - self._start
            if avail == 0:
                return None                     # clean end (section 3.4)
            raise DecodeError("unexpected_eof", start + avail, 4 - avail)
        s = self._start
        h = header_len_from_prefix(self._view[s:s + 4], self.profile,
                                   self.max_header_len, start)
        need = 4 + h
        if self._end - self._start < need and not self._fill(need):
            avail = self._end - self._start
            raise DecodeError("unexpected_eof", start + avail, need - avail)
        s = self._start
        try:
            info = parse_header(self._view[s + 4:s + need], self.profile,
                                self.max_body_len)
        except _HeaderError as e:
            raise DecodeError(e.code, start + 4) from None
        if self.keep_header_octets:
            self.header_octets = bytes(self._view[s + 4:s + need])
        self._start = s + need
        self.offset = start + need
        return info, start, h

    def _recv_body(self, info, body_start, out):
        b = info.body_len
        hashers = body_digests(info) if (info.sha256 or info.md5) else None
        if out is not None:
            body = None
            try:
                self._stream_body(b, out, hashers)
            except (OSError, ValueError):     # incl. socket.timeout
                self._broken = True           # octets consumed, not counted
                raise
        elif b == 0:
            body = bytearray()
        elif b < _DIRECT_MIN:
            if self._end - self._start < b and not self._fill(b):
                avail = self._end - self._start
                raise DecodeError("unexpected_eof", self.offset + avail,
                                  b - avail)
            s = self._start
            body = self._buf[s:s + b]
            self._start = s + b
            self.offset += b
            if hashers:
                for hasher, _ in hashers:
                    hasher.update(body)
        else:
            try:
                body = self._recv_large(b, hashers)
            except (OSError, ValueError):
                self._broken = True
                raise
        if hashers:
            for hasher, want in hashers:
                if hasher.hexdigest() != want:
                    raise DecodeError("digest_mismatch", body_start)
        return body

    def _fill(self, n):
        """Make at least n unread octets available; False at end of stream
        (then fewer are).  n is at most 4 + max_header_len or _DIRECT_MIN;
        the buffer grows past its size only as octets arrive (doubling when
        full), so a large declared length costs what the peer really sent."""
        if len(self._buf) - self._start < n:
            unread = self._end - self._start       # compact to the front
            self._buf[:unread] = self._view[self._start:self._end]
            self._start = 0
            self._end = unread
        elif self._start == self._end:
            self._start = self._end = 0
        recv_into = self.sock.recv_into
        while self._end - self._start < n:
            if self._end == len(self._buf):
                nb = bytearray(min(2 * len(self._buf), n))
                nb[:self._end] = self._view[:self._end]
                self._buf = nb
                self._view = memoryview(nb)
            k = recv_into(self._view[self._end:])
            if not k:
                return False
            self._end += k
            self.received += k
        return True

    def _take_buffered(self, n):
        """Up to n already-buffered octets, as a memoryview into the buffer
        (valid until the next receive)."""
        s = self._start
        k = min(n, self._end - s)
        self._start = s + k
        self.offset += k
        return self._view[s:s + k]

    def _recv_large(self, b, hashers):
        """A body too large for the read-ahead buffer: received straight
        into the body's own buffer (allocated whole up to PREALLOC_MAX,
        grown as octets arrive above it)."""
        size = min(b, PREALLOC_MAX)
        body = bytearray(size)
        mv = memoryview(body)
        first = self._take_buffered(b)
        pos = len(first)
        mv[:pos] = first
        recv_into = self.sock.recv_into
        try:
            while pos < b:
                if pos == size:
                    mv.release()
                    size = min(b, 2 * size)
                    body.extend(bytes(size - len(body)))
                    mv = memoryview(body)
                k = recv_into(mv[pos:size])
                if not k:
                    self.offset += pos - len(first)
                    raise DecodeError("unexpected_eof", self.offset, b - pos)
                pos += k
                self.received += k
            self.offset += b - len(first)
            if hashers:
                for hasher, _ in hashers:
                    hasher.update(mv)
        finally:
            mv.release()
        return body

    def _stream_body(self, b, out, hashers):
        rem = b
        first = self._take_buffered(rem)
        if len(first):
            if hashers:
                for hasher, _ in hashers:
                    hasher.update(first)
            out.write(first)
            rem -= len(first)
        if not rem:
            return
        view = self._view
        recv_into = self.sock.recv_into
        cap = len(self._buf)
        self._start = self._end = 0            # the buffer is empty now
        while rem:
            k = recv_into(view, min(rem, cap))
            if not k:
                raise DecodeError("unexpected_eof", self.offset, rem)
            self.received += k
            self.offset += k
            rem -= k
            chunk = view[:k]
            if hashers:
                for hasher, _ in hashers:
                    hasher.update(chunk)
            out.write(chunk)


_READERS: "weakref.WeakKeyDictionary[socket.socket, FrameReader]" = \
    weakref.WeakKeyDictionary()


def _dead() -> None:
    return None


# The socket of the last recv_frame call and its reader: a program reading
# one socket in a loop skips the dictionary look-up.  (A tuple, replaced
# whole, so threads calling recv_frame on different sockets never see a
# mismatched pair.)
_LAST: "tuple[Any, Any]" = (_dead, None)


def reader_for(sock: socket.socket, profile: str = "lhp1",
               max_header_len: int = DEFAULT_MAX_HEADER_LEN,
               max_body_len: int = DEFAULT_MAX_BODY_LEN) -> FrameReader:
    """The FrameReader that ``recv_frame`` uses for ``sock``, created on
    first use with these settings (later calls reuse it and its
    settings)."""
    r = _READERS.get(sock)
    if r is None:
        r = FrameReader(sock, profile, max_header_len, max_body_len)
        _READERS[sock] = r
    return r


def recv_frame(sock: socket.socket, out: Optional[Writer] = None,
               profile: str = "lhp1",
               max_header_len: int = DEFAULT_MAX_HEADER_LEN,
               max_body_len: int = DEFAULT_MAX_BODY_LEN) -> Optional[Frame]:
    """Receive one frame from ``sock``: a ``Frame`` (``header, body =
    frame``; ``header`` a dict in wire order, ``body`` a ``bytearray``, or
    ``None`` when streamed to ``out``), or ``None`` at a clean end of stream.

    The settings apply from the first call on a socket (see ``reader_for``);
    see ``FrameReader.recv_frame`` for the exceptions."""
    global _LAST
    last_sock, r = _LAST
    if last_sock() is not sock:          # not the socket of the last call
        r = reader_for(sock, profile, max_header_len, max_body_len)
        _LAST = (weakref.ref(sock), r)
    return r.recv_frame(out)


def send_frame(sock: socket.socket, header: Header, body: Buffer = b"",
               profile: str = "lhp1",
               max_header_len: int = DEFAULT_MAX_HEADER_LEN) -> None:
    """Encode one frame in canonical form (section 9: ``body_len`` added
    when the body is not empty, ``sha256`` checked against the body when
    the header carries one) and write all of it.  Raises ``EncodeError``
    for a header a default receiver would reject."""
    n = len(body)
    head = encode_head(header, n, profile, max_header_len, body=body)
    if n < _DIRECT_MIN:
        sock.sendall(head + body)
    else:
        sock.sendall(head)
        sock.sendall(body)


def send_stream(sock: socket.socket, header: Header, body_len: int,
                src: Source, profile: str = "lhp1",
                max_header_len: int = DEFAULT_MAX_HEADER_LEN,
                chunk: int = BUFFER_SIZE) -> None:
    """Send a frame whose ``body_len``-octet body is read from ``src`` (an
    object with ``readinto``, e.g. a file opened ``"rb"``) in chunks.  A
    ``sha256`` in the header is not checked here (the caller computed it);
    raises ``ValueError`` if ``src`` ends early (the peer then sees an
    unexpected end of stream; close the connection)."""
    sock.sendall(encode_head(header, body_len, profile, max_header_len))
    buf = bytearray(min(chunk, max(body_len, 1)))
    view = memoryview(buf)
    rem = body_len
    while rem:
        k = src.readinto(view[:min(rem, len(buf))])
        if not k:
            raise ValueError("the source ended %d octets early" % rem)
        sock.sendall(view[:k])
        rem -= k

