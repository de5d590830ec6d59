"""LHP/1, the Length-Header Protocol, for Python (standard library only).

A frame is a 4-octet big-endian header length H, H octets of a JSON header
(with ``body_len``), then the body (spec/lhp-1.md).  Quick start::

    import socket
    from lhp import send_frame, recv_frame

    with socket.create_connection(("127.0.0.1", 7000)) as sock:
        send_frame(sock, {"kind": "echo", "id": 1}, b"hello")
        header, body = recv_frame(sock)

Modules: ``lhp.sockets`` (blocking sockets), ``lhp.server`` (a
``socketserver`` handler base class), ``lhp.aio`` (asyncio streams),
``lhp.codec`` (the sans-IO decoder and encoder), ``lhp.errors`` (error
frames), ``lhp.net`` (the conformance echo server and client),
``lhp.vectors`` (the spec's test vectors, for tests).
"""
from .codec import (  # noqa: F401
    Decoder, DecodeError, EncodeError, LHPError, Frame, Head, BodyChunk,
    FrameEnd, END, encode_frame, encode_head, encode_header, parse_header,
    CODES, SECTIONS, PROFILES, DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_BODY_LEN,
    MAX_SAFE_INT,
)
from .errors import PeerError, raise_for_error  # noqa: F401
from .sockets import (  # noqa: F401
    FrameReader, recv_frame, send_frame, send_stream,
)

#: The package version; kept equal to the Rust crates' version
#: (`[workspace.package] version` in Cargo.toml; a test checks it).
__version__ = "0.1.0"
