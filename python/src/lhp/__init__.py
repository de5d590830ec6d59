"""LHP/1 (Length-Header Protocol) -- independent Python implementation.

Written from spec/lhp-1.md alone; standard library only.
"""
from .codec import (  # noqa: F401
    Decoder, DecodeError, EncodeError, Frame, Head, BodyChunk, FrameEnd, END,
    encode_frame, encode_header, parse_header, CODES, PROFILES,
    DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_BODY_LEN, MAX_SAFE_INT,
)
