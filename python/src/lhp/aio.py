"""LHP/1 over ``asyncio`` streams: ``await read_frame(reader)`` and
``write_frame(writer, header, body)``.

::

    import asyncio
    from lhp.aio import read_frame, write_frame

    async def main():
        reader, writer = await asyncio.open_connection("127.0.0.1", 7000)
        write_frame(writer, {"kind": "echo", "id": 1}, b"hello")
        await writer.drain()
        header, body = await read_frame(reader)

The same checks as ``lhp.sockets.recv_frame`` (spec/lhp-1.md sections 3-7):
limits before allocation, header validation, ``sha256``/``md5``
verification, ``DecodeError`` with code, section and absolute offset
(sticky per reader).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Optional

from .codec import (DEFAULT_MAX_BODY_LEN, DEFAULT_MAX_HEADER_LEN, DecodeError,
                    Frame, _HeaderError, body_digests, encode_head,
                    header_len_from_prefix, parse_header)
from .sockets import Buffer, Header, Writer

__all__ = ["read_frame", "write_frame"]

#: Bodies up to this size are read with one ``readexactly``; larger ones in
#: chunks of this size, so memory grows with what arrived, not with what the
#: header claims.
CHUNK = 1024 * 1024


class _State:
    __slots__ = ("offset", "error")

    def __init__(self) -> None:
        self.offset = 0
        self.error: Optional[DecodeError] = None


_STATES: "weakref.WeakKeyDictionary[asyncio.StreamReader, _State]" = \
    weakref.WeakKeyDictionary()


async def read_frame(reader: asyncio.StreamReader,
                     out: Optional[Writer] = None, profile: str = "lhp1",
                     max_header_len: int = DEFAULT_MAX_HEADER_LEN,
                     max_body_len: int = DEFAULT_MAX_BODY_LEN,
                     offset: int = 0) -> Optional[Frame]:
    """Read one frame from an ``asyncio.StreamReader``: a ``Frame``
    (``header, body = frame``; body a ``bytes``, or ``None`` when written to
    ``out`` -- an object with ``write`` -- in chunks), or ``None`` at a clean
    end of stream.  Raises ``DecodeError``; a ``DecodeError`` is raised
    again by every later call on the same reader.  Offsets count from
    ``offset`` (given on the first call for a reader; 0 for a new
    connection)."""
    st = _STATES.get(reader)
    if st is None:
        st = _STATES[reader] = _State()
        st.offset = offset
    if st.error is not None:
        raise st.error
    try:
        return await _read(reader, st, out, profile, max_header_len,
                           max_body_len)
    except DecodeError as e:
        st.error = e
        raise


def write_frame(writer: asyncio.StreamWriter, header: Header,
                body: Buffer = b"", profile: str = "lhp1",
                max_header_len: int = DEFAULT_MAX_HEADER_LEN) -> None:
    """Encode one frame in canonical form (section 9) and hand it to an
    ``asyncio.StreamWriter`` (like ``writer.write``: follow it with
    ``await writer.drain()``).  Raises ``EncodeError``."""
    writer.write(encode_head(header, len(body), profile, max_header_len,
                             body=body))
    if len(body):
        writer.write(body)


async def _exactly(reader: asyncio.StreamReader, n: int, st: _State,
                   what_start: int, what_len: int,
                   end_ok: bool = False) -> Optional[bytes]:
    """n octets, or unexpected_eof at the end of what arrived, with
    `missing` counted within the element [what_start, what_start+what_len)
    (prefix, header or body) as the codec's Decoder counts it; None if
    `end_ok` and the stream ended before the first octet."""
    try:
        data = await reader.readexactly(n)
    except asyncio.IncompleteReadError as e:
        got = len(e.partial)
        st.offset += got
        if end_ok and got == 0:
            return None
        raise DecodeError("unexpected_eof", st.offset,
                          what_start + what_len - st.offset) from None
    st.offset += n
    return data


async def _read(reader: asyncio.StreamReader, st: _State,
                out: Optional[Writer], profile: str, max_header_len: int,
                max_body_len: int) -> Optional[Frame]:
    start = st.offset
    prefix = await _exactly(reader, 4, st, start, 4, end_ok=True)
    if prefix is None:
        return None                               # clean end (section 3.4)
    h = header_len_from_prefix(prefix, profile, max_header_len, start)
    raw = await _exactly(reader, h, st, start + 4, h)
    try:
        info = parse_header(raw, profile, max_body_len)
    except _HeaderError as e:
        raise DecodeError(e.code, start + 4) from None
    b = info.body_len
    body_start = st.offset
    hashers = body_digests(info) if (info.sha256 or info.md5) else None
    body = None
    if out is None and b <= CHUNK:
        body = await _exactly(reader, b, st, body_start, b) if b else b""
        if hashers:
            for hasher, _ in hashers:
                hasher.update(body)
    else:
        parts: Optional[list[bytes]] = [] if out is None else None
        rem = b
        while rem:
            chunk = await reader.read(min(rem, CHUNK))
            if not chunk:
                raise DecodeError("unexpected_eof", st.offset, rem)
            st.offset += len(chunk)
            rem -= len(chunk)
            if hashers:
                for hasher, _ in hashers:
                    hasher.update(chunk)
            if parts is None:
                assert out is not None
                out.write(chunk)
            else:
                parts.append(chunk)
        if parts is not None:
            body = b"".join(parts)
    if hashers:
        for hasher, want in hashers:
            if hasher.hexdigest() != want:
                raise DecodeError("digest_mismatch", body_start)
    return Frame(info.header, body, start, h)
