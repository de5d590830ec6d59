"""LHP/1 codec: incremental decoder and canonical encoder (spec/lhp-1.md).

Standard library only.  Section numbers in comments refer to spec/lhp-1.md.

Decoder usage (whole-frame delivery)::

    d = Decoder(profile="lhp1", max_header_len=65536, max_body_len=64 << 20)
    d.feed(chunk)                 # any number of times, chunks of any size
    while (f := d.next_frame()) is not None and f is not END:
        handle(f)                 # Frame(header, body, ...)
    d.feed_eof()                  # peer closed; next_frame() then returns END
                                  # (clean end) or raises DecodeError

Streaming delivery uses ``next_event()`` instead, which returns ``Head``,
``BodyChunk`` and ``FrameEnd`` events (section 5).  Errors are sticky: after a
``DecodeError`` every further call raises the same error (section 7).
"""

import hashlib
import json
import re
import struct

__all__ = [
    "Decoder", "DecodeError", "EncodeError", "Frame", "Head", "BodyChunk",
    "FrameEnd", "END", "encode_frame", "encode_header", "parse_header",
    "CODES", "PROFILES", "DEFAULT_MAX_HEADER_LEN", "DEFAULT_MAX_BODY_LEN",
    "MAX_SAFE_INT", "error_message", "LHPError", "SECTIONS",
    "header_len_from_prefix", "body_digests", "encode_head", "frame_prefix",
]

MAX_SAFE_INT = 2 ** 53 - 1              # section 4.2
DEFAULT_MAX_HEADER_LEN = 65536          # section 3.2
DEFAULT_MAX_BODY_LEN = 64 * 1024 * 1024  # section 5
MAX_U32 = 2 ** 32 - 1
PROFILES = ("lhp1", "seed-compat")      # section 3.3

# Parser caps (section 4.2), fixed by the protocol: deeper nesting, more
# members in one object, or a longer number token is header_not_json.
DEFAULT_MAX_DEPTH = 64
MAX_MEMBERS = 1024
MAX_NUMBER_LEN = 64

CODES = (                                # section 7.1, in registry order
    "header_len_too_small", "header_len_too_large", "unexpected_eof",
    "header_not_utf8", "header_not_json", "header_not_object",
    "duplicate_member", "number_out_of_range", "invalid_body_len",
    "invalid_member", "unsupported_version", "body_too_large",
    "digest_mismatch",
)

# The section of spec/lhp-1.md that defines each code (section 7.1 registry).
SECTIONS = {
    "header_len_too_small": "3.2", "header_len_too_large": "3.2",
    "unexpected_eof": "3.4", "header_not_utf8": "4.1",
    "header_not_json": "4.1", "header_not_object": "4.1",
    "duplicate_member": "4.2", "number_out_of_range": "4.2",
    "invalid_body_len": "4.4", "invalid_member": "4.4",
    "unsupported_version": "4.4", "body_too_large": "5",
    "digest_mismatch": "6",
}

_MESSAGES = {
    "header_len_too_small": "header length below 2",
    "header_len_too_large": "header length above max_header_len",
    "unexpected_eof": "stream ended inside a frame",
    "header_not_utf8": "header is not valid UTF-8",
    "header_not_json": "header is not valid JSON",
    "header_not_object": "header is not a JSON object",
    "duplicate_member": "header has a duplicate member name",
    "number_out_of_range": "header number outside +-(2^53-1)",
    "invalid_body_len": "invalid body length member",
    "invalid_member": "registered member has the wrong type or form",
    "unsupported_version": "unsupported protocol version",
    "body_too_large": "body length above max_body_len",
    "digest_mismatch": "body does not match its digest",
}

_HTTP_METHODS = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI",
                 b"PATC", b"CONN", b"TRAC", b"PRI ")


def prefix_hint(prefix):
    """Section 7.3: describe the four prefix octets of a too-large H."""
    p = bytes(prefix[:4])
    if p in _HTTP_METHODS:
        return "looks like HTTP"
    if len(p) >= 2 and p[0] == 0x16 and p[1] == 0x03:
        return "looks like a TLS handshake record"
    if p == b"SSH-":
        return "looks like SSH"
    text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in p)
    return "prefix octets %s (%s)" % (p.hex(" "), text)


def error_message(code, prefix=None):
    msg = _MESSAGES.get(code, code)
    if code == "header_len_too_large" and prefix is not None:
        msg = "%s: %s" % (msg, prefix_hint(prefix))
    return msg


class LHPError(Exception):
    """Base class of every exception this package raises for LHP reasons."""


class DecodeError(LHPError):
    """A decode error (section 7): the peer broke a rule of the spec.

    `code` is the section 7.1 registry code, `section` the section of
    spec/lhp-1.md that states the rule, `offset` the absolute stream offset
    (section 7), `missing` the octets still expected (only for
    unexpected_eof, else None).  A decode error ends the connection."""

    def __init__(self, code, offset, missing=None, message=None):
        assert code in CODES, code
        self.code = code
        self.section = SECTIONS[code]
        self.offset = offset
        self.missing = missing
        self.message = message or error_message(code)
        super().__init__("%s at offset %d%s (LHP/1 section %s): %s" % (
            code, offset,
            "" if missing is None else " (missing %d)" % missing,
            self.section, self.message))

    def as_dict(self):
        d = {"code": self.code, "offset": self.offset}
        if self.missing is not None:
            d["missing"] = self.missing
        return d

    def error_header(self):
        """The connection error frame header of section 7.2: kind, code,
        message, offset and, for unexpected_eof only, missing."""
        h = {"kind": "error", "code": self.code, "message": self.message,
             "offset": self.offset}
        if self.missing is not None:
            h["missing"] = self.missing
        return h


class EncodeError(LHPError, ValueError):
    """The encoder refused a frame (section 9)."""


# --------------------------------------------------------------------------
# Strict JSON parser (sections 4.1, 4.2)
# --------------------------------------------------------------------------

class _NotJson(Exception):
    pass


class _NegZero(int):
    """The integer literal `-0`: numerically 0 (section 12.3 item 1), but not a
    *non-negative* integer literal, so `type(v) is int` is False for it."""

    def __repr__(self):
        return "0"


_WS = re.compile(r"[ \t\n\r]*")
_STR_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
# [0-9] (not \d): ASCII digits only.
_NUM = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_SIMPLE_ESC = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f",
               "n": "\n", "r": "\r", "t": "\t"}


class _Parser:
    """Recursive-descent parser for exactly one JSON text (RFC 8259).

    Syntax errors raise _NotJson immediately.  Duplicate names and
    out-of-range numbers are *recorded* (not raised) so that a later syntax
    error still wins (section 4.5 precedence)."""

    __slots__ = ("s", "n", "max_depth", "dup", "out_of_range", "v_token")

    def __init__(self, s, max_depth):
        self.s = s
        self.n = len(s)
        self.max_depth = max_depth
        self.dup = False
        self.out_of_range = False
        self.v_token = None   # spelling of the top-level `v` number (section 4.5 rank 5)

    def parse(self):
        s = self.s
        i = _WS.match(s, 0).end()
        v, i = self.value(i, 1)
        i = _WS.match(s, i).end()
        if i != self.n:
            raise _NotJson("trailing text at %d" % i)
        return v

    def value(self, i, depth):
        s = self.s
        if i >= self.n:
            raise _NotJson("value expected at end")
        c = s[i]
        if c == "{":
            return self.obj(i, depth)
        if c == "[":
            return self.arr(i, depth)
        if c == '"':
            return self.string(i)
        if c == "t" and s.startswith("true", i):
            return True, i + 4
        if c == "f" and s.startswith("false", i):
            return False, i + 5
        if c == "n" and s.startswith("null", i):
            return None, i + 4
        m = _NUM.match(s, i)
        if m is None:
            raise _NotJson("unexpected %r at %d" % (c, i))
        if m.end() - i > MAX_NUMBER_LEN:
            raise _NotJson("number longer than %d octets" % MAX_NUMBER_LEN)
        return self.number(m), m.end()

    def number(self, m):
        text = m.group(0)
        if m.group(1) is None and m.group(2) is None:
            # integer literal: exact value (section 4.2)
            digits = text[1:] if text[0] == "-" else text
            if len(digits) > 16:            # > 9999999999999999 > 2^53-1
                self.out_of_range = True
                return None
            v = int(text)
            if v > MAX_SAFE_INT or v < -MAX_SAFE_INT:
                self.out_of_range = True
                return None
            if text == "-0":
                return _NegZero(0)
            return v
        # fraction and/or exponent: nearest binary64, ties to even (Python's
        # float() is correctly rounded).  Overflow has no binary64 value:
        # header_not_json; underflow rounds to 0 and is accepted (section 4.2).
        f = float(text)
        if f in (float("inf"), float("-inf")):
            raise _NotJson("number overflows binary64")
        if not (-MAX_SAFE_INT <= f <= MAX_SAFE_INT):
            self.out_of_range = True
            return None
        return f

    def string(self, i):
        s = self.s
        n = self.n
        i += 1
        parts = []
        while True:
            j = _STR_PLAIN.match(s, i).end()
            if j > i:
                parts.append(s[i:j])
            if j >= n:
                raise _NotJson("unterminated string")
            c = s[j]
            if c == '"':
                return "".join(parts), j + 1
            if c != "\\":
                raise _NotJson("control character in string")
            if j + 1 >= n:
                raise _NotJson("backslash at end")
            e = s[j + 1]
            if e in _SIMPLE_ESC:
                parts.append(_SIMPLE_ESC[e])
                i = j + 2
                continue
            if e != "u":
                raise _NotJson("invalid escape")
            if _HEX4.fullmatch(s, j + 2, j + 6) is None:
                raise _NotJson("bad \\u escape")
            cp = int(s[j + 2:j + 6], 16)
            i = j + 6
            if 0xD800 <= cp <= 0xDBFF:
                # must be immediately followed by a low-surrogate escape
                if (s.startswith("\\u", i)
                        and _HEX4.fullmatch(s, i + 2, i + 6) is not None):
                    lo = int(s[i + 2:i + 6], 16)
                    if 0xDC00 <= lo <= 0xDFFF:
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                        i += 6
                        parts.append(chr(cp))
                        continue
                raise _NotJson("unpaired high surrogate")
            if 0xDC00 <= cp <= 0xDFFF:
                raise _NotJson("unpaired low surrogate")
            parts.append(chr(cp))

    def obj(self, i, depth):
        if depth > self.max_depth:
            raise _NotJson("too deep")
        s = self.s
        i = _WS.match(s, i + 1).end()
        out = {}
        count = 0
        if i < self.n and s[i] == "}":
            return out, i + 1
        while True:
            if i >= self.n or s[i] != '"':
                raise _NotJson("member name expected")
            count += 1
            if count > MAX_MEMBERS:
                raise _NotJson("more than %d members" % MAX_MEMBERS)
            name, i = self.string(i)
            i = _WS.match(s, i).end()
            if i >= self.n or s[i] != ":":
                raise _NotJson("':' expected")
            i = _WS.match(s, i + 1).end()
            start = i
            v, i = self.value(i, depth + 1)
            if depth == 1 and name == "v" and self.v_token is None:
                m = _NUM.match(s, start)
                if m is not None and m.end() == i:
                    self.v_token = m.group(0)
            if name in out:
                self.dup = True
            else:
                out[name] = v
            i = _WS.match(s, i).end()
            if i >= self.n:
                raise _NotJson("unclosed object")
            c = s[i]
            if c == ",":
                i = _WS.match(s, i + 1).end()
                continue
            if c == "}":
                return out, i + 1
            raise _NotJson("',' or '}' expected")

    def arr(self, i, depth):
        if depth > self.max_depth:
            raise _NotJson("too deep")
        s = self.s
        i = _WS.match(s, i + 1).end()
        out = []
        if i < self.n and s[i] == "]":
            return out, i + 1
        while True:
            v, i = self.value(i, depth + 1)
            out.append(v)
            i = _WS.match(s, i).end()
            if i >= self.n:
                raise _NotJson("unclosed array")
            c = s[i]
            if c == ",":
                i = _WS.match(s, i + 1).end()
                continue
            if c == "]":
                return out, i + 1
            raise _NotJson("',' or ']' expected")


_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MD5_RE = re.compile(r"[0-9a-fA-F]{32}")
_LEN_MEMBERS = {"lhp1": ("body_len",),
                "seed-compat": ("body_len", "file_size", "total_size")}


def _is_nonneg_int_literal(v):
    # bool is a subclass of int and _NegZero is `-0`: both excluded.
    return type(v) is int and v >= 0


class HeaderInfo:
    """Result of parse_header: the header object plus what the decoder needs."""
    __slots__ = ("header", "body_len", "sha256", "md5")

    def __init__(self, header, body_len, sha256, md5):
        self.header = header
        self.body_len = body_len
        self.sha256 = sha256
        self.md5 = md5


def parse_header(octets, profile="lhp1", max_body_len=DEFAULT_MAX_BODY_LEN,
                 max_depth=DEFAULT_MAX_DEPTH):
    """Apply the nine header checks of section 4.5 to a complete header.

    Returns HeaderInfo, or raises _HeaderError(code)."""
    # 1. UTF-8 (RFC 3629).  Python's strict codec rejects overlongs,
    #    encoded surrogates, > U+10FFFF and truncated sequences.
    try:
        text = str(octets, "utf-8")
    except UnicodeDecodeError:
        raise _HeaderError("header_not_utf8")
    # 2. one JSON text (a BOM is U+FEFF outside a string -> syntax error)
    p = _parser_for(text, max_depth)
    try:
        header = p.parse()
    except _NotJson:
        raise _HeaderError("header_not_json")
    except RecursionError:  # pragma: no cover - depth limit prevents this
        raise _HeaderError("header_not_json")
    # 3. object
    if type(header) is not dict:
        raise _HeaderError("header_not_object")
    # 4. I-JSON: duplicate names, anywhere in the header
    if p.dup:
        raise _HeaderError("duplicate_member")
    # 5. version: an integer literal other than 1, whatever its sign or size
    #    (checked before every rule a later version may change, section 4.5)
    t = p.v_token
    if t is not None and not any(c in t for c in ".eE") and t != "1":
        raise _HeaderError("unsupported_version")
    # 6. number range, anywhere in the header
    if p.out_of_range:
        raise _HeaderError("number_out_of_range")
    # 7. body length members (top level only, section 4.3)
    b = None
    for name in _LEN_MEMBERS[profile]:
        if name in header:
            v = header[name]
            if not _is_nonneg_int_literal(v):
                raise _HeaderError("invalid_body_len")
            if b is None:
                b = v
            elif v != b:
                raise _HeaderError("invalid_body_len")
    if b is None:
        b = 0
    # 8. other registered members, in the order kind, id, name, sha256, v
    if "kind" in header and type(header["kind"]) is not str:
        raise _HeaderError("invalid_member")
    if "id" in header and not _is_nonneg_int_literal(header["id"]):
        raise _HeaderError("invalid_member")
    if "name" in header and type(header["name"]) is not str:
        raise _HeaderError("invalid_member")
    sha = None
    if "sha256" in header:
        sha = header["sha256"]
        if type(sha) is not str or _SHA256_RE.fullmatch(sha) is None:
            raise _HeaderError("invalid_member")
    if "v" in header and not _is_nonneg_int_literal(header["v"]):
        raise _HeaderError("invalid_member")
    # 9. body limit
    if b > max_body_len:
        raise _HeaderError("body_too_large")
    md5 = None
    if profile == "seed-compat":
        m = header.get("md5")
        if type(m) is str and _MD5_RE.fullmatch(m):
            md5 = m.lower()
    return HeaderInfo(header, b, sha, md5)


def _parser_for(text, max_depth):
    """The parser for one header text: the fast path when the text can only
    be a flat object without escapes or -0, else the general parser."""
    if ("\\" not in text and "[" not in text and text.count("{") == 1
            and ("-0" not in text or _NEG_ZERO.search(text) is None)):
        return _FlatParser(text, max_depth)
    return _Parser(text, max_depth)


# Fast path for the headers nearly every application sends: one object, no
# nested object or array, no backslash (so no escapes, and every quote
# delimits a string), no -0 value.  For such a text the standard library's
# C scanner and the strict grammar agree on the syntax (same whitespace,
# ASCII digits only, no trailing commas, control characters refused) and on
# every value, except where the checks below send the text to the general
# parser instead: NaN/Infinity and numbers beyond +-(2^53-1) (out of range),
# text after the object, and duplicate names -- found by counting quotes: the
# text has two per member name and per string value, so a dict with fewer
# (names + string values) than that lost a duplicate.  The general parser
# then gives the exact error (or result) with the section 4.5 precedence.
_WS_CHARS = " \t\n\r"
_NEG_ZERO = re.compile(r":[ \t\n\r]*-0")
_FLAT_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


class _FlatParser:
    """The _Parser interface for texts _parser_for sends to the fast path."""

    __slots__ = ("s", "max_depth", "dup", "out_of_range", "v_token")

    def __init__(self, s, max_depth):
        self.s = s
        self.max_depth = max_depth
        self.dup = False
        self.out_of_range = False
        self.v_token = None

    def parse(self):
        s = self.s
        try:
            start = 0 if s[0] == "{" else len(s) - len(s.lstrip(_WS_CHARS))
            obj, end = _FLAT_SCAN(s, start)
        except (StopIteration, ValueError, IndexError, RecursionError):
            return self._general()
        if type(obj) is not dict or (end != len(s)
                                     and s[end:].strip(_WS_CHARS)):
            return self._general()
        n = len(obj)
        if n > MAX_MEMBERS:
            return self._general()
        for v in obj.values():
            t = type(v)
            if t is str:
                n += 1
            elif t is int:
                if v > MAX_SAFE_INT or v < -MAX_SAFE_INT:
                    return self._general()
            elif t is float:
                # fractions and exponents: the general parser applies the
                # number-length cap, overflow and rounding rules (section 4.2)
                return self._general()
        if n != s.count('"') >> 1:
            return self._general()
        v = obj.get("v")
        if type(v) is int:
            # an in-range JSON integer without -0 is spelled as str() spells it
            self.v_token = str(v)
        return obj

    def _general(self):
        p = _Parser(self.s, self.max_depth)
        obj = p.parse()
        self.dup = p.dup
        self.out_of_range = p.out_of_range
        self.v_token = p.v_token
        return obj


class _HeaderError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------
# Decoder (sections 3, 5, 6, 7)
# --------------------------------------------------------------------------

_PREFIX_STRUCTS = {"lhp1": struct.Struct(">I"),        # section 3.1
                   "seed-compat": struct.Struct("<i")}  # section 3.3


def header_len_from_prefix(prefix, profile, max_header_len, frame_start):
    """Section 3.2: H from the four prefix octets of a frame starting at the
    absolute offset `frame_start`.  Raises DecodeError when H is below 2
    (or negative, in seed-compat) or above `max_header_len` -- before
    anything is allocated for the header."""
    (h,) = _PREFIX_STRUCTS[profile].unpack_from(prefix)
    # section 3.2: too small first (incl. negative), then too large
    if h < 2:
        raise DecodeError("header_len_too_small", frame_start)
    if h > max_header_len:
        raise DecodeError("header_len_too_large", frame_start,
                          message=error_message("header_len_too_large",
                                                prefix))
    return h


def frame_prefix(header_len, profile="lhp1"):
    """The four prefix octets for a header of `header_len` octets
    (sections 3.1, 3.3)."""
    return _PREFIX_STRUCTS[profile].pack(header_len)


def body_digests(info):
    """Section 6: [(hasher, expected hex digest)] for a parsed header."""
    hs = []
    if info.sha256 is not None:
        hs.append((hashlib.sha256(), info.sha256))
    if info.md5 is not None:
        hs.append((hashlib.md5(), info.md5))
    return hs

class Frame:
    """A complete, verified frame (whole-frame delivery)."""
    __slots__ = ("header", "body", "offset", "header_len")

    def __init__(self, header, body, offset, header_len):
        self.header = header          # dict, wire order
        self.body = body              # bytes
        self.offset = offset          # absolute frame start
        self.header_len = header_len  # H

    @property
    def body_len(self):
        return len(self.body)

    def __iter__(self):
        """`header, body = frame`."""
        yield self.header
        yield self.body

    def __repr__(self):
        if self.body is None:                 # streamed to a file object
            return "Frame(%r, body streamed @%d)" % (self.header, self.offset)
        return "Frame(%r, %d body octets @%d)" % (self.header, len(self.body),
                                                  self.offset)


class Head:
    """Streaming: the header passed all checks (section 5)."""
    __slots__ = ("header", "body_len", "offset", "header_len")

    def __init__(self, header, body_len, offset, header_len):
        self.header = header
        self.body_len = body_len
        self.offset = offset
        self.header_len = header_len

    def __repr__(self):
        return "Head(%r, B=%d @%d)" % (self.header, self.body_len, self.offset)


class BodyChunk:
    """Streaming: some body octets (unverified until FrameEnd)."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data

    def __repr__(self):
        return "BodyChunk(%d)" % len(self.data)


class FrameEnd:
    """Streaming: the body is complete and its digests verified."""
    __slots__ = ("offset",)

    def __init__(self, offset):
        self.offset = offset

    def __repr__(self):
        return "FrameEnd(@%d)" % self.offset


class _End:
    """Clean end of stream (section 3.4): returned once feed_eof() was called
    and the stream ended exactly at a frame boundary."""

    def __repr__(self):
        return "END"


END = _End()

_PREFIX, _HEADER, _BODY, _FAILED = range(4)
_COMPACT_AT = 1 << 16


class Decoder:
    """Incremental LHP/1 decoder.  The outcome never depends on how the
    stream is chunked (section 2)."""

    def __init__(self, profile="lhp1", max_header_len=DEFAULT_MAX_HEADER_LEN,
                 max_body_len=DEFAULT_MAX_BODY_LEN, offset=0,
                 max_depth=DEFAULT_MAX_DEPTH):
        if profile not in PROFILES:
            raise ValueError("unknown profile %r" % (profile,))
        if not isinstance(max_header_len, int) or max_header_len < 2 \
                or max_header_len > MAX_U32:
            raise ValueError("max_header_len must be in 2..2^32-1")
        if not isinstance(max_body_len, int) or max_body_len < 0 \
                or max_body_len > MAX_SAFE_INT:
            raise ValueError("max_body_len must be in 0..2^53-1")
        if max_depth < 64:
            raise ValueError("max_depth must be at least 64 (section 4.2)")
        self.profile = profile
        self.max_header_len = max_header_len
        self.max_body_len = max_body_len
        self.max_depth = max_depth
        self._buf = bytearray()
        self._pos = 0                 # read position in _buf
        self._abs = offset            # absolute offset of _buf[_pos]
        self._eof = False
        self._state = _PREFIX
        self._error = None
        self._frame_start = offset
        self._h = 0
        self._remaining = 0           # body octets still to come
        self._info = None
        self._hashers = ()
        # whole-frame assembly
        self._w_head = None
        self._w_parts = None

    # -- input ------------------------------------------------------------

    def feed(self, data):
        """Append received octets (one recv()'s worth, any size).  Octets
        fed after a decode error are ignored (section 7.2)."""
        if self._eof:
            raise ValueError("feed() after feed_eof()")
        if self._state != _FAILED:
            self._buf += data

    def feed_eof(self):
        """The peer closed its sending direction (end of stream)."""
        self._eof = True

    @property
    def error(self):
        return self._error

    @property
    def offset(self):
        """Absolute offset of the next octet the decoder will consume."""
        return self._abs

    def _fail(self, code, offset, missing=None, message=None):
        self._error = DecodeError(code, offset, missing, message)
        self._state = _FAILED
        self._buf = bytearray()      # octets after the error are ignored
        self._pos = 0
        raise self._error

    def _avail(self):
        return len(self._buf) - self._pos

    def _take(self, n):
        p = self._pos
        data = bytes(self._buf[p:p + n])
        self._pos = p + n
        self._abs += n
        if self._pos >= _COMPACT_AT and self._pos * 2 >= len(self._buf):
            del self._buf[:self._pos]
            self._pos = 0
        return data

    # -- streaming delivery -------------------------------------------------

    def next_event(self):
        """Return the next Head / BodyChunk / FrameEnd event, END at a clean
        end of stream, or None if more octets are needed.  Raises
        DecodeError (sticky)."""
        st = self._state
        if st == _BODY:
            # hot path: body octets
            rem = self._remaining
            if rem:
                buf = self._buf
                p = self._pos
                avail = len(buf) - p
                if avail:
                    n = avail if avail < rem else rem
                    if p == 0 and n == avail:
                        data = bytes(buf)
                        buf.clear()
                        self._abs += n
                    else:
                        data = self._take(n)
                    self._remaining = rem - n
                    for hasher, _ in self._hashers:
                        hasher.update(data)
                    return BodyChunk(data)
        elif st == _FAILED:
            raise self._error
        if st == _PREFIX:
            avail = self._avail()
            if avail < 4:
                if not self._eof:
                    return None
                if avail == 0:
                    return END
                self._fail("unexpected_eof", self._abs + avail, 4 - avail)
            self._frame_start = self._abs
            prefix = self._take(4)
            try:
                h = header_len_from_prefix(prefix, self.profile,
                                           self.max_header_len,
                                           self._frame_start)
            except DecodeError as e:
                self._fail(e.code, e.offset, message=e.message)
            self._h = h
            self._state = _HEADER
            st = _HEADER
        if st == _HEADER:
            avail = self._avail()
            h = self._h
            if avail < h:
                if self._eof:
                    self._fail("unexpected_eof", self._abs + avail, h - avail)
                return None
            raw = self._take(h)
            try:
                info = parse_header(raw, self.profile, self.max_body_len,
                                    self.max_depth)
            except _HeaderError as e:
                self._fail(e.code, self._frame_start + 4)
            self._info = info
            self._remaining = info.body_len
            self._hashers = body_digests(info)
            self._state = _BODY
            return Head(info.header, info.body_len, self._frame_start, h)
        # _BODY
        rem = self._remaining
        if rem == 0:
            for hasher, want in self._hashers:
                if hasher.hexdigest() != want:
                    self._fail("digest_mismatch", self._frame_start + 4 + self._h)
            self._state = _PREFIX
            self._info = None
            self._hashers = ()
            return FrameEnd(self._frame_start)
        avail = self._avail()
        if avail == 0:
            if self._eof:
                self._fail("unexpected_eof", self._abs, rem)
            return None
        data = self._take(min(avail, rem))
        self._remaining = rem - len(data)
        for hasher, _ in self._hashers:
            hasher.update(data)
        return BodyChunk(data)

    def events(self):
        """Iterate over the events available now (stops when more input is
        needed or at END)."""
        while True:
            ev = self.next_event()
            if ev is None or ev is END:
                return
            yield ev

    # -- whole-frame delivery ------------------------------------------------

    def next_frame(self):
        """Return the next complete, verified Frame, END at a clean end of
        stream, or None if more octets are needed.  Raises DecodeError."""
        while True:
            ev = self.next_event()
            if ev is None or ev is END:
                return ev
            if type(ev) is Head:
                self._w_head = ev
                self._w_parts = []
            elif type(ev) is BodyChunk:
                self._w_parts.append(ev.data)
            else:
                head = self._w_head
                body = b"".join(self._w_parts)
                self._w_head = self._w_parts = None
                return Frame(head.header, body, head.offset, head.header_len)

    def frames(self):
        """Iterate over the frames complete now."""
        while True:
            f = self.next_frame()
            if f is None or f is END:
                return
            yield f

    @property
    def mid_frame(self):
        """True while a frame is partially received (or octets of the next
        one are buffered)."""
        return self._error is None and (self._state != _PREFIX
                                        or self._avail() > 0)

    @property
    def at_clean_end(self):
        return (self._eof and self._error is None and self._state == _PREFIX
                and self._avail() == 0)


def decode_all(data, profile="lhp1", **kw):
    """Convenience: decode a complete stream. Returns (frames, error|None)."""
    d = Decoder(profile, **kw)
    d.feed(data)
    d.feed_eof()
    frames = []
    try:
        while True:
            f = d.next_frame()
            if f is END:
                return frames, None
            frames.append(f)
    except DecodeError as e:
        return frames, e


# --------------------------------------------------------------------------
# Encoder (section 9)
# --------------------------------------------------------------------------

_ESC_RE = re.compile(r'["\\\x00-\x1f]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n",
          "\r": "\\r", "\t": "\\t"}


def _esc(m):
    c = m.group(0)
    return _SHORT.get(c) or "\\u%04x" % ord(c)


def _is_nonchar(cp):
    return 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE


_SUSPECT_RE = re.compile("[\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]|"
                         "[\U0001fffe-\U0010ffff]")


def _check_str(s, strict):
    for m in _SUSPECT_RE.finditer(s):
        cp = ord(m.group(0))
        if 0xD800 <= cp <= 0xDFFF:
            raise EncodeError("string contains a lone surrogate")
        if strict and _is_nonchar(cp):
            raise EncodeError("string contains a noncharacter U+%04X" % cp)


def _enc_str(s, strict=True):
    _check_str(s, strict)
    return '"' + _ESC_RE.sub(_esc, s) + '"'


def _enc_value(v, depth, out, strict=True):
    # Section 4.2: only objects and arrays count towards depth ({"a":[[1]]} has depth 3);
    # objects are checked in _enc_members.
    if strict and depth > 64 and isinstance(v, (list, tuple)):
        raise EncodeError("nesting deeper than 64")
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        if v > MAX_SAFE_INT or v < -MAX_SAFE_INT:
            raise EncodeError("integer out of range: %d" % v)
        out.append(str(int(v)))
    elif isinstance(v, float):
        if not (-MAX_SAFE_INT <= v <= MAX_SAFE_INT):
            raise EncodeError("number out of range or not finite: %r" % v)
        # repr() is the shortest round-trip form and always has a fraction
        # or exponent ("1.0", "1e-05"), so a float stays a non-integer.
        out.append(repr(v))
    elif isinstance(v, str):
        out.append(_enc_str(v, strict))
    elif isinstance(v, dict):
        _enc_members(list(v.items()), depth, out, strict)
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for k, item in enumerate(v):
            if k:
                out.append(",")
            _enc_value(item, depth + 1, out, strict)
        out.append("]")
    else:
        raise EncodeError("not a JSON value: %r" % (type(v).__name__,))


def _enc_members(items, depth, out, strict=True):
    if strict and depth > 64:
        raise EncodeError("nesting deeper than 64")
    seen = set()
    out.append("{")
    for k, (name, val) in enumerate(items):
        if not isinstance(name, str):
            raise EncodeError("member name is not a string: %r" % (name,))
        if name in seen:
            raise EncodeError("duplicate member %r" % name)
        seen.add(name)
        if k:
            out.append(",")
        out.append(_enc_str(name, strict))
        out.append(":")
        _enc_value(val, depth + 1, out, strict)
    out.append("}")


def encode_header(header, strict=True):
    """Compact canonical JSON text of a header (dict, or list of pairs).

    strict=False drops the sender-side depth (<= 64) and noncharacter rules;
    it is for re-encoding data a receiver accepted (testee replies)."""
    items = list(header.items()) if isinstance(header, dict) else list(header)
    out = []
    _enc_members(items, 1, out, strict)
    return "".join(out).encode("utf-8")


def encode_frame(header, body=b"", profile="lhp1",
                 max_header_len=DEFAULT_MAX_HEADER_LEN,
                 max_body_len=MAX_SAFE_INT):
    """Encode one frame in canonical form (section 9).

    `header` is a dict (or a list of (name, value) pairs) in the order the
    application wants.  Raises EncodeError for anything a default receiver
    would reject (sections 4.1-4.4, 6, H > max_header_len, B > max_body_len).
    """
    body = bytes(body)
    return encode_head(header, len(body), profile, max_header_len,
                       max_body_len, body) + body


def encode_head(header, body_len, profile="lhp1",
                max_header_len=DEFAULT_MAX_HEADER_LEN,
                max_body_len=MAX_SAFE_INT, body=None):
    """The prefix and header of a frame whose body has `body_len` octets,
    under the rules of encode_frame; the caller sends the body after it.
    The body's digests (`sha256`, seed-compat `md5`) are checked when `body`
    (any bytes-like object) is given; a streamed body is the caller's to
    match."""
    if profile not in PROFILES:
        raise ValueError("unknown profile %r" % (profile,))
    b = body_len
    if b > MAX_SAFE_INT or b > max_body_len:
        raise EncodeError("body too large: %d" % b)
    items = list(header.items()) if isinstance(header, dict) else list(header)
    names = [k for k, _ in items]
    supplied = [n for n in _LEN_MEMBERS[profile] if n in names]
    for name, val in items:
        if name in _LEN_MEMBERS[profile]:
            if not _is_nonneg_int_literal(val):
                raise EncodeError("%s must be a non-negative integer" % name)
            if val != b:
                raise EncodeError("%s = %d disagrees with the body (%d octets)"
                                  % (name, val, b))
    if not supplied and b > 0:
        items.append(("body_len", b))
    hd = dict(items)
    if len(hd) != len(items):
        raise EncodeError("duplicate member name")
    if "kind" in hd and type(hd["kind"]) is not str:
        raise EncodeError("kind must be a string")
    if "id" in hd and not _is_nonneg_int_literal(hd["id"]):
        raise EncodeError("id must be a non-negative integer")
    if "name" in hd and type(hd["name"]) is not str:
        raise EncodeError("name must be a string")
    if "sha256" in hd:
        sha = hd["sha256"]
        if type(sha) is not str or _SHA256_RE.fullmatch(sha) is None:
            raise EncodeError("sha256 must be 64 lowercase hex digits")
        if body is not None and hashlib.sha256(body).hexdigest() != sha:
            raise EncodeError("sha256 does not match the body")
    if "v" in hd and (not _is_nonneg_int_literal(hd["v"]) or hd["v"] != 1):
        raise EncodeError("v must be 1")
    if profile == "seed-compat":
        m = hd.get("md5")
        if type(m) is str and _MD5_RE.fullmatch(m):
            if body is not None and hashlib.md5(body).hexdigest() != m.lower():
                raise EncodeError("md5 does not match the body")
    text = encode_header(items)
    h = len(text)
    if h > max_header_len:
        raise EncodeError("header is %d octets, above %d" % (h, max_header_len))
    if profile == "lhp1":
        prefix = struct.pack(">I", h)
    else:
        if h > 2 ** 31 - 1:
            raise EncodeError("header too large for seed-compat")
        prefix = struct.pack("<i", h)
    return prefix + text
