#!/usr/bin/env python3
"""Generate the LHP/1 conformance test vectors (spec/vectors/*.json).

Python 3 standard library only.  Run from anywhere:

    python3 spec/vectors/generate.py            # write the files, self-check, print counts
    python3 spec/vectors/generate.py --check    # self-check only, write nothing

Every vector is built from Python values with the helpers below, so inputs and
offsets are correct by construction.  Valid headers are produced with
json.dumps; invalid headers are written as literal bytes.  Before anything is
written, every vector is

  1. validated against spec/vectors/schema.json by a small JSON-Schema
     interpreter (the subset of draft 2020-12 that the schema uses), and
  2. decoded by an independent reference decoder written from spec/lhp-1.md
     (strict JSON parser included), whose outcome must match the vector's
     expectation (or one of its alternatives, for "acceptable" vectors).

Output is deterministic: groups are written in sorted order, vectors keep their
definition order, and ids are checked for uniqueness.
"""

import hashlib
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

MAX_HEADER_LEN = 65536
MAX_BODY_LEN = 67108864
MAX_SAFE = 2**53 - 1          # 9007199254740991
U32_MAX = 2**32 - 1
BODY_HEX_LIMIT = 4096         # bodies longer than this use body_sha256
HEX_INPUT_LIMIT = 1 << 20     # inputs with no repeat parts and <= this use {"hex"}

CJK = "澳门最大线上赌场开业啦.mp4"


# --------------------------------------------------------------------------
# Byte building helpers
# --------------------------------------------------------------------------

class Rep:
    """`count` copies of the octet string `unit` (kept symbolic for recipes)."""

    def __init__(self, unit, count):
        self.unit = bytes(unit)
        self.count = count

    def __len__(self):
        return len(self.unit) * self.count

    def materialize(self):
        return self.unit * self.count


class Utf8:
    """A run of octets written in the recipe as readable UTF-8 text."""

    def __init__(self, text):
        self.text = text
        self.data = text.encode("utf-8")

    def __len__(self):
        return len(self.data)


def plen(parts):
    return sum(len(p) for p in parts)


def materialize(parts):
    out = bytearray()
    for p in parts:
        if isinstance(p, Rep):
            out += p.materialize()
        elif isinstance(p, Utf8):
            out += p.data
        else:
            out += p
    return bytes(out)


def as_parts(x):
    if isinstance(x, list):
        return x
    return [x]


def prefix(h, profile="lhp1"):
    """The 4-octet header length prefix."""
    if profile == "lhp1":
        return struct.pack(">I", h)
    return struct.pack("<i", h)


def canon(members):
    """Canonical header text (spec 9): compact JSON, UTF-8, members in order."""
    return json.dumps(members, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def seed_json(members):
    """Exactly what the seeds send: json.dumps(d).encode('utf-8') (ASCII, \\u escapes, ', ' and ': ')."""
    return json.dumps(members).encode("utf-8")


def frame(header, body=b"", profile="lhp1"):
    """A frame as a list of parts.  `header` is a dict (canonical) or raw bytes."""
    hb = canon(header) if isinstance(header, dict) else header
    parts = [prefix(len(hb), profile), hb]
    parts += [p for p in as_parts(body) if len(p)]
    return parts


def hdr(members, body=b""):
    """Header dict with body_len appended when the body is non-empty (canonical rule)."""
    d = dict(members)
    n = plen(as_parts(body))
    if n and "body_len" not in d:
        d["body_len"] = n
    return d


def cframe(members, body=b"", profile="lhp1"):
    """Canonical frame: (parts, expected FRAME)."""
    d = hdr(members, body)
    return frame(d, body, profile), F(d, body)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def md5(b):
    return hashlib.md5(b).hexdigest()


# --------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------

def F(header, body=b""):
    """Expected decoded frame."""
    parts = as_parts(body)
    n = plen(parts)
    f = {"header": header, "body_len": n}
    if n > BODY_HEX_LIMIT:
        h = hashlib.sha256()
        for p in parts:
            if isinstance(p, Rep):
                h.update(p.materialize())
            else:
                h.update(p.data if isinstance(p, Utf8) else p)
        f["body_sha256"] = h.hexdigest()
    else:
        f["body_hex"] = materialize(parts).hex()
    return f


def valid(*frames):
    return {"result": "valid", "frames": list(frames)}


def invalid(code, offset, frames=(), missing=None):
    e = {"code": code, "offset": offset}
    if missing is not None:
        e["missing"] = missing
    return {"result": "invalid", "frames": list(frames), "error": e}


def acceptable(*alts):
    return {"result": "acceptable", "alternatives": list(alts)}


# --------------------------------------------------------------------------
# Vector registry
# --------------------------------------------------------------------------

GROUPS = {}
IDS = set()


def input_json(parts):
    parts = as_parts(parts)
    simple = all(isinstance(p, (bytes, bytearray)) for p in parts)
    if simple and plen(parts) <= HEX_INPUT_LIMIT:
        return {"hex": materialize(parts).hex()}
    recipe = []
    for p in parts:
        if isinstance(p, Rep):
            recipe.append({"repeat_hex": p.unit.hex(), "count": p.count})
        elif isinstance(p, Utf8):
            recipe.append({"utf8": p.text})
        elif len(p):
            if recipe and "hex" in recipe[-1]:
                recipe[-1]["hex"] += bytes(p).hex()   # merge adjacent literal parts
            else:
                recipe.append({"hex": bytes(p).hex()})
    return {"recipe": recipe}


def vec(group, slug, spec, description, parts, expect, profile="lhp1",
        tier="required", limits=None, skip_bytes=None):
    vid = f"{group}/{slug}"
    if vid in IDS:
        raise SystemExit(f"duplicate id {vid}")
    IDS.add(vid)
    v = {
        "id": vid,
        "spec": spec,
        "description": description,
        "profile": profile,
        "tier": tier,
    }
    if limits is not None:
        lim = {"max_header_len": MAX_HEADER_LEN, "max_body_len": MAX_BODY_LEN}
        lim.update(limits)
        v["limits"] = lim
    if skip_bytes is not None:
        v["skip_bytes"] = skip_bytes
    v["input"] = input_json(parts)
    v["expect"] = expect
    v["_parts"] = as_parts(parts)  # internal, stripped before writing
    GROUPS.setdefault(group, []).append(v)
    return v


def raw1(hb, body=b"", profile="lhp1"):
    """Single frame with a literal header text; returns parts."""
    return frame(hb, body, profile)


# ==========================================================================
# Vector definitions
# ==========================================================================

def g_framing():
    G = "framing"
    p, f = cframe({})
    vec(G, "empty-object-header", "3.1", "The smallest frame: H=2, header {}, no body.", p, valid(f))
    p, f = cframe({}, b"a")
    vec(G, "minimal-frame-with-body", "3.1", "Header {\"body_len\":1} and a one-octet body.", p, valid(f))
    p, f = cframe({"body_len": 0})
    vec(G, "explicit-zero-body-len", "3.1", "body_len 0 given explicitly; empty body.", p, valid(f))
    p, f = cframe({"kind": "note"})
    vec(G, "absent-body-len-is-zero", "4.4", "No body_len member: the body is empty.", p, valid(f))
    p1, f1 = cframe({"kind": "a"}, b"one")
    p2, f2 = cframe({"kind": "b"}, b"two!")
    p3, f3 = cframe({"kind": "c"})
    vec(G, "three-frames-one-stream", "3.1",
        "Three frames back to back in one stream (the sticky-packet case).",
        p1 + p2 + p3, valid(f1, f2, f3))
    ps, fs = [], []
    for i in range(5):
        p, f = cframe({})
        ps += p
        fs.append(f)
    vec(G, "five-empty-frames", "3.1", "Five frames with header {} and empty bodies.", ps, valid(*fs))
    p, f = cframe({}, bytes(range(256)))
    vec(G, "body-is-opaque-all-octets", "3.1", "Body containing every octet value 00..FF, not UTF-8.", p, valid(f))
    body = prefix(2) + b"{}"
    p, f = cframe({}, body)
    vec(G, "body-looks-like-a-frame", "3.1",
        "A body that itself looks like an LHP frame is still just body octets.", p, valid(f))
    body = b'{"kind":"x"}'
    p, f = cframe({"kind": "json-body"}, body)
    vec(G, "body-looks-like-json", "3.1", "A JSON body is not parsed.", p, valid(f))
    vec(G, "h-0", "3.2", "H=0 is below the minimum of 2.", prefix(0), invalid("header_len_too_small", 0))
    vec(G, "h-0-followed-by-bytes", "3.2", "H=0 followed by more octets; error at the frame start.",
        prefix(0) + b"{}", invalid("header_len_too_small", 0))
    vec(G, "h-1", "3.2", "H=1 with one header octet '{'.", prefix(1) + b"{", invalid("header_len_too_small", 0))
    vec(G, "h-1-space", "3.2", "H=1 with a single space.", prefix(1) + b" ", invalid("header_len_too_small", 0))
    vec(G, "h-1-prefix-only", "3.2", "H=1 and the stream ends: too small wins over end of stream.",
        prefix(1), invalid("header_len_too_small", 0))
    vec(G, "h-2", "3.2", "H=2 is the minimum: header {}.", prefix(2) + b"{}", valid(F({})))
    vec(G, "h-max-minus-1", "3.2", "H=65535 (header {} padded with spaces) is accepted.",
        [prefix(65535) + b"{}", Rep(b" ", 65533)], valid(F({})))
    vec(G, "h-max", "3.2", "H=65536 = default max_header_len is accepted.",
        [prefix(65536) + b"{}", Rep(b" ", 65534)], valid(F({})))
    vec(G, "h-max-plus-1", "3.2", "H=65537 is rejected as soon as the prefix is known.",
        prefix(65537), invalid("header_len_too_large", 0))
    vec(G, "h-max-plus-1-with-header", "3.2", "H=65537 with the header octets present: still too large at 0.",
        [prefix(65537) + b"{}", Rep(b" ", 65535)], invalid("header_len_too_large", 0))
    vec(G, "h-u32-max", "3.2", "H=u32::MAX (FF FF FF FF).", prefix(U32_MAX), invalid("header_len_too_large", 0))
    vec(G, "h-u32-max-with-bytes", "3.2", "H=u32::MAX followed by other octets.",
        prefix(U32_MAX) + b"{}" * 8, invalid("header_len_too_large", 0))
    vec(G, "h-high-bit-is-not-negative", "3.2",
        "lhp1 prefixes are unsigned: 80 00 00 00 is 2147483648, too large (not too small).",
        prefix(0x80000000), invalid("header_len_too_large", 0))
    vec(G, "h-2-after-valid-frame-h-0", "3.2", "A valid frame, then H=0 at offset 6.",
        prefix(2) + b"{}" + prefix(0), invalid("header_len_too_small", 6, [F({})]))
    vec(G, "h-too-large-second-frame", "3.2", "A valid frame then H=65537: offset of the second frame.",
        prefix(2) + b"{}" + prefix(65537), invalid("header_len_too_large", 6, [F({})]))
    hb = b'{"body_len":3}'
    vec(G, "header-length-exact", "3.1",
        "H counts header octets only; the body follows immediately.",
        prefix(len(hb)) + hb + b"xyz", valid(F({"body_len": 3}, b"xyz")))
    vec(G, "body-len-2p53-minus-1", "4.4",
        "body_len 2^53-1 is a valid length but exceeds the default max_body_len.",
        frame({"body_len": MAX_SAFE}), invalid("body_too_large", 4))
    vec(G, "body-len-2p53", "4.2", "body_len 2^53 is outside the I-JSON number range.",
        frame(b'{"body_len":9007199254740992}'), invalid("number_out_of_range", 4))


def g_limits():
    G = "limits"
    L = {"max_header_len": 100}
    for h, ok in ((99, True), (100, True), (101, False)):
        hb = b"{}" + b" " * (h - 2)
        exp = valid(F({})) if ok else invalid("header_len_too_large", 0)
        vec(G, f"header-{h}-limit-100", "5", f"max_header_len=100, H={h}.", prefix(h) + hb, exp, limits=L)
    vec(G, "header-limit-2-h-2", "5", "max_header_len=2 (the smallest useful limit), H=2.",
        prefix(2) + b"{}", valid(F({})), limits={"max_header_len": 2})
    vec(G, "header-limit-2-h-3", "5", "max_header_len=2, H=3.",
        prefix(3) + b"{} ", invalid("header_len_too_large", 0), limits={"max_header_len": 2})
    vec(G, "header-limit-2-h-1", "5", "max_header_len=2, H=1: too small, not too large.",
        prefix(1) + b"{", invalid("header_len_too_small", 0), limits={"max_header_len": 2})
    vec(G, "header-too-large-no-header-bytes", "5",
        "H > max with no header octets received: header_len_too_large, never unexpected_eof.",
        prefix(101), invalid("header_len_too_large", 0), limits=L)
    for lim, cases in ((0, (0, 1)), (1, (0, 1, 2)), (10, (0, 1, 9, 10, 11))):
        for b in cases:
            body = b"z" * b
            d = hdr({"kind": "x"}, body) if b else {"kind": "x", "body_len": 0}
            exp = valid(F(d, body)) if b <= lim else invalid("body_too_large", 4)
            vec(G, f"body-{b}-limit-{lim}", "5", f"max_body_len={lim}, B={b}.",
                frame(d, body), exp, limits={"max_body_len": lim})
    vec(G, "body-too-large-before-body-bytes", "5",
        "body_too_large is reported when the header is complete, before any body octet.",
        frame({"body_len": 11}), invalid("body_too_large", 4), limits={"max_body_len": 10})
    vec(G, "body-too-large-beats-digest", "5",
        "B > max_body_len with a wrong sha256 and the full body present: body_too_large.",
        frame({"body_len": 11, "sha256": "0" * 64}, b"z" * 11), invalid("body_too_large", 4),
        limits={"max_body_len": 10})
    d = {"body_len": MAX_BODY_LEN}
    hb = canon(d)
    vec(G, "default-body-max-is-accepted", "5",
        "body_len = 67108864 (default max) is accepted; the stream then ends: unexpected_eof, "
        "and no 64 MiB buffer may be allocated up front.",
        frame(d), invalid("unexpected_eof", 4 + len(hb), missing=MAX_BODY_LEN))
    vec(G, "default-body-max-plus-1", "5", "body_len = 67108865 under default limits.",
        frame({"body_len": MAX_BODY_LEN + 1}), invalid("body_too_large", 4))
    d = {"body_len": MAX_SAFE}
    hb = canon(d)
    vec(G, "raised-body-limit-2p53-minus-1", "5",
        "max_body_len raised to 2^53-1: body_len 2^53-1 is accepted and the truncated stream "
        "yields unexpected_eof with missing = 2^53-1 (streaming receivers).",
        frame(d), invalid("unexpected_eof", 4 + len(hb), missing=MAX_SAFE),
        limits={"max_body_len": MAX_SAFE}, tier="recommended")
    d = {"body_len": 5}
    vec(G, "raised-body-limit-small-body", "5", "max_body_len 2^53-1 does not change small frames.",
        frame(d, b"hello"), valid(F(d, b"hello")), limits={"max_body_len": MAX_SAFE}, tier="recommended")
    vec(G, "limits-apply-per-frame", "5",
        "Limits apply to each frame: two frames of B=10 under max_body_len=10.",
        frame({"body_len": 10}, b"0123456789") + frame({"body_len": 10}, b"9876543210"),
        valid(F({"body_len": 10}, b"0123456789"), F({"body_len": 10}, b"9876543210")),
        limits={"max_body_len": 10})
    d1 = {"body_len": 10}
    p1 = frame(d1, b"0123456789")
    vec(G, "second-frame-body-too-large", "5",
        "Second frame over the body limit: offset = second frame start + 4.",
        p1 + frame({"body_len": 11}, b"z" * 11),
        invalid("body_too_large", plen(p1) + 4, [F(d1, b"0123456789")]), limits={"max_body_len": 10})


def g_eof():
    G = "eof"
    vec(G, "empty-stream", "3.4", "An empty stream is a clean end: zero frames.", b"", valid())
    for k in (1, 2, 3):
        vec(G, f"prefix-{k}-octets", "3.4", f"Stream ends after {k} prefix octet(s).",
            prefix(2)[:k], invalid("unexpected_eof", k, missing=4 - k))
    hb = b'{"kind":"x"}'
    vec(G, "prefix-complete-no-header", "3.4", "Prefix complete, zero header octets.",
        prefix(len(hb)), invalid("unexpected_eof", 4, missing=len(hb)))
    for k in (1, 5, len(hb) - 1):
        vec(G, f"inside-header-{k}", "3.4", f"Stream ends after {k} of {len(hb)} header octets.",
            prefix(len(hb)) + hb[:k], invalid("unexpected_eof", 4 + k, missing=len(hb) - k))
    d = {"body_len": 5}
    hb = canon(d)
    vec(G, "header-complete-no-body", "3.4", "Header declares 5 body octets; none arrive.",
        frame(d), invalid("unexpected_eof", 4 + len(hb), missing=5))
    for k in (1, 4):
        vec(G, f"inside-body-{k}", "3.4", f"Stream ends after {k} of 5 body octets.",
            frame(d, b"hello"[:k]), invalid("unexpected_eof", 4 + len(hb) + k, missing=5 - k))
    p1, f1 = cframe({"kind": "a"}, b"abc")
    n1 = plen(p1)
    vec(G, "clean-end-between-frames", "3.4", "Two complete frames and nothing more: valid.",
        p1 + p1, valid(f1, f1))
    for k in (1, 2, 3):
        vec(G, f"after-frame-prefix-{k}", "3.4",
            f"A complete frame, then {k} octet(s) of a next prefix.",
            p1 + [prefix(2)[:k]], invalid("unexpected_eof", n1 + k, [f1], missing=4 - k))
    vec(G, "after-frame-inside-header", "3.4", "A complete frame, then a partial header.",
        p1 + [prefix(2) + b"{"], invalid("unexpected_eof", n1 + 5, [f1], missing=1))
    d2 = {"body_len": 3}
    vec(G, "after-frame-inside-body", "3.4", "A complete frame, then a frame whose body is cut short.",
        p1 + frame(d2, b"ab"),
        invalid("unexpected_eof", n1 + 4 + len(canon(d2)) + 2, [f1], missing=1))
    hb = b'{"kind":1,"x":'
    vec(G, "truncated-invalid-header-is-eof", "3.4",
        "The received part of the header is already invalid, but the header is incomplete: "
        "header checks run only on a complete header, so the error is unexpected_eof.",
        prefix(20) + hb, invalid("unexpected_eof", 4 + len(hb), missing=20 - len(hb)))
    vec(G, "truncated-bad-utf8-header-is-eof", "3.4",
        "Invalid UTF-8 in an incomplete header: still unexpected_eof.",
        prefix(10) + b"\xff\xfe", invalid("unexpected_eof", 6, missing=8))
    body = b"hello"
    d = {"body_len": 5, "sha256": sha256(b"HELLO")}
    hb = canon(d)
    vec(G, "truncated-body-with-wrong-digest", "3.4",
        "A body that is cut short is unexpected_eof, not digest_mismatch.",
        frame(d, body[:3]), invalid("unexpected_eof", 4 + len(hb) + 3, missing=2))
    d = {"body_len": 2}
    hb = canon(d)
    vec(G, "eof-seed-compat-prefix", "3.4", "seed-compat: stream ends after 2 prefix octets.",
        struct.pack("<i", 2)[:2], invalid("unexpected_eof", 2, missing=2), profile="seed-compat")
    vec(G, "eof-seed-compat-body", "3.4", "seed-compat: stream ends inside the body.",
        frame(d, b"a", "seed-compat"), invalid("unexpected_eof", 4 + len(hb) + 1, missing=1),
        profile="seed-compat")


def hjson(G, slug, spec, desc, text, exp_fn, **kw):
    """A single frame with literal header bytes; exp_fn(H) -> expectation."""
    vec(G, slug, spec, desc, raw1(text), exp_fn(len(text)), **kw)


def NJ(_h):
    return invalid("header_not_json", 4)


def g_json():
    G = "json"
    bad = [
        ("unclosed-object", b'{"a":1', "Object not closed."),
        ("unclosed-brace-space", b"{ ", "Only an opening brace and a space."),
        ("unclosed-string", b'{"a":"b}', "String not closed."),
        ("unclosed-array", b'{"a":[1}', "Array not closed."),
        ("mismatched-brackets", b'{"a":[1}]', "Brackets closed in the wrong order."),
        ("trailing-comma-object", b'{"a":1,}', "Trailing comma in an object."),
        ("trailing-comma-array", b'{"a":[1,]}', "Trailing comma in an array."),
        ("leading-comma", b'{,"a":1}', "Comma before the first member."),
        ("double-comma", b'{"a":1,,"b":2}', "Two commas in a row."),
        ("missing-colon", b'{"a" 1}', "Member without a colon."),
        ("missing-value", b'{"a":}', "Member without a value."),
        ("double-colon", b'{"a"::1}', "Two colons."),
        ("missing-comma", b'{"a":1 "b":2}', "Members without a separating comma."),
        ("single-quoted-name", b"{'a':1}", "Member name in single quotes."),
        ("single-quoted-value", b"{\"a\":'b'}", "String value in single quotes."),
        ("unquoted-name", b"{a:1}", "Unquoted member name."),
        ("number-as-name", b"{1:1}", "A number as member name."),
        ("name-without-value-nested", b'{"a":{"b"}}', "Nested member without a value."),
        ("line-comment-after", b'{"a":1}//c', "A // comment after the object."),
        ("line-comment-inside", b'{//c\n"a":1}', "A // comment inside the object."),
        ("block-comment", b'{/*c*/"a":1}', "A /* */ comment."),
        ("hash-comment", b'{"a":1}#c', "A # comment."),
        ("nan", b'{"a":NaN}', "NaN is not JSON."),
        ("nan-lowercase", b'{"a":nan}', "nan is not JSON."),
        ("infinity", b'{"a":Infinity}', "Infinity is not JSON."),
        ("minus-infinity", b'{"a":-Infinity}', "-Infinity is not JSON."),
        ("leading-zero", b'{"a":01}', "Number with a leading zero."),
        ("leading-zero-negative", b'{"a":-01}', "Negative number with a leading zero."),
        ("double-zero", b'{"a":00}', "00 is not a number."),
        ("plus-sign", b'{"a":+1}', "Leading plus sign."),
        ("leading-dot", b'{"a":.5}', "Fraction without an integer part."),
        ("trailing-dot", b'{"a":1.}', "Fraction without digits."),
        ("dot-exponent", b'{"a":1.e5}', "Fraction without digits before the exponent."),
        ("empty-exponent", b'{"a":1e}', "Exponent without digits."),
        ("signed-empty-exponent", b'{"a":1e+}', "Signed exponent without digits."),
        ("lone-minus", b'{"a":-}', "A minus sign alone."),
        ("hex-number", b'{"a":0x1F}', "Hexadecimal number."),
        ("underscore-number", b'{"a":1_000}', "Digit separators."),
        ("literal-tru", b'{"a":tru}', "Truncated literal true."),
        ("literal-true-capitalised", b'{"a":True}', "Capitalised True."),
        ("literal-null-upper", b'{"a":NULL}', "Upper-case NULL."),
        ("literal-undefined", b'{"a":undefined}', "undefined is not JSON."),
        ("raw-nul-in-string", b'{"a":"x\x00y"}', "Unescaped U+0000 inside a string."),
        ("raw-tab-in-string", b'{"a":"x\ty"}', "Unescaped TAB inside a string."),
        ("raw-lf-in-string", b'{"a":"x\ny"}', "Unescaped LF inside a string."),
        ("raw-cr-in-string", b'{"a":"x\ry"}', "Unescaped CR inside a string."),
        ("raw-us-in-string", b'{"a":"x\x1fy"}', "Unescaped U+001F inside a string."),
        ("raw-control-in-name", b'{"a\x01":1}', "Unescaped U+0001 inside a member name."),
        ("formfeed-as-whitespace", b'{\x0c"a":1}', "Form feed is not JSON whitespace."),
        ("vtab-as-whitespace", b'{\x0b"a":1}', "Vertical tab is not JSON whitespace."),
        ("nbsp-as-whitespace", b'{\xc2\xa0"a":1}', "U+00A0 is not JSON whitespace."),
        ("nul-as-whitespace", b'{"a":1}\x00', "A NUL octet after the object."),
        ("escape-x", b'{"a":"\\x41"}', "Invalid escape \\x."),
        ("escape-single-quote", b'{"a":"\\\'"}', "Invalid escape \\'."),
        ("escape-a", b'{"a":"\\a"}', "Invalid escape \\a."),
        ("escape-zero", b'{"a":"\\0"}', "Invalid escape \\0."),
        ("escape-space", b'{"a":"\\ "}', "Backslash followed by a space."),
        ("escape-capital-u", b'{"a":"\\U0041"}', "\\U is not an escape."),
        ("escape-u-short", b'{"a":"\\u41"}', "\\u with two hex digits."),
        ("escape-u-non-hex", b'{"a":"\\u004g"}', "\\u with a non-hex digit."),
        ("escape-at-end", b'{"a":"\\', "Backslash at the end of the header."),
        ("lone-high-surrogate", b'{"a":"\\ud800"}', "Escape producing a lone high surrogate."),
        ("lone-low-surrogate", b'{"a":"\\udc00"}', "Escape producing a lone low surrogate."),
        ("high-surrogate-then-ascii", b'{"a":"\\ud800\\u0041"}', "High surrogate followed by a non-surrogate escape."),
        ("high-surrogate-then-char", b'{"a":"\\ud800x"}', "High surrogate followed by a plain character."),
        ("reversed-surrogates", b'{"a":"\\udc00\\ud800"}', "Low surrogate before high surrogate."),
        ("two-high-surrogates", b'{"a":"\\ud800\\ud800"}', "Two high surrogates."),
        ("lone-surrogate-in-name", b'{"\\udfff":1}', "Lone surrogate escape in a member name."),
        ("trailing-garbage-x", b"{}x", "A letter after the object."),
        ("trailing-brace", b"{}}", "An extra closing brace."),
        ("trailing-bracket", b"{}]", "A closing bracket after the object."),
        ("trailing-comma-after", b"{},", "A comma after the object."),
        ("two-objects", b"{}{}", "Two JSON values without separation."),
        ("two-objects-space", b"{} {}", "Two JSON values separated by a space."),
        ("object-then-string", b'{}"x"', "Object followed by a string."),
        ("object-then-number", b"{} 1", "Object followed by a number."),
        ("whitespace-only-2", b"  ", "Header of two spaces (empty JSON text)."),
        ("whitespace-only-crlf", b"\r\n", "Header CR LF only."),
        ("whitespace-only-tabs", b"\t\t\t\t", "Header of tabs only."),
        ("bom-then-object", b"\xef\xbb\xbf{}", "A UTF-8 BOM before the object."),
        ("bom-after-space", b" \xef\xbb\xbf{}", "A BOM after leading whitespace."),
        ("bom-after-object", b"{}\xef\xbb\xbf", "A BOM after the object."),
    ]
    for slug, text, desc in bad:
        hjson(G, slug, "4.1", desc, text, NJ)

    good = [
        ("leading-trailing-whitespace", b" \t\r\n{}\n\r\t ", {}, "All four JSON whitespace characters around the object."),
        ("whitespace-everywhere", b'{ "a" : [ 1 , 2 ] , "b" : { } }', {"a": [1, 2], "b": {}}, "Insignificant whitespace between tokens."),
        ("all-simple-escapes", b'{"e":"\\"\\\\\\/\\b\\f\\n\\r\\t"}', {"e": "\"\\/\b\f\n\r\t"}, "All two-character escapes."),
        ("escaped-nul", b'{"a":"x\\u0000y"}', {"a": "x\x00y"}, "U+0000 written as an escape is allowed."),
        ("escaped-nul-in-name", b'{"\\u0000":1}', {"\x00": 1}, "A member name that is U+0000."),
        ("raw-del", b'{"a":"x\x7fy"}', {"a": "x\x7fy"}, "U+007F may appear unescaped."),
        ("empty-name", b'{"":1}', {"": 1}, "The empty string is a valid member name."),
        ("empty-string", b'{"a":""}', {"a": ""}, "Empty string value."),
        ("empty-containers", b'{"a":{},"b":[],"c":[{}],"d":[[]]}', {"a": {}, "b": [], "c": [{}], "d": [[]]}, "Nested empty containers."),
        ("literals", b'{"t":true,"f":false,"n":null}', {"t": True, "f": False, "n": None}, "true, false, null as values."),
        ("number-forms", b'{"a":0,"b":-1,"c":1.5,"d":-0.25,"e":1e2,"f":1E-2,"g":2e+1,"h":0.0}',
         {"a": 0, "b": -1, "c": 1.5, "d": -0.25, "e": 100, "f": 0.01, "g": 20, "h": 0}, "Valid number syntax forms."),
        ("minus-zero-unknown", b'{"z":-0}', {"z": 0}, "-0 in an unknown member is the number 0."),
        ("hex-escape-case", b'{"a":"\\u00e9\\u00E9"}', {"a": "\u00e9\u00e9"}, "\\u escapes with lower- and upper-case hex."),
        ("surrogate-pair-escape", b'{"a":"\\ud83d\\ude00"}', {"a": "\U0001F600"}, "A correctly paired surrogate escape."),
        ("escaped-bom-in-string", b'{"a":"\\ufeff"}', {"a": "\ufeff"}, "U+FEFF inside a string is an ordinary character."),
        ("raw-bom-in-string", b'{"a":"\xef\xbb\xbf"}', {"a": "\ufeff"}, "U+FEFF written raw inside a string."),
        ("escaped-slash", b'{"a":"\\/etc"}', {"a": "/etc"}, "\\/ decodes to /."),
        ("long-string", b'{"a":"' + b"x" * 1000 + b'"}', {"a": "x" * 1000}, "A 1000-character string."),
        ("newline-separated-members", b'{\n "a": 1,\n "b": 2\n}\n', {"a": 1, "b": 2}, "Pretty-printed header."),
    ]
    for slug, text, dec, desc in good:
        hjson(G, slug, "4.1", desc, text, lambda h, dec=dec: valid(F(dec)))


def g_toplevel():
    G = "toplevel"
    cases = [
        ("array", b"[]", "An empty array."),
        ("array-of-object", b'[{"body_len":0}]', "An array containing an object."),
        ("string", b'""', "An empty string."),
        ("string-of-braces", b'"{}"', "A string containing braces."),
        ("number", b"12", "A number."),
        ("number-padded", b" 1", "A one-digit number with leading space (H=2)."),
        ("negative-number", b"-1", "A negative number."),
        ("float", b"1.5", "A fraction."),
        ("null", b"null", "null."),
        ("true", b"true", "true."),
        ("false", b"false", "false."),
        ("array-with-dupes", b'[{"a":1,"a":2}]', "An array whose object has duplicate names: not-object wins."),
    ]
    for slug, text, desc in cases:
        hjson(G, slug, "4.1", "Top-level value is not an object: " + desc, text,
              lambda h: invalid("header_not_object", 4))
    hjson(G, "bad-json-array", "4.5", "Top-level array with a syntax error: header_not_json wins.",
          b"[1,]", NJ)
    hjson(G, "one-octet-number", "3.2", "A one-octet header '1' fails the minimum length first.",
          b"1", lambda h: invalid("header_len_too_small", 0))


def g_utf8():
    G = "utf8"
    bad = [
        ("ff-in-string", b'{"a":"\xff"}', "Octet FF never appears in UTF-8."),
        ("fe-in-string", b'{"a":"\xfe"}', "Octet FE never appears in UTF-8."),
        ("lone-continuation", b'{"a":"\x80"}', "A continuation octet with no lead."),
        ("overlong-nul-c0-80", b'{"a":"\xc0\x80"}', "Overlong 2-octet encoding of U+0000."),
        ("overlong-slash-c0-af", b'{"a":"\xc0\xaf"}', "Overlong 2-octet encoding of '/'."),
        ("overlong-c1-bf", b'{"a":"\xc1\xbf"}', "Overlong 2-octet encoding (C1 lead)."),
        ("overlong-3-e0-80-af", b'{"a":"\xe0\x80\xaf"}', "Overlong 3-octet encoding of '/'."),
        ("overlong-3-e0-9f-bf", b'{"a":"\xe0\x9f\xbf"}', "Overlong 3-octet encoding of U+07FF."),
        ("overlong-4-f0-80-80-af", b'{"a":"\xf0\x80\x80\xaf"}', "Overlong 4-octet encoding of '/'."),
        ("surrogate-ed-a0-80", b'{"a":"\xed\xa0\x80"}', "U+D800 encoded in UTF-8 (ED A0 80)."),
        ("surrogate-ed-bf-bf", b'{"a":"\xed\xbf\xbf"}', "U+DFFF encoded in UTF-8."),
        ("cesu8-pair", b'{"a":"\xed\xa0\xbd\xed\xb8\x80"}', "CESU-8 surrogate pair for U+1F600."),
        ("above-10ffff-f4-90", b'{"a":"\xf4\x90\x80\x80"}', "U+110000, beyond Unicode."),
        ("f5-lead", b'{"a":"\xf5\x80\x80\x80"}', "Lead octet F5."),
        ("five-octet-form", b'{"a":"\xf8\x88\x80\x80\x80"}', "Obsolete 5-octet form."),
        ("truncated-3-octet", b'{"a":"\xe6\xbe"}', "3-octet sequence cut after 2 octets (start of U+6FB3)."),
        ("truncated-2-octet", b'{"a":"\xc3"}', "2-octet lead followed by a quote."),
        ("truncated-4-octet", b'{"a":"\xf0\x9f\x98"}', "4-octet sequence cut after 3 octets."),
        ("truncated-at-header-end", b'{"a":1}\xe6', "A lead octet as the last header octet."),
        ("lead-then-ascii", b'{"a":"\xc3("}', "2-octet lead followed by ASCII."),
        ("3-lead-then-ascii", b'{"a":"\xe2(\xa1"}', "3-octet lead with an ASCII second octet."),
        ("invalid-in-name", b'{"\xff":1}', "Invalid octet in a member name."),
        ("invalid-between-tokens", b'{"a":1,\xff"b":2}', "Invalid octet outside any string."),
        ("latin1-e9", b'{"a":"caf\xe9"}', "Latin-1 encoded e-acute."),
        ("gbk-name", '{"file_name":"澳门.mp4"}'.encode("gbk"), "Header encoded as GBK instead of UTF-8."),
    ]
    for slug, text, desc in bad:
        hjson(G, slug, "4.1", desc, text, lambda h: invalid("header_not_utf8", 4))

    raw = json.dumps({"file_name": CJK}, ensure_ascii=False, separators=(",", ":")).encode()
    esc = json.dumps({"file_name": CJK}, separators=(",", ":")).encode()
    assert b"\\u6fb3" in esc
    hjson(G, "cjk-raw", "4.1", "CJK file name written as raw UTF-8.", raw, lambda h: valid(F({"file_name": CJK})))
    hjson(G, "cjk-escaped", "4.1",
          "The same name as \\u escapes (Python json.dumps default); decodes to the same string.",
          esc, lambda h: valid(F({"file_name": CJK})))
    mixed = b'{"file_name":"\\u6fb3' + CJK[1:].encode() + b'"}'
    hjson(G, "cjk-mixed", "4.1", "Escaped and raw characters mixed in one string.", mixed,
          lambda h: valid(F({"file_name": CJK})))
    hjson(G, "cjk-name", "4.1", "A member name in CJK (raw).", canon({"文件名": "a"}),
          lambda h: valid(F({"文件名": "a"})))
    hjson(G, "emoji-raw", "4.1", "U+1F600 as 4 raw octets.", b'{"a":"\xf0\x9f\x98\x80"}',
          lambda h: valid(F({"a": "\U0001F600"})))
    boundaries = [
        ("u0080", "\u0080"), ("u07ff", "\u07ff"), ("u0800", "\u0800"), ("ud7ff", "\ud7ff"),
        ("ue000", "\ue000"), ("ufffd", "\ufffd"), ("u10000", "\U00010000"), ("u10fffd", "\U0010fffd"),
    ]
    for slug, ch in boundaries:
        text = b'{"a":"' + ch.encode() + b'"}'
        hjson(G, f"boundary-{slug}", "4.1", f"Boundary code point U+{ord(ch):04X} written raw.", text,
              lambda h, ch=ch: valid(F({"a": ch})))
    for slug, ch in (("uffff", "\uffff"), ("ufdd0", "\ufdd0"), ("u10ffff", "\U0010ffff")):
        text = b'{"a":"' + ch.encode() + b'"}'
        hjson(G, f"noncharacter-{slug}", "4.2",
              f"Noncharacter U+{ord(ch):04X}: senders MUST NOT send it; a receiver MUST accept it as an "
              "ordinary character (one answer for every receiver, section 4.2).",
              text, lambda h, ch=ch: valid(F({"a": ch})))
    body = "不是内部或外部命令".encode("gbk")
    p, f = cframe({"kind": "gbk-body"}, body)
    vec(G, "body-need-not-be-utf8", "3.1", "UTF-8 applies to the header only; a GBK body is fine.", p, valid(f))


def nest(depth, inner=1, arrays=False):
    """Header text nested `depth` containers deep (top-level object = depth 1); the innermost
    value is the scalar `inner`, or an empty container when `inner` is None."""
    if inner is None:
        if arrays:
            return b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
        return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)
    if arrays:
        return b'{"a":' + b"[" * (depth - 1) + str(inner).encode() + b"]" * (depth - 1) + b"}"
    return b'{"a":' * (depth - 1) + b'{"a":' + str(inner).encode() + b"}" * depth


def nest_value(depth, inner=1, arrays=False):
    if inner is None:
        if arrays:
            v = []
            for _ in range(depth - 2):
                v = [v]
            return {"a": v}
        v = {}
        for _ in range(depth - 1):
            v = {"a": v}
        return v
    if arrays:
        v = inner
        for _ in range(depth - 1):
            v = [v]
        return {"a": v}
    v = inner
    for _ in range(depth):
        v = {"a": v}
    return v


def g_ijson():
    G = "ijson"
    dupes = [
        ("dup-same-value", b'{"a":1,"a":1}', "Same name twice with the same value."),
        ("dup-different-value", b'{"a":1,"a":2}', "Same name twice with different values."),
        ("dup-nested", b'{"x":{"a":1,"a":2}}', "Duplicate inside a nested object."),
        ("dup-in-array", b'{"x":[{"a":1,"a":2}]}', "Duplicate inside an object in an array."),
        ("dup-deep", b'{"x":{"y":{"z":{"a":1,"b":2,"a":3}}}}', "Duplicate four levels down, not adjacent."),
        ("dup-escaped-name", b'{"a":1,"\\u0061":2}', "\"a\" and \"\\u0061\" are the same name."),
        ("dup-escaped-both", b'{"\\u0041":1,"\\u0041":2}', "Same escaped name twice."),
        ("dup-escaped-cjk", b'{"\xe6\xbe\xb3":1,"\\u6fb3":2}', "Raw and escaped CJK name."),
        ("dup-escaped-slash", b'{"a/b":1,"a\\/b":2}', "\"a/b\" and \"a\\/b\" are the same name."),
        ("dup-empty-name", b'{"":1,"":2}', "The empty name twice."),
        ("dup-body-len", b'{"body_len":0,"body_len":0}', "Registered member body_len twice."),
        ("dup-kind", b'{"kind":"a","kind":"b"}', "Registered member kind twice."),
        ("dup-last-member", b'{"a":1,"b":2,"c":3,"d":4,"a":5}', "Duplicate of the first member at the end."),
    ]
    for slug, text, desc in dupes:
        hjson(G, slug, "4.2", desc, text, lambda h: invalid("duplicate_member", 4))
    nondupes = [
        ("case-differs", b'{"a":1,"A":2}', {"a": 1, "A": 2}, "Names differing in case are distinct."),
        ("nfc-vs-nfd", '{"\u00e9":1,"e\u0301":2}'.encode(), {"\u00e9": 1, "e\u0301": 2},
         "NFC and NFD forms are distinct names (no normalisation)."),
        ("same-name-different-objects", b'{"a":{"a":{"a":1}}}', {"a": {"a": {"a": 1}}}, "Same name at different depths."),
        ("same-name-sibling-objects", b'{"x":{"a":1},"y":{"a":1}}', {"x": {"a": 1}, "y": {"a": 1}}, "Same name in sibling objects."),
        ("array-repeats-values", b'{"x":[1,1,{"a":1},{"a":1}]}', {"x": [1, 1, {"a": 1}, {"a": 1}]}, "Repeated array elements are fine."),
    ]
    for slug, text, dec, desc in nondupes:
        hjson(G, slug, "4.2", desc, text, lambda h, dec=dec: valid(F(dec)))

    NOR = lambda h: invalid("number_out_of_range", 4)  # noqa: E731
    nums_ok = [
        ("max-safe", b'{"n":9007199254740991}', MAX_SAFE, "2^53-1 is the largest allowed integer."),
        ("min-safe", b'{"n":-9007199254740991}', -MAX_SAFE, "-(2^53-1) is the smallest allowed integer."),
        ("max-safe-float", b'{"n":9007199254740991.0}', MAX_SAFE, "2^53-1 written with a fraction."),
        ("max-safe-exponent", b'{"n":9.007199254740991e15}', MAX_SAFE, "2^53-1 written with an exponent."),
        ("small-fraction", b'{"n":0.1}', 0.1, "An ordinary fraction."),
        ("minus-zero-float", b'{"n":-0.0}', 0, "-0.0."),
    ]
    for slug, text, val, desc in nums_ok:
        hjson(G, slug, "4.2", desc, text, lambda h, val=val: valid(F({"n": val})))
    nums_bad = [
        ("2p53", b'{"n":9007199254740992}', "2^53."),
        ("minus-2p53", b'{"n":-9007199254740992}', "-2^53."),
        ("2p53-plus-1", b'{"n":9007199254740993}', "2^53+1."),
        ("2p64", b'{"n":18446744073709551616}', "2^64."),
        ("huge-integer", b'{"n":' + b"9" * 40 + b"}", "A 40-digit integer."),
        ("1e16", b'{"n":1e16}', "1e16 (a float above 2^53-1)."),
        ("2p53-float", b'{"n":9007199254740992.0}', "2^53 written with a fraction."),
        ("big-float", b'{"n":1.5e300}', "1.5e300."),
        ("big-negative-float", b'{"n":-1.5e300}', "-1.5e300."),
        ("in-array", b'{"n":[1,2,9007199254740992]}', "Out-of-range number inside an array."),
        ("nested-deep", b'{"a":{"b":{"c":[{"d":-1e20}]}}}', "Out-of-range number four levels down."),
        ("in-unknown-member", b'{"kind":"x","size_in_bits":72057594037927936}', "Out-of-range value of an unknown member."),
        ("id-2p53", b'{"id":9007199254740992}', "Registered id = 2^53."),
    ]
    for slug, text, desc in nums_bad:
        hjson(G, f"number-{slug}", "4.2", desc, text, NOR)
    NJ4 = lambda h: invalid("header_not_json", 4)  # noqa: E731
    # Overflow: a number with no binary64 value (its correctly rounded value is infinite) is
    # header_not_json, rank 2, so it wins over every later rank (section 4.2).
    for slug, text, desc in (("1e400", b'{"n":1e400}', "1e400 overflows binary64."),
                             ("minus-1e400", b'{"n":-1e400}', "-1e400 overflows binary64."),
                             ("body-len-1e400", b'{"body_len":1e400}', "body_len 1e400."),
                             ("1e400-after-duplicate", b'{"a":1,"a":1e400}',
                              "A duplicate and an overflow: the overflow is rank 2."),
                             ("1e400-in-array", b"[1e400]", "An overflow in a top-level array: rank 2 beats rank 3."),
                             ("1e400-with-v-2", b'{"v":2,"n":1e400}', "v=2 and an overflow: rank 2 beats rank 5."),
                             ("1e400-in-unknown-member", b'{"kind":"x","x-n":[1,2e308]}',
                              "2e308 inside an unknown member overflows."),
                             ("largest-finite-plus", b'{"n":1.7976931348623159e308}',
                              "Just above the largest finite binary64: rounds to infinity.")):
        hjson(G, f"number-{slug}", "4.2", desc + " Expect header_not_json.", text, NJ4)
    # Underflow: the nearest binary64 value is 0; accepted as 0 (section 4.2).
    hjson(G, "number-1e-400", "4.2", "1e-400 rounds to 0 and is accepted as 0.",
          b'{"n":1e-400}', lambda h: valid(F({"n": 0})))
    hjson(G, "number-body-len-1e-400", "4.2",
          "body_len 1e-400 is 0 in value but not an integer literal: invalid_body_len.",
          b'{"body_len":1e-400}', lambda h: invalid("invalid_body_len", 4))
    hjson(G, "number-1e-400-after-duplicate", "4.2", "A duplicate and an underflow: duplicate_member.",
          b'{"a":1,"a":1e-400}', lambda h: invalid("duplicate_member", 4))
    hjson(G, "number-1e-400-in-array", "4.2", "An underflow in a top-level array: header_not_object.",
          b"[1e-400]", lambda h: invalid("header_not_object", 4))
    # Rounding: the nearest binary64 value, ties to even (IEEE 754 roundTiesToEven).
    for slug, text, ok, desc in (
            ("tie-2p53-minus-half", b'{"n":9007199254740991.5}', None,
             "Halfway between 2^53-1 and 2^53: ties to even gives 2^53, out of range."),
            ("below-tie", b'{"n":9007199254740991.4999}', MAX_SAFE,
             "Just below the tie: rounds to 2^53-1, in range."),
            ("2p53-minus-1-point-1", b'{"n":9007199254740991.1}', MAX_SAFE,
             "Rounds to 2^53-1, in range (the value delivered is 2^53-1)."),
            ("minus-tie", b'{"n":-9007199254740991.5}', None, "Negative tie: -2^53, out of range."),
            ("exponent-tie", b'{"n":9.0071992547409915e15}', None, "The tie written with an exponent."),
            ("2p53-minus-1-exponent-below", b'{"n":90071992547409910e-1}', MAX_SAFE,
             "2^53-1 written as a mantissa and a negative exponent.")):
        exp = (lambda h, ok=ok: valid(F({"n": ok}))) if ok is not None else NOR
        hjson(G, f"round-{slug}", "4.2", desc, text, exp)
    # Number length cap: 64 octets.
    n64 = b"0." + b"1" * 62
    n65 = b"0." + b"1" * 63
    hjson(G, "number-length-64", "4.2", "A 64-octet number token is accepted.",
          b'{"n":' + n64 + b"}", lambda h: valid(F({"n": float(n64)})))
    hjson(G, "number-length-65", "4.2", "A 65-octet number token is header_not_json (cap).",
          b'{"n":' + n65 + b"}", NJ4)
    hjson(G, "number-length-65-integer", "4.2",
          "A 65-digit integer: the length cap (rank 2) wins over number_out_of_range (rank 6).",
          b'{"n":' + b"9" * 65 + b"}", NJ4)
    hjson(G, "number-length-64-negative-exponent", "4.2", "64 octets: sign, digits and exponent all count.",
          b'{"n":-0.' + b"1" * 55 + b"e-0001}", lambda h: valid(F({"n": float("-0." + "1" * 55 + "e-0001")})))

    # Depth: the number of objects and arrays on the path to the deepest value; scalars add
    # nothing. {"a":[[1]]} has depth 3. 64 is accepted; 65 is header_not_json.
    hjson(G, "depth-example-3", "4.2", '{"a":[[1]]} has depth 3 (object, array, array; the 1 adds nothing).',
          b'{"a":[[1]]}', lambda h: valid(F({"a": [[1]]})))
    for kind in ("objects", "arrays"):
        arrays = kind == "arrays"
        for end, inner in (("scalar", 1), ("empty", None)):
            for d in (63, 64, 65):
                text = nest(d, inner, arrays)
                v = nest_value(d, inner, arrays)
                assert json_depth(v) == d, (kind, end, d)
                slug = f"depth-{d}-{kind}" + ("" if end == "scalar" else "-empty")
                what = "a scalar" if end == "scalar" else "an empty " + ("array" if arrays else "object")
                if d <= 64:
                    hjson(G, slug, "4.2", f"Depth {d} ({kind}, innermost {what}) MUST be accepted.",
                          text, lambda h, v=v: valid(F(v)))
                else:
                    hjson(G, slug, "4.2", f"Depth {d} ({kind}, innermost {what}) is header_not_json.",
                          text, NJ4)
    for d in (129, 1000):
        text = b'{"kind":1,"a":' + b"[" * (d - 1) + b"]" * (d - 1) + b"}"
        hjson(G, f"depth-{d}", "4.2",
              f"Depth {d} (arrays) plus kind:1: the depth cap (rank 2) wins over invalid_member.",
              text, NJ4)
    hjson(G, "depth-65-in-array", "4.2", "Depth 65 inside a top-level array: rank 2 beats header_not_object.",
          b"[" * 65 + b"]" * 65, NJ4)
    # Member cap: 1024 members in one object.
    def members(n, nested=False):
        body = b",".join(b'"m%04d":0' % i for i in range(n))
        return b'{"o":{' + body + b"}}" if nested else b"{" + body + b"}"
    hjson(G, "members-1024", "4.2", "An object with 1024 members is accepted.",
          members(1024), lambda h: valid(F({"m%04d" % i: 0 for i in range(1024)})))
    hjson(G, "members-1025", "4.2", "An object with 1025 members is header_not_json (cap).", members(1025), NJ4)
    hjson(G, "members-1025-nested", "4.2", "The cap applies to every object, at any depth.",
          members(1025, nested=True), NJ4)
    many = b'{"a":[' + b",".join(b"0" for _ in range(1100)) + b"]}"
    hjson(G, "array-1100-elements", "4.2", "Arrays have no element cap: 1100 elements are accepted.",
          many, lambda h: valid(F({"a": [0] * 1100})))


def json_depth(v):
    if isinstance(v, dict):
        return 1 + max([json_depth(x) for x in v.values()] or [0])
    if isinstance(v, list):
        return 1 + max([json_depth(x) for x in v] or [0])
    return 0


def g_members():
    G = "members"
    IBL = lambda h: invalid("invalid_body_len", 4)  # noqa: E731
    IM = lambda h: invalid("invalid_member", 4)  # noqa: E731
    for slug, n in (("zero", 0), ("five", 5)):
        body = b"x" * n
        d = {"body_len": n}
        vec(G, f"body-len-{slug}", "4.4", f"body_len {n}.", frame(d, body), valid(F(d, body)))
    for slug, lit in (("string", b'"5"'), ("negative", b"-1"), ("minus-zero", b"-0"), ("fraction-1-0", b"1.0"),
                      ("fraction", b"1.5"), ("exponent", b"1e3"), ("exponent-upper", b"1E0"),
                      ("null", b"null"), ("true", b"true"), ("false", b"false"), ("array", b"[5]"),
                      ("object", b'{"n":5}'), ("negative-float", b"-2.5")):
        hjson(G, f"body-len-{slug}", "4.4", f"body_len = {lit.decode()} is not a non-negative integer literal.",
              b'{"body_len":' + lit + b"}", IBL)
    for val in ("echo", "", "file.put"):
        d = {"kind": val}
        vec(G, f"kind-{val or 'empty'}".replace(".", "-"), "4.4", f"kind = {val!r} (a string).", frame(d), valid(F(d)))
    wrong = (("number", b"1"), ("null", b"null"), ("true", b"true"), ("array", b'["echo"]'), ("object", b"{}"))
    for slug, lit in wrong:
        hjson(G, f"kind-{slug}", "4.4", f"kind = {lit.decode()} is not a string.", b'{"kind":' + lit + b"}", IM)
    for val in (0, 42, MAX_SAFE):
        d = {"id": val}
        vec(G, f"id-{val}", "4.4", f"id = {val}.", frame(d), valid(F(d)))
    for slug, lit in (("negative", b"-1"), ("minus-zero", b"-0"), ("fraction", b"1.5"), ("fraction-1-0", b"1.0"),
                      ("exponent", b"1e2"), ("string", b'"1"'), ("null", b"null"), ("true", b"true"),
                      ("array", b"[1]"), ("object", b"{}")):
        hjson(G, f"id-{slug}", "4.4", f"id = {lit.decode()} is not a non-negative integer literal.",
              b'{"id":' + lit + b"}", IM)
    for slug, val in (("plain", "a.txt"), ("empty", ""), ("cjk", CJK), ("traversal", "../../etc/passwd"),
                      ("absolute", "/etc/passwd")):
        d = {"name": val}
        vec(G, f"name-{slug}", "4.4",
            f"name = {val!r}: any string is valid at the codec level (file-name safety is the application's job, spec 11).",
            frame(d), valid(F(d)))
    for slug, lit in (("number", b"1"), ("null", b"null"), ("false", b"false"), ("array", b'["a"]'), ("object", b"{}")):
        hjson(G, f"name-{slug}", "4.4", f"name = {lit.decode()} is not a string.", b'{"name":' + lit + b"}", IM)
    good = sha256(b"")
    for slug, lit, desc in (
        ("upper", good.upper(), "upper-case hex"),
        ("mixed-case", good[:32] + good[32:].upper(), "mixed-case hex"),
        ("63", good[:63], "63 hex digits"),
        ("65", good + "0", "65 hex digits"),
        ("non-hex", "g" + good[1:], "a non-hex digit"),
        ("prefixed", "sha256:" + good, "an algorithm prefix"),
        ("spaces", " " + good, "a leading space"),
        ("base64", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "base64 instead of hex"),
    ):
        d = {"sha256": lit}
        vec(G, f"sha256-{slug}", "4.4", f"sha256 with {desc} is invalid_member (checked before any digest).",
            frame(d), invalid("invalid_member", 4))
    for slug, lit in (("null", b"null"), ("number", b"1"), ("array", b"[]"), ("true", b"true")):
        hjson(G, f"sha256-{slug}", "4.4", f"sha256 = {lit.decode()} is not a string.", b'{"sha256":' + lit + b"}", IM)
    d = {"sha256": good}
    vec(G, "sha256-valid-empty-body", "4.4", "sha256 of the empty body.", frame(d), valid(F(d)))
    d = {"kind": "x", "id": 1, "name": "n", "sha256": good, "v": 1}
    vec(G, "all-registered-valid", "4.4", "Every registered member with a valid value.", frame(d), valid(F(d)))


def g_version():
    G = "version"
    d = {"v": 1}
    vec(G, "v-1", "4.4", "v = 1.", frame(d), valid(F(d)))
    d = {"v": 1, "kind": "echo"}
    vec(G, "v-1-with-kind", "4.4", "v = 1 alongside kind.", frame(d), valid(F(d)))
    for val in (2, 0, 100, MAX_SAFE):
        vec(G, f"v-{val}", "4.4", f"v = {val} is an integer literal other than 1: unsupported_version.",
            frame({"v": val}), invalid("unsupported_version", 4))
    for slug, lit in (("negative", b"-1"), ("minus-zero", b"-0"), ("2p53", b"9007199254740992"),
                      ("2p53-plus-1", b"9007199254740993"), ("40-digits", b"9" * 40),
                      ("negative-huge", b"-" + b"9" * 30)):
        hjson(G, f"v-{slug}", "4.5",
              f"v = {lit.decode()} is an integer literal other than 1, whatever its sign or size: "
              "unsupported_version (rank 5).",
              b'{"v":' + lit + b"}", lambda h: invalid("unsupported_version", 4))
    for slug, text in (("v-2-kind-1", b'{"v":2,"kind":1}'), ("v-2-kind-1-v-last", b'{"kind":1,"v":2}'),
                       ("v-escaped-name", b'{"\u0076":2}'), ("v-2-id-string", b'{"id":"x","v":2}'),
                       ("v-7-body-len-fraction", b'{"body_len":1.5,"v":7}')):
        hjson(G, slug, "4.5", f"{text.decode()}: unsupported_version wins over every member rule (rank 5).",
              text, lambda h: invalid("unsupported_version", 4))
    hjson(G, "v-nested-is-data", "4.3", "A v inside a nested object is ordinary data.",
          b'{"x":{"v":2}}', lambda h: valid(F({"x": {"v": 2}})))
    for slug, lit in (("string-1", b'"1"'), ("fraction-1-0", b"1.0"), ("exponent-1e0", b"1e0"),
                      ("null", b"null"), ("true", b"true"), ("array", b"[1]"),
                      ("string-2", b'"2"'), ("fraction", b"1.5"), ("fraction-2-0", b"2.0"),
                      ("exponent-2e0", b"2e0"), ("negative-fraction", b"-1.5")):
        hjson(G, f"v-{slug}", "4.4", f"v = {lit.decode()} is not a non-negative integer literal: invalid_member.",
              b'{"v":' + lit + b"}", lambda h: invalid("invalid_member", 4))
    p1, f1 = cframe({"v": 1})
    vec(G, "v-2-in-second-frame", "4.4", "A valid v=1 frame then a v=2 frame.",
        p1 + frame({"v": 2}), invalid("unsupported_version", plen(p1) + 4, [f1]))


def g_extension():
    G = "extension"
    cases = [
        ("scalar", {"kind": "x", "colour": "blue"}, "An unknown string member."),
        ("all-types", {"s": "x", "i": 7, "f": 1.5, "t": True, "f2": False, "n": None}, "Unknown members of every scalar type."),
        ("nested-object", {"meta": {"a": {"b": [1, {"c": None}]}}}, "An unknown member holding nested objects and arrays."),
        ("nested-array", {"list": [[], [1, [2, [3]]], {"k": "v"}]}, "An unknown member holding nested arrays."),
        ("order-preserved", {"zeta": 1, "alpha": 2, "mid": 3, "body_len": 0, "beta": 4},
         "Members in non-alphabetical order, registered member in the middle (order must be kept)."),
        ("unicode-names", {"名前": "値", "é": 1}, "Unknown members with non-ASCII names."),
        ("registered-name-other-case", {"Body_len": 5, "KIND": 7, "Sha256": 0}, "Names that differ from registered names only in case are unknown members."),
        ("null-values", {"x": None, "y": None}, "Unknown members with null."),
        ("max-safe-values", {"big": MAX_SAFE, "small": -MAX_SAFE}, "Unknown members at the number limits."),
        ("many-members", {f"m{i:03d}": i for i in range(200)}, "200 unknown members."),
        ("md5-unknown-in-lhp1", {"md5": "0" * 32}, "In lhp1, md5 is an unknown member and is not verified."),
    ]
    for slug, d, desc in cases:
        body = b"body" if slug == "order-preserved" else b""
        if slug == "order-preserved":
            d = dict(d)
            d["body_len"] = 4
        vec(G, slug, "4.3", desc + " All are preserved.", frame(d, body), valid(F(d, body)))
    d = {"meta": {"body_len": "x", "kind": 1, "v": 2}, "list": [{"sha256": "X"}]}
    vec(G, "registered-names-nested-are-data", "4.3",
        "Registered-member rules apply to the top-level object only: nested body_len/kind/v/sha256 are data.",
        frame(d), valid(F(d)))
    d = {"file_size": 5}
    p = frame(d, b"hello")
    vec(G, "file-size-unknown-in-lhp1", "4.3",
        "In lhp1 file_size is an unknown member: the body is empty, so the 5 octets 'hello' "
        "are read as the next prefix ('hell' = 0x68656C6C).",
        p, invalid("header_len_too_large", 4 + len(canon(d)), [F(d)]))


def g_digest():
    G = "digest"
    body = b"hello"
    d = {"body_len": 5, "sha256": sha256(body)}
    vec(G, "sha256-correct", "6", "Correct sha256 of 'hello'.", frame(d, body), valid(F(d, body)))
    d0 = {"sha256": sha256(b"")}
    vec(G, "sha256-empty-body", "6", "Correct sha256 of the empty body.", frame(d0), valid(F(d0)))
    d = {"body_len": 5, "sha256": sha256(b"HELLO")}
    hb = canon(d)
    vec(G, "sha256-wrong", "6", "sha256 of other content: digest_mismatch at the first body octet.",
        frame(d, body), invalid("digest_mismatch", 4 + len(hb)))
    d = {"sha256": sha256(b"x")}
    hb = canon(d)
    vec(G, "sha256-wrong-empty-body", "6", "Wrong digest, empty body: offset is the frame end.",
        frame(d), invalid("digest_mismatch", 4 + len(hb)))
    d = {"body_len": 5, "sha256": sha256(body).upper()}
    vec(G, "sha256-uppercase-correct", "6", "Correct digest in upper case: invalid_member (lowercase only).",
        frame(d, body), invalid("invalid_member", 4))
    d = {"body_len": 5, "sha256": sha256(body)[:-1]}
    vec(G, "sha256-short", "6", "63 hex digits: invalid_member.", frame(d, body), invalid("invalid_member", 4))
    d = {"body_len": 5, "sha256": sha256(body) + "00"}
    vec(G, "sha256-long", "6", "66 hex digits: invalid_member.", frame(d, body), invalid("invalid_member", 4))
    d = {"body_len": 5, "sha256": md5(body)}
    vec(G, "sha256-holds-md5", "6", "An md5 (32 hex digits) in sha256: invalid_member.", frame(d, body), invalid("invalid_member", 4))
    p1, f1 = cframe({"kind": "a"}, b"abc")
    d = {"body_len": 5, "sha256": sha256(b"hellO")}
    vec(G, "sha256-wrong-second-frame", "6", "Digest mismatch in the second frame.",
        p1 + frame(d, body), invalid("digest_mismatch", plen(p1) + 4 + len(canon(d)), [f1]))
    dd = {"body_len": 5, "sha256": sha256(b"HELLO")}
    vec(G, "mismatch-ends-stream", "6", "After digest_mismatch, later valid frames are not delivered.",
        frame(dd, body) + p1, invalid("digest_mismatch", 4 + len(canon(dd))))
    body = bytes(range(256)) * 4
    d = {"body_len": len(body), "sha256": sha256(body)}
    vec(G, "sha256-binary-body", "6", "sha256 over a 1024-octet binary body.", frame(d, body), valid(F(d, body)))
    flipped = bytearray(body)
    flipped[-1] ^= 1
    vec(G, "sha256-last-octet-flipped", "6", "Last body octet changed by one bit.",
        frame(d, bytes(flipped)), invalid("digest_mismatch", 4 + len(canon(d))))


def g_precedence():
    G = "precedence"
    cases = [
        ("utf8-over-json", b'{"a":"\xff"', "header_not_utf8", "Invalid UTF-8 and unclosed object."),
        ("utf8-over-object", b'["\xff"]', "header_not_utf8", "Invalid UTF-8 in a top-level array."),
        ("utf8-over-duplicate", b'{"a":"\xff","a":1}', "header_not_utf8", "Invalid UTF-8 and a duplicate."),
        ("json-over-object", b"[1,]", "header_not_json", "Syntax error in a top-level array."),
        ("json-over-duplicate", b'{"a":1,"a":2,}', "header_not_json", "Duplicate and trailing comma."),
        ("json-over-number", b'{"n":1e999,}', "header_not_json", "Overflowing number and trailing comma."),
        ("object-over-duplicate", b'[{"a":1,"a":2}]', "header_not_object", "Array containing an object with a duplicate."),
        ("object-over-number", b"[9007199254740992]", "header_not_object", "Array containing an out-of-range number."),
        ("duplicate-over-number", b'{"a":1,"a":9007199254740992}', "duplicate_member", "Duplicate with an out-of-range value."),
        ("duplicate-over-body-len", b'{"body_len":"x","body_len":"y"}', "duplicate_member", "Duplicate body_len of the wrong type."),
        ("number-over-body-len", b'{"body_len":"x","n":9007199254740992}', "number_out_of_range",
         "Wrong-type body_len first, out-of-range number later: range check wins."),
        ("number-over-member", b'{"kind":1,"n":-9007199254740992}', "number_out_of_range", "Wrong-type kind and an out-of-range number."),
        ("body-len-over-member", b'{"kind":1,"body_len":-1}', "invalid_body_len", "Wrong-type kind before an invalid body_len."),
        ("version-over-body-len", b'{"v":2,"body_len":"5"}', "unsupported_version",
         "v=2 and an invalid body_len: the version (rank 5) is checked first."),
        ("version-over-member", b'{"v":2,"kind":1}', "unsupported_version",
         "v=2 and a wrong-type kind: a later version may change kind's type."),
        ("version-over-number", b'{"v":2,"n":9007199254740992}', "unsupported_version",
         "v=2 and an out-of-range number: a later version may widen the range."),
        ("duplicate-over-version", b'{"v":2,"a":1,"a":2}', "duplicate_member",
         "v=2 and a duplicate name: unique names are version-invariant (rank 4)."),
        ("object-over-version", b'[{"v":2}]', "header_not_object", "v=2 inside a top-level array: not an object."),
        ("version-string-over-v2", b'{"v":"2"}', "invalid_member", "v as a string is invalid_member, not unsupported_version."),
        ("member-all-wrong", b'{"v":"x","sha256":1,"name":2,"id":"x","kind":3}', "invalid_member", "Every registered member wrong."),
        ("version-over-sha256", b'{"v":3,"sha256":"ABC"}', "unsupported_version", "Bad sha256 and v=3."),
        ("member-over-v-fraction", b'{"v":2.0,"kind":1}', "invalid_member",
         "v=2.0 is not an integer literal, so it is checked at rank 8 after kind."),
    ]
    for slug, text, code, desc in cases:
        hjson(G, slug, "4.5", f"{desc} Expect {code}.", text, lambda h, code=code: invalid(code, 4))
    vec(G, "version-over-body-too-large", "4.5", "v=2 and body_len over the limit: unsupported_version.",
        frame({"v": 2, "body_len": 100}), invalid("unsupported_version", 4), limits={"max_body_len": 10})
    vec(G, "member-over-body-too-large", "4.5", "Wrong-type id and body_len over the limit: invalid_member.",
        frame({"id": "7", "body_len": 100}), invalid("invalid_member", 4), limits={"max_body_len": 10})
    vec(G, "body-too-large-over-eof", "4.5", "Body over the limit and the body missing: body_too_large.",
        frame({"body_len": 100}), invalid("body_too_large", 4), limits={"max_body_len": 10})
    vec(G, "too-small-over-eof", "4.5", "H=1 and nothing follows: header_len_too_small, not unexpected_eof.",
        prefix(1), invalid("header_len_too_small", 0))
    d = {"body_len": 3}
    vec(G, "header-error-over-missing-body", "4.5",
        "A complete header with a duplicate, body absent: duplicate_member (the header is checked when complete).",
        raw1(b'{"body_len":3,"body_len":3}'), invalid("duplicate_member", 4))
    vec(G, "eof-over-digest", "4.5", "Wrong digest and truncated body: unexpected_eof.",
        frame({"body_len": 3, "sha256": "0" * 64}, b"ab"),
        invalid("unexpected_eof", 4 + len(canon({"body_len": 3, "sha256": "0" * 64})) + 2, missing=1))
    _ = d


def g_errors():
    G = "errors"
    p1, f1 = cframe({"kind": "a"}, b"1")
    bad = raw1(b'{"a":1,}')
    vec(G, "error-is-terminal", "7.2",
        "After a decode error no further frames are delivered, even if valid ones follow.",
        bad + p1 + p1, invalid("header_not_json", 4))
    vec(G, "frames-before-error-delivered", "7.2",
        "Two valid frames, then an error: both frames are delivered, then the error.",
        p1 + p1 + bad, invalid("header_not_json", 2 * plen(p1) + 4, [f1, f1]))
    vec(G, "error-after-prefix-error", "7.2", "Bytes after a prefix error are ignored.",
        prefix(0) + b"\x00\x00\x00\x02{}", invalid("header_len_too_small", 0))
    ef = {"kind": "error", "code": "header_not_json", "message": "header is not valid JSON", "offset": 4}
    p, f = cframe(ef)
    vec(G, "error-frame-shape", "7.2", "The error frame a receiver sends (spec 7.2) is an ordinary valid frame.", p, valid(f))


def g_wrongproto():
    G = "wrong-protocol"
    protos = [
        ("http-get", [Utf8("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")], "HTTP GET request (H = 0x47455420 = 1195725856)."),
        ("http-post", [Utf8("POST /upload HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")], "HTTP POST request."),
        ("http-put", [Utf8("PUT /a.txt HTTP/1.1\r\n\r\n")], "HTTP PUT request."),
        ("http-head", [Utf8("HEAD / HTTP/1.0\r\n\r\n")], "HTTP HEAD request."),
        ("http2-preface", [Utf8("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")], "HTTP/2 connection preface."),
        ("tls-client-hello", [bytes.fromhex("1603010200010001fc0303") + bytes(range(32)) + bytes.fromhex("0020130113021303")],
         "TLS 1.2/1.3 ClientHello record (16 03 01 ..., H >= 0x16030100 = 369295616)."),
        ("tls-10-record", [bytes.fromhex("1603000050010000")], "SSL 3.0-style record header 16 03 00."),
        ("ssh-banner", [Utf8("SSH-2.0-OpenSSH_9.6\r\n")], "SSH identification string."),
        ("smtp-like-ehlo", [Utf8("EHLO example.com\r\n")], "A line-based text protocol."),
        ("bare-json", [Utf8('{"kind":"echo"}')], "JSON sent without a length prefix."),
        ("seed-bare-command", [Utf8("dir")], "The seeds' bare command string 'dir' (3 octets: unexpected_eof inside the prefix)."),
        ("seed-bare-command-ls", [Utf8("ls -la")], "The seeds' bare command string 'ls -la'."),
    ]
    for slug, parts, desc in protos:
        data = materialize(parts)
        if len(data) < 4:
            exp = invalid("unexpected_eof", len(data), missing=4 - len(data))
        else:
            exp = invalid("header_len_too_large", 0)
            assert struct.unpack(">I", data[:4])[0] > MAX_HEADER_LEN
        vec(G, slug, "7.3", desc, parts, exp)
        if len(data) >= 4:
            p1, f1 = cframe({"kind": "hello"})
            vec(G, slug + "-after-frame", "7.3", desc + " Sent after one valid frame: offset of the second frame.",
                p1 + parts, invalid("header_len_too_large", plen(p1), [f1]))
    for slug in ("http-get", "tls-client-hello", "ssh-banner"):
        parts = [p for (s, p, _) in protos if s == slug][0]
        vec(G, slug + "-seed-compat", "7.3", f"{slug} under seed-compat (little-endian signed prefix) is also too large.",
            parts, invalid("header_len_too_large", 0), profile="seed-compat")


def g_streams():
    G = "streams"
    for n in (100, 1000):
        parts, frames = [], []
        for i in range(n):
            body = (b"%d:" % i) * (i % 7)
            members = {"kind": "seq", "id": i}
            if i % 3 == 0:
                members["note"] = "frame %d" % i
            p, f = cframe(members, body)
            parts += p
            frames.append(f)
        vec(G, f"{n}-frames", "3.1", f"{n} frames with varying headers and bodies in one stream.", parts, valid(*frames))
    parts, frames = [], []
    for i in range(1000):
        p, f = cframe({})
        parts += p
        frames.append(f)
    vec(G, "1000-empty-frames", "3.1", "1000 frames of header {} (6 octets each).", parts, valid(*frames))
    parts, frames = [], []
    for i in range(50):
        body = b"" if i % 2 else bytes([i]) * i
        p, f = cframe({"i": i}, body)
        parts += p
        frames.append(f)
    vec(G, "alternating-empty-bodies", "3.1", "50 frames alternating empty and non-empty bodies.", parts, valid(*frames))
    parts, frames = [], []
    for i in range(99):
        p, f = cframe({"id": i})
        parts += p
        frames.append(f)
    n = plen(parts)
    vec(G, "error-in-frame-100", "7.2", "99 valid frames, then a frame with a bad header: error at frame 100.",
        parts + raw1(b"{'a':1}"), invalid("header_not_json", n + 4, frames))
    vec(G, "eof-in-frame-100", "3.4", "99 valid frames, then 2 prefix octets.",
        parts + [b"\x00\x00"], invalid("unexpected_eof", n + 2, frames, missing=2))


def g_large():
    G = "large"
    for n in (4096, 4097):
        body = bytes(i % 251 for i in range(n))
        p, f = cframe({"n": n}, body)
        vec(G, f"body-{n}", "3.1", f"A {n}-octet body ({'body_hex' if n <= BODY_HEX_LIMIT else 'body_sha256'} in the expectation).",
            p, valid(f))
    mib = 1 << 20
    body = Rep(b"a", mib)
    d = {"body_len": mib, "sha256": hashlib.sha256(b"a" * mib).hexdigest()}
    vec(G, "body-1mib-sha256", "6", "A 1 MiB body of 'a' with its sha256 verified.", frame(d, body), valid(F(d, body)))
    d2 = {"body_len": mib, "sha256": hashlib.sha256(b"a" * (mib - 1) + b"b").hexdigest()}
    vec(G, "body-1mib-sha256-mismatch", "6", "A 1 MiB body whose digest is of different content.",
        frame(d2, body), invalid("digest_mismatch", 4 + len(canon(d2))))
    body16 = Rep(b"0123456789abcdef", mib)
    d = {"kind": "blob", "body_len": 16 * mib}
    vec(G, "body-16mib", "5", "A 16 MiB body delivered whole (below the 64 MiB default).", frame(d, body16), valid(F(d, body16)))
    d = {"body_len": mib}
    vec(G, "body-1mib-truncated-by-1", "3.4", "A 1 MiB body missing its last octet.",
        frame(d, Rep(b"a", mib - 1)), invalid("unexpected_eof", 4 + len(canon(d)) + mib - 1, missing=1))
    p1, f1 = cframe({"kind": "small"}, b"x")
    d = {"body_len": mib}
    p2 = frame(d, body)
    vec(G, "small-large-small", "3.1", "Small frame, 1 MiB frame, small frame.", p1 + p2 + p1, valid(f1, F(d, body), f1))


def g_seed():
    G = "seed-compat"
    S = "seed-compat"
    # Upload client: header = json.dumps({'file_name': CJK, 'file_size': N}) with struct.pack('i', len).
    content = bytes((i * 7) % 256 for i in range(1000))
    up = {"file_name": CJK, "file_size": len(content)}
    hb = seed_json(up)
    assert hb.startswith(b'{"file_name": "\\u6fb3')
    parts = [struct.pack("<i", len(hb)), hb, content]
    vec(G, "upload-header", "3.3",
        "The seed upload client: struct.pack('i', len) + json.dumps({'file_name': ..., 'file_size': N}) + file.",
        parts, valid(F(up, content)), profile=S)
    vec(G, "upload-header-as-lhp1", "3.3",
        "The same octets read as lhp1: the little-endian prefix is a huge big-endian number.",
        parts, invalid("header_len_too_large", 0), profile="lhp1")
    # Remote-command reply: total_size and the placeholder md5.
    out = "'foo' 不是内部或外部命令,也不是可运行的程序\r\n".encode("gbk")
    reply = {"file_name": "a.txt", "total_size": len(out), "md5": "hih1jk5jk151jk51"}
    hb = seed_json(reply)
    parts = [struct.pack("<i", len(hb)), hb, out]
    vec(G, "command-reply", "4.4",
        "The seed remote-command reply: total_size gives the body length; the placeholder md5 is carried, not verified.",
        parts, valid(F(reply, out)), profile=S)
    reply2 = {"file_name": "a.txt", "total_size": 0, "md5": "hih1jk5jk151jk51"}
    hb2 = seed_json(reply2)
    vec(G, "command-reply-empty-output", "4.4", "A command with no output: total_size 0.",
        [struct.pack("<i", len(hb2)), hb2], valid(F(reply2)), profile=S)
    # FTP get/put: bare struct.pack('i', filesize), then one frame per line.
    text = "第一行 first line\nsecond line\n\n澳门 third\nlast line without newline".encode()
    lines = text.splitlines(keepends=True)
    parts = [struct.pack("<i", len(text))]
    frames = []
    offs = []
    for line in lines:
        h = {"file_name": "a.txt", "file_size": len(line), "md5": md5(line)}
        hb = seed_json(h)
        offs.append(plen(parts))
        parts += [struct.pack("<i", len(hb)), hb, line]
        frames.append(F(h, line))
    vec(G, "ftp-per-line", "6",
        "The seed FTP put stream: a bare 4-octet file size (skipped), then one frame per line with a real md5.",
        parts, valid(*frames), profile=S, skip_bytes=4)
    # One line with a wrong md5.
    parts_bad = [struct.pack("<i", len(text))]
    bad_i = 2
    bad_off = None
    for i, line in enumerate(lines):
        h = {"file_name": "a.txt", "file_size": len(line), "md5": md5(line if i != bad_i else line + b"!")}
        hb = seed_json(h)
        if i == bad_i:
            bad_off = plen(parts_bad) + 4 + len(hb)
        parts_bad += [struct.pack("<i", len(hb)), hb, line]
    vec(G, "ftp-per-line-wrong-md5", "6",
        "The same stream with a wrong md5 on the third line: digest_mismatch at that line's first body octet "
        "(offset counts the 4 skipped octets).",
        parts_bad, invalid("digest_mismatch", bad_off, frames[:bad_i]), profile=S, skip_bytes=4)
    vec(G, "ftp-per-line-lhp1", "3.3",
        "The same per-line stream under lhp1 (after skipping 4 octets): the LE prefix is too large.",
        parts, invalid("header_len_too_large", 4), profile="lhp1", skip_bytes=4)
    h = {"file_name": "a.txt", "file_size": 0, "md5": md5(b"")}
    hb = seed_json(h)
    vec(G, "ftp-empty-line-md5", "6", "An empty line: md5 of the empty body verifies.",
        [struct.pack("<i", len(hb)), hb], valid(F(h)), profile=S)
    line = b"hello\n"
    h = {"file_name": "a.txt", "file_size": len(line), "md5": md5(line).upper()}
    hb = seed_json(h)
    vec(G, "md5-uppercase-verified", "6", "md5 of 32 upper-case hex digits is verified (either case).",
        [struct.pack("<i", len(hb)), hb, line], valid(F(h, line)), profile=S)
    h = {"file_name": "a.txt", "file_size": len(line), "md5": "0" * 32}
    hb = seed_json(h)
    vec(G, "md5-wrong", "6", "md5 of 32 hex digits that does not match: digest_mismatch.",
        [struct.pack("<i", len(hb)), hb, line], invalid("digest_mismatch", 4 + len(hb)), profile=S)
    vec(G, "md5-not-verified-in-lhp1", "6", "The same header with an lhp1 prefix: md5 and file_size are unknown members.",
        [prefix(len(hb)), hb], valid(F(h)), profile="lhp1")
    for slug, val in (("null", None), ("placeholder", "hih1jk5jk151jk51"), ("31-hex", "0" * 31), ("32-non-hex", "z" * 32),
                      ("number", 5)):
        h = {"file_size": 2, "md5": val}
        hb = seed_json(h)
        vec(G, f"md5-{slug}-carried", "6", f"md5 = {val!r} is not a 32-hex-digit string: carried, not verified.",
            [struct.pack("<i", len(hb)), hb, b"ok"], valid(F(h, b"ok")), profile=S)
    h = {"file_size": 2, "md5": md5(b"no"), "sha256": sha256(b"ok")}
    hb = seed_json(h)
    vec(G, "md5-wrong-sha256-right", "6", "Both digests present; md5 wrong: digest_mismatch.",
        [struct.pack("<i", len(hb)), hb, b"ok"], invalid("digest_mismatch", 4 + len(hb)), profile=S)
    # Prefix rules.
    for slug, n in (("minus-1", -1), ("int-min", -2**31), ("minus-2", -2)):
        vec(G, f"negative-prefix-{slug}", "3.2", f"A negative little-endian prefix ({n}): header_len_too_small.",
            struct.pack("<i", n) + b"{}", invalid("header_len_too_small", 0), profile=S)
    vec(G, "prefix-1", "3.2", "seed-compat H=1.", struct.pack("<i", 1) + b"{", invalid("header_len_too_small", 0), profile=S)
    vec(G, "prefix-2", "3.2", "seed-compat H=2: 02 00 00 00 7B 7D.", struct.pack("<i", 2) + b"{}", valid(F({})), profile=S)
    vec(G, "prefix-2-as-lhp1", "3.3", "02 00 00 00 7B 7D under lhp1: H = 0x02000000 = 33554432.",
        struct.pack("<i", 2) + b"{}", invalid("header_len_too_large", 0), profile="lhp1")
    vec(G, "lhp1-prefix-as-seed", "3.3", "00 00 00 02 7B 7D (lhp1) under seed-compat: H = 0x02000000.",
        prefix(2) + b"{}", invalid("header_len_too_large", 0), profile=S)
    vec(G, "i32-max-prefix", "3.2", "seed-compat prefix FF FF FF 7F = 2147483647.",
        struct.pack("<i", 2**31 - 1), invalid("header_len_too_large", 0), profile=S)
    hb = seed_json({"file_size": 0})
    vec(G, "big-endian-prefix", "3.3",
        "A sender that packs the length big-endian ('>i'): read little-endian it is far too large.",
        struct.pack(">i", len(hb)) + hb, invalid("header_len_too_large", 0), profile=S)
    vec(G, "max-header-len", "3.2", "seed-compat H = 65536 accepted.",
        [struct.pack("<i", 65536) + b"{}", Rep(b" ", 65534)], valid(F({})), profile=S)
    vec(G, "max-header-len-plus-1", "3.2", "seed-compat H = 65537.",
        struct.pack("<i", 65537), invalid("header_len_too_large", 0), profile=S)
    # Body length members.
    def sframe(h, body=b""):
        hb = seed_json(h)
        return [struct.pack("<i", len(hb)), hb] + ([body] if body else [])
    for slug, h, desc in (
        ("file-size-total-size-equal", {"file_size": 3, "total_size": 3}, "file_size and total_size both 3."),
        ("body-len-file-size-equal", {"body_len": 3, "file_size": 3}, "body_len and file_size both 3."),
        ("all-three-equal", {"body_len": 3, "file_size": 3, "total_size": 3}, "All three length members equal."),
        ("body-len-only", {"body_len": 3}, "body_len alone works in seed-compat."),
    ):
        vec(G, slug, "4.4", desc, sframe(h, b"abc"), valid(F(h, b"abc")), profile=S)
    for slug, h, desc in (
        ("file-size-total-size-disagree", {"file_size": 3, "total_size": 4}, "file_size 3, total_size 4."),
        ("body-len-file-size-disagree", {"body_len": 3, "file_size": 0}, "body_len 3, file_size 0."),
        ("file-size-string", {"file_size": "3"}, "file_size as a string."),
        ("file-size-negative", {"file_size": -3}, "file_size negative."),
        ("file-size-float", {"file_size": 3.0}, "file_size 3.0."),
        ("file-size-null", {"file_size": None}, "file_size null."),
        ("total-size-string", {"total_size": "3"}, "total_size as a string."),
        ("total-size-negative", {"total_size": -1}, "total_size negative."),
    ):
        vec(G, slug, "4.4", desc + " invalid_body_len.", sframe(h, b"abc"), invalid("invalid_body_len", 4), profile=S)
    vec(G, "file-size-2p53", "4.2", "file_size 2^53: number_out_of_range.", sframe({"file_size": 2**53}),
        invalid("number_out_of_range", 4), profile=S)
    seed1t = {"file_size": 1073741824000, "file_name": "/a/b/c/d/e/a.txt", "md5": "8f6fbf8347faa4924a76856701edb0f3"}
    vec(G, "seed-1tb-header", "5", "The seed's 1 TB example header: body_too_large under default limits.",
        sframe(seed1t), invalid("body_too_large", 4), profile=S)
    for slug, val in (("number", 7), ("null", None), ("list", ["a", "b"]), ("traversal", "../../etc/passwd")):
        h = {"file_name": val}
        vec(G, f"file-name-{slug}", "4.4", f"file_name = {val!r}: carried without a type rule.",
            sframe(h), valid(F(h)), profile=S)
    vec(G, "name-wrong-type", "4.4", "Registered lhp1 members keep their rules in seed-compat: name = 1.",
        sframe({"name": 1}), invalid("invalid_member", 4), profile=S)
    vec(G, "v-2", "4.4", "v = 2 in seed-compat.", sframe({"v": 2}), invalid("unsupported_version", 4), profile=S)
    vec(G, "file-size-over-limit", "5", "file_size 11 with max_body_len 10.", sframe({"file_size": 11}),
        invalid("body_too_large", 4), profile=S, limits={"max_body_len": 10})
    vec(G, "precedence-body-len-over-member", "4.5", "file_size/total_size disagree and kind is wrong: invalid_body_len.",
        sframe({"kind": 1, "file_size": 1, "total_size": 2}), invalid("invalid_body_len", 4), profile=S)
    h = {"file_name": "a.txt", "file_size": 5}
    p = sframe(h, b"hello") + sframe(h, b"world")
    vec(G, "two-uploads", "3.1", "Two seed-style frames back to back.", p, valid(F(h, b"hello"), F(h, b"world")), profile=S)
    vec(G, "truncated-upload", "3.4", "Upload cut after 2 of 5 body octets.",
        sframe(h, b"he"), invalid("unexpected_eof", plen(sframe(h, b"he")), missing=3), profile=S)


# ==========================================================================
# Reference decoder (independent of the generators above)
# ==========================================================================

class JErr(Exception):
    pass


class Num:
    """A parsed JSON number: value, whether it was a non-negative-or-negative integer literal
    usable as a length (`-0` is not), and its spelling."""
    __slots__ = ("value", "intlit", "text")

    def __init__(self, value, intlit, text):
        self.value = value
        self.intlit = intlit
        self.text = text


class Obj:
    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


WS = " \t\n\r"
NUM_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
MAX_DEPTH_REF = 64        # spec 4.2 caps: deeper nesting is header_not_json
MAX_MEMBERS_REF = 1024    # members of one object
MAX_NUMBER_LEN_REF = 64   # octets of one number token


class Parser:
    def __init__(self, s):
        self.s = s
        self.i = 0

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in WS:
            self.i += 1

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def value(self, depth):
        self.ws()
        c = self.peek()
        if c == "{":
            if depth + 1 > MAX_DEPTH_REF:
                raise JErr("depth")
            self.i += 1
            pairs = []
            self.ws()
            if self.peek() == "}":
                self.i += 1
                return Obj(pairs)
            while True:
                self.ws()
                if self.peek() != '"':
                    raise JErr("name")
                k = self.string()
                if len(pairs) + 1 > MAX_MEMBERS_REF:
                    raise JErr("members")
                self.ws()
                if self.peek() != ":":
                    raise JErr("colon")
                self.i += 1
                v = self.value(depth + 1)
                pairs.append((k, v))
                self.ws()
                c = self.peek()
                self.i += 1
                if c == "}":
                    return Obj(pairs)
                if c != ",":
                    raise JErr("obj sep")
        if c == "[":
            if depth + 1 > MAX_DEPTH_REF:
                raise JErr("depth")
            self.i += 1
            items = []
            self.ws()
            if self.peek() == "]":
                self.i += 1
                return items
            while True:
                items.append(self.value(depth + 1))
                self.ws()
                c = self.peek()
                self.i += 1
                if c == "]":
                    return items
                if c != ",":
                    raise JErr("arr sep")
        if c == '"':
            return self.string()
        for lit, val in (("true", True), ("false", False), ("null", None)):
            if self.s.startswith(lit, self.i):
                self.i += len(lit)
                return val
        m = NUM_RE.match(self.s, self.i)
        if m and m.end() > self.i:
            self.i = m.end()
            t = m.group(0)
            if len(t) > MAX_NUMBER_LEN_REF:
                raise JErr("number length")
            if m.group(2) is None and m.group(3) is None:
                v = int(t)
                if t.startswith("-") and v == 0:
                    return Num(-0.0, False, t)   # -0 is not a non-negative integer literal (spec 4.4)
                return Num(v, True, t)
            f = float(t)   # correctly rounded: nearest binary64, ties to even (spec 4.2)
            if f in (float("inf"), float("-inf")):
                raise JErr("overflow")   # no binary64 value: header_not_json (spec 4.2)
            return Num(f, False, t)
        raise JErr("value")

    def string(self):
        self.i += 1
        out = []
        while True:
            if self.i >= len(self.s):
                raise JErr("eos")
            c = self.s[self.i]
            self.i += 1
            if c == '"':
                break
            if ord(c) < 0x20:
                raise JErr("ctrl")
            if c != "\\":
                out.append(c)
                continue
            if self.i >= len(self.s):
                raise JErr("eos")
            e = self.s[self.i]
            self.i += 1
            simple = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
            if e in simple:
                out.append(simple[e])
            elif e == "u":
                h = self.s[self.i:self.i + 4]
                if len(h) != 4 or not all(x in "0123456789abcdefABCDEF" for x in h):
                    raise JErr("u")
                self.i += 4
                out.append(chr(int(h, 16)))
            else:
                raise JErr("esc")
        # combine surrogate pairs; reject unpaired ones
        res = []
        j = 0
        while j < len(out):
            ch = out[j]
            o = ord(ch)
            if 0xD800 <= o <= 0xDBFF:
                if j + 1 < len(out) and 0xDC00 <= ord(out[j + 1]) <= 0xDFFF:
                    res.append(chr(0x10000 + ((o - 0xD800) << 10) + (ord(out[j + 1]) - 0xDC00)))
                    j += 2
                    continue
                raise JErr("surrogate")
            if 0xDC00 <= o <= 0xDFFF:
                raise JErr("surrogate")
            res.append(ch)
            j += 1
        return "".join(res)


def walk(v):
    yield v
    if isinstance(v, Obj):
        for _, x in v.pairs:
            yield from walk(x)
    elif isinstance(v, list):
        for x in v:
            yield from walk(x)


def plain(v):
    if isinstance(v, Obj):
        return {k: plain(x) for k, x in v.pairs}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, Num):
        return v.value
    return v


def is_uint(v):
    return isinstance(v, Num) and v.intlit and v.value >= 0


HEX64 = re.compile(r"[0-9a-f]{64}")
HEX32 = re.compile(r"[0-9a-fA-F]{32}")


def check_header(hb, profile, limits):
    """Returns (code, None) or (None, (header_dict, B, digests))."""
    try:
        text = hb.decode("utf-8")
    except UnicodeDecodeError:
        return "header_not_utf8", None
    p = Parser(text)
    try:
        top = p.value(0)
        p.ws()
        if p.i != len(text):
            raise JErr("trailing")
    except JErr:
        return "header_not_json", None
    if not isinstance(top, Obj):
        return "header_not_object", None
    for x in walk(top):
        if isinstance(x, Obj):
            names = [k for k, _ in x.pairs]
            if len(set(names)) != len(names):
                return "duplicate_member", None
    m = dict(top.pairs)
    # rank 5: the version, before every rule a later version may change (spec 4.5)
    if isinstance(m.get("v"), Num) and re.fullmatch(r"-?[0-9]+", m["v"].text) and m["v"].text != "1":
        return "unsupported_version", None
    for x in walk(top):
        if isinstance(x, Num) and abs(x.value) > MAX_SAFE:
            return "number_out_of_range", None
    lens = []
    len_names = ["body_len"] + (["file_size", "total_size"] if profile == "seed-compat" else [])
    for n in len_names:
        if n in m:
            if not is_uint(m[n]):
                return "invalid_body_len", None
            lens.append(m[n].value)
    if len(set(lens)) > 1:
        return "invalid_body_len", None
    B = lens[0] if lens else 0
    for n, ok in (("kind", lambda v: isinstance(v, str)), ("id", is_uint), ("name", lambda v: isinstance(v, str)),
                  ("sha256", lambda v: isinstance(v, str) and HEX64.fullmatch(v) is not None), ("v", is_uint)):
        if n in m and not ok(m[n]):
            return "invalid_member", None
    if B > limits["max_body_len"]:
        return "body_too_large", None
    digests = []
    if "sha256" in m:
        digests.append(("sha256", m["sha256"]))
    if profile == "seed-compat" and isinstance(m.get("md5"), str) and HEX32.fullmatch(m["md5"]):
        digests.append(("md5", m["md5"].lower()))
    return None, (plain(top), B, digests)


def ref_decode(data, profile, limits, skip):
    frames = []
    pos = skip
    n = len(data)

    def err(code, off, missing=None):
        e = {"code": code, "offset": off}
        if missing is not None:
            e["missing"] = missing
        return {"result": "invalid", "frames": frames, "error": e}

    while True:
        if pos == n:
            return {"result": "valid", "frames": frames}
        if n - pos < 4:
            return err("unexpected_eof", n, 4 - (n - pos))
        raw = data[pos:pos + 4]
        H = struct.unpack(">I" if profile == "lhp1" else "<i", raw)[0]
        if H < 2:
            return err("header_len_too_small", pos)
        if H > limits["max_header_len"]:
            return err("header_len_too_large", pos)
        hs = pos + 4
        if n - hs < H:
            return err("unexpected_eof", n, H - (n - hs))
        code, ok = check_header(data[hs:hs + H], profile, limits)
        if code:
            return err(code, hs)
        header, B, digests = ok
        bs = hs + H
        if n - bs < B:
            return err("unexpected_eof", n, B - (n - bs))
        body = data[bs:bs + B]
        for alg, want in digests:
            if hashlib.new(alg, body).hexdigest() != want:
                return err("digest_mismatch", bs)
        f = {"header": header, "body_len": B}
        if B > BODY_HEX_LIMIT:
            f["body_sha256"] = hashlib.sha256(body).hexdigest()
        else:
            f["body_hex"] = body.hex()
        frames.append(f)
        pos = bs + B


def jeq(a, b):
    """JSON equality: objects order-insensitive, numbers by value, bool != number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(jeq(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(jeq(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def outcome_matches(got, exp):
    if exp["result"] == "acceptable":
        return any(outcome_matches(got, alt) for alt in exp["alternatives"])
    return jeq(got, exp)


def decode_input(inp):
    if "hex" in inp:
        return bytes.fromhex(inp["hex"])
    out = bytearray()
    for part in inp["recipe"]:
        if "hex" in part:
            out += bytes.fromhex(part["hex"])
        elif "utf8" in part:
            out += part["utf8"].encode("utf-8")
        else:
            out += bytes.fromhex(part["repeat_hex"]) * part["count"]
    return bytes(out)


# ==========================================================================
# Minimal JSON Schema (2020-12 subset) validator
# ==========================================================================

def schema_validate(inst, sch, root, path="$"):
    errs = []
    if "$ref" in sch:
        ref = sch["$ref"]
        assert ref.startswith("#/$defs/"), ref
        errs += schema_validate(inst, root["$defs"][ref[len("#/$defs/"):]], root, path)
    if "type" in sch:
        t = sch["type"]
        types = t if isinstance(t, list) else [t]
        okt = False
        for ty in types:
            if ty == "object" and isinstance(inst, dict):
                okt = True
            elif ty == "array" and isinstance(inst, list):
                okt = True
            elif ty == "string" and isinstance(inst, str):
                okt = True
            elif ty == "integer" and isinstance(inst, int) and not isinstance(inst, bool):
                okt = True
            elif ty == "number" and isinstance(inst, (int, float)) and not isinstance(inst, bool):
                okt = True
            elif ty == "boolean" and isinstance(inst, bool):
                okt = True
            elif ty == "null" and inst is None:
                okt = True
        if not okt:
            return errs + [f"{path}: expected type {t}"]
    if "const" in sch and not jeq(inst, sch["const"]):
        errs.append(f"{path}: expected const {sch['const']!r}")
    if "enum" in sch and not any(jeq(inst, e) for e in sch["enum"]):
        errs.append(f"{path}: {inst!r} not in enum")
    if isinstance(inst, str):
        if "pattern" in sch and not re.search(sch["pattern"], inst):
            errs.append(f"{path}: {inst!r} does not match {sch['pattern']}")
        if "minLength" in sch and len(inst) < sch["minLength"]:
            errs.append(f"{path}: too short")
    if isinstance(inst, (int, float)) and not isinstance(inst, bool):
        if "minimum" in sch and inst < sch["minimum"]:
            errs.append(f"{path}: below minimum")
        if "maximum" in sch and inst > sch["maximum"]:
            errs.append(f"{path}: above maximum")
    if isinstance(inst, dict):
        for r in sch.get("required", []):
            if r not in inst:
                errs.append(f"{path}: missing {r}")
        props = sch.get("properties", {})
        for k, v in inst.items():
            if k in props:
                errs += schema_validate(v, props[k], root, f"{path}.{k}")
            elif sch.get("additionalProperties") is False:
                errs.append(f"{path}: unexpected member {k}")
            elif isinstance(sch.get("additionalProperties"), dict):
                errs += schema_validate(v, sch["additionalProperties"], root, f"{path}.{k}")
    if isinstance(inst, list):
        if "minItems" in sch and len(inst) < sch["minItems"]:
            errs.append(f"{path}: too few items")
        if "items" in sch:
            for i, x in enumerate(inst):
                errs += schema_validate(x, sch["items"], root, f"{path}[{i}]")
    if "oneOf" in sch:
        n = sum(1 for s in sch["oneOf"] if not schema_validate(inst, s, root, path))
        if n != 1:
            errs.append(f"{path}: matches {n} of oneOf")
    if "anyOf" in sch:
        if not any(not schema_validate(inst, s, root, path) for s in sch["anyOf"]):
            errs.append(f"{path}: matches none of anyOf")
    if "allOf" in sch:
        for s in sch["allOf"]:
            errs += schema_validate(inst, s, root, path)
    if "not" in sch and not schema_validate(inst, sch["not"], root, path):
        errs.append(f"{path}: matches 'not'")
    if "if" in sch:
        if not schema_validate(inst, sch["if"], root, path):
            if "then" in sch:
                errs += schema_validate(inst, sch["then"], root, path)
        elif "else" in sch:
            errs += schema_validate(inst, sch["else"], root, path)
    return errs


# ==========================================================================
# Main
# ==========================================================================

def g_app():
    """The application messages of spec/lhp-app.md (§10), as a receiver's codec sees them:
    each request and reply alone, and whole conversations in one stream."""
    G = "app"
    abc = b"abc"
    d = sha256(abc)
    msgs = [
        ("put", "10.3", "put request: name, sha256 of the body, the file as body.",
         {"kind": "put", "id": 1, "name": "a.txt", "sha256": d}, abc),
        ("put-ok", "10.3", "ok reply to put: size and whole-file digest.",
         {"kind": "ok", "id": 1, "name": "a.txt", "size": 3, "file_sha256": d}, b""),
        ("put-resume", "10.3", "resumed put: offset and file_sha256; the body is the tail.",
         {"kind": "put", "name": "a.txt", "offset": 2, "file_sha256": d}, b"c"),
        ("put-replace", "10.3", "put with replace: true.",
         {"kind": "put", "name": "dir/b.bin", "replace": True, "sha256": sha256(b"\x00\xff")}, b"\x00\xff"),
        ("stat", "10.4", "stat request.", {"kind": "stat", "id": 3, "name": "a.txt"}, b""),
        ("stat-ok", "10.4", "stat reply: no complete file, a 2-octet partial.",
         {"kind": "ok", "id": 3, "name": "a.txt", "size": None, "partial": 2}, b""),
        ("get", "10.5", "get request.", {"kind": "get", "id": 2, "name": "a.txt"}, b""),
        ("get-offset", "10.5", "get request resuming at an offset.",
         {"kind": "get", "id": 2, "name": "a.txt", "offset": 1}, b""),
        ("file", "10.5", "file reply with the whole file and both digests.",
         {"kind": "file", "id": 2, "name": "a.txt", "size": 3, "offset": 0, "file_sha256": d, "sha256": d}, abc),
        ("list", "10.6", "list request.", {"kind": "list"}, b""),
        ("listing", "10.6", "listing reply: a JSON array in the body.",
         {"kind": "listing", "count": 1, "truncated": False}, b'[{"name":"a.txt","size":3}]'),
        ("exec", "10.7", "exec request: argv array, no shell.",
         {"kind": "exec", "id": 4, "argv": ["echo", "$(id);ls"]}, b""),
        ("output-stdout", "10.7", "output chunk from stdout.",
         {"kind": "output", "id": 4, "stream": "stdout"}, b"$(id);ls\n"),
        ("output-stderr", "10.7", "output chunk from stderr.",
         {"kind": "output", "id": 4, "stream": "stderr"}, "警告\n".encode()),
        ("exit", "10.7", "exit reply with status.",
         {"kind": "exit", "id": 4, "code": 0, "signal": None, "timed_out": False}, b""),
        ("error-bad-name", "10.8", "application error frame: bad_name.",
         {"kind": "error", "id": 5, "code": "bad_name", "message": "the name has a \"..\" component"}, b""),
        ("error-busy", "7.2", "connection error frame: busy (connection limit), offset 0, no id.",
         {"kind": "error", "code": "busy", "message": "server at its connection limit", "offset": 0}, b""),
        ("error-unexpected-eof", "7.2", "connection error frame for unexpected_eof: offset, then missing.",
         {"kind": "error", "code": "unexpected_eof", "message": "the stream ended inside a frame",
          "offset": 10, "missing": 3}, b""),
        ("error-timeout", "7.2", "connection error frame for timeout: offset = octets received so far.",
         {"kind": "error", "code": "timeout", "message": "idle for 60 s", "offset": 44}, b""),
        ("error-in-use", "10.8", "request error frame: in_use (another client is uploading the name).",
         {"kind": "error", "id": 7, "code": "in_use", "message": "a.txt is being uploaded"}, b""),
        ("error-file-digest-mismatch", "10.8", "request error frame: file_digest_mismatch, without id.",
         {"kind": "error", "code": "file_digest_mismatch", "message": "the file does not match file_sha256"}, b""),
        ("error-no-space", "10.8", "request error frame: no_space.",
         {"kind": "error", "id": 8, "code": "no_space", "message": "no space left"}, b""),
    ]
    for slug, spec, desc, members, body in msgs:
        parts, f = cframe(members, body)
        vec(G, slug, spec, desc, parts, valid(f))
    # Whole conversations, as each side's receiver sees them.
    for slug, spec, desc, names in [
        ("upload-conversation-client-side", "10.3", "stat, then a resumed put, as the server reads them.",
         ["stat", "put-resume"]),
        ("upload-conversation-server-side", "10.3", "the replies the client reads: stat-ok then ok.",
         ["stat-ok", "put-ok"]),
        ("exec-conversation", "10.7", "exec replies: stdout, stderr, stdout, exit in one stream.",
         ["output-stdout", "output-stderr", "output-stdout", "exit"]),
    ]:
        parts, frames = [], []
        by = {m[0]: m for m in msgs}
        for n in names:
            _, _, _, members, body = by[n]
            p, f = cframe(members, body)
            parts += p
            frames.append(f)
        vec(G, slug, spec, desc, parts, valid(*frames))
    # A put whose body does not match its sha256 never reaches the application.
    members = {"kind": "put", "id": 6, "name": "a.txt", "sha256": d}
    bad = b"abd"
    parts = frame(hdr(members, bad), bad)
    vec(G, "put-digest-mismatch", "10.3", "put whose body does not match sha256: digest_mismatch at the body.",
        parts, invalid("digest_mismatch", plen(parts) - 3))


# ==========================================================================
# Conversation vectors: spec/vectors/conversations/app.json (request -> reply, spec/lhp-app.md)
# ==========================================================================

ANY_STRING = {"$any": "string"}
CONVERSATIONS = []


def wire(members, body=b""):
    """A canonical lhp1 frame's octets (body_len appended when the body is non-empty)."""
    return materialize(frame(hdr(members, body), body))


def reply(members, body=b""):
    """An expected frame pattern: members in order (message matched by type), the body."""
    h = dict(members)
    if "message" in h:
        h["message"] = ANY_STRING
    if body and "body_len" not in h:
        h["body_len"] = len(body)
    return {"header": h, "body_hex": bytes(body).hex()}


def with_id(members, rid):
    """members with `id` right after `kind` when rid is not None (section 10.1)."""
    if rid is None:
        return dict(members)
    out = {}
    for k, v in members.items():
        out[k] = v
        if k == "kind":
            out["id"] = rid
    return out


def refusal(code, rid):
    return reply(with_id({"kind": "error", "code": code, "message": ""}, rid))


def conv(slug, spec, flags, description, exchanges, files=None, dirs=None, allow_exec=None,
         after=None, end=False):
    """One conversation on connection 0: each exchange is (request octets, [expected frames])."""
    steps = []
    for req, frames in exchanges:
        steps.append({"send": 0, "hex": req.hex()})
        if frames:
            steps.append({"expect": 0, "frames": frames})
    if end:
        steps.append({"expect_end": 0})
    c = {"id": f"app/{slug}", "spec": spec, "flags": flags, "description": description,
         "role": "server", "profile": "lhp1",
         "app": {"files": {k: v.hex() for k, v in (files or {}).items()}, "dirs": dirs or [],
                 "allow_exec": allow_exec or []},
         "steps": steps}
    if after is not None:
        c["after"] = {"files": {k: v.hex() for k, v in after.get("files", {}).items()},
                      "absent": after.get("absent", [])}
    CONVERSATIONS.append(c)


def partial_name(name):
    """The hidden partial file of an upload of `name` (spec/lhp-app.md 10.3 step 3)."""
    last = name.rsplit("/", 1)[-1]
    d = name[: -len(last)]
    return d + ".lhp-partial-" + hashlib.sha256(last.encode()).hexdigest()[:32]


def g_app_conversations():
    abc = b"abc"
    dabc = sha256(abc)
    xyz = b"xyz"
    # ---- put (10.3)
    for rid in (1, None):
        tag = "" if rid is None else "-id"
        conv(f"put-new{tag}", "10.3", ["app-put"] + (["id"] if rid is not None else []),
             "put of a new name with the body's sha256: ok with name, size and file_sha256"
             + (", id copied." if rid is not None else ", no id in the reply."),
             [(wire(with_id({"kind": "put", "name": "a.txt", "sha256": dabc}, rid), abc),
               [reply(with_id({"kind": "ok", "name": "a.txt", "size": 3, "file_sha256": dabc}, rid))])],
             after={"files": {"a.txt": abc}})
    conv("put-into-directory", "10.3", ["app-put", "id"], "put of sub/b.txt into an existing directory.",
         [(wire({"kind": "put", "id": 2, "name": "sub/b.txt", "sha256": sha256(xyz)}, xyz),
           [reply({"kind": "ok", "id": 2, "name": "sub/b.txt", "size": 3, "file_sha256": sha256(xyz)})])],
         dirs=["sub"], after={"files": {"sub/b.txt": xyz}})
    conv("put-empty-file", "10.3", ["app-put"], "put of an empty file: sha256 of the empty body, no body_len.",
         [(wire({"kind": "put", "name": "e", "sha256": sha256(b"")}),
           [reply({"kind": "ok", "name": "e", "size": 0, "file_sha256": sha256(b"")})])],
         after={"files": {"e": b""}})
    conv("put-exists", "10.3", ["app-put", "app-refusal", "id"],
         "put of an existing name without replace: exists; the file is unchanged and the connection stays open.",
         [(wire({"kind": "put", "id": 3, "name": "a.txt", "sha256": sha256(xyz)}, xyz), [refusal("exists", 3)]),
          (wire({"kind": "stat", "id": 4, "name": "a.txt"}),
           [reply({"kind": "ok", "id": 4, "name": "a.txt", "size": 3, "partial": 0})])],
         files={"a.txt": abc}, after={"files": {"a.txt": abc}})
    conv("put-replace", "10.3", ["app-put", "id"], "put with replace true over an existing file.",
         [(wire({"kind": "put", "id": 5, "name": "a.txt", "replace": True, "sha256": sha256(xyz)}, xyz),
           [reply({"kind": "ok", "id": 5, "name": "a.txt", "size": 3, "file_sha256": sha256(xyz)})])],
         files={"a.txt": abc}, after={"files": {"a.txt": xyz}})
    conv("put-missing-digest", "10.3", ["app-put", "app-refusal"],
         "put without sha256 or file_sha256: bad_request, nothing stored.",
         [(wire({"kind": "put", "name": "a.txt"}, abc), [refusal("bad_request", None)])],
         after={"absent": ["a.txt"]})
    conv("put-missing-name", "10.3", ["app-put", "app-refusal", "id"], "put without a name: bad_request.",
         [(wire({"kind": "put", "id": 6, "sha256": dabc}, abc), [refusal("bad_request", 6)])])
    pn = partial_name("a.txt")
    conv("put-resume", "10.3", ["app-put", "app-stat", "id"],
         "stat reports a 2-octet partial upload; a put with offset 2 and file_sha256 completes it.",
         [(wire({"kind": "stat", "id": 7, "name": "a.txt"}),
           [reply({"kind": "ok", "id": 7, "name": "a.txt", "size": None, "partial": 2})]),
          (wire({"kind": "put", "id": 8, "name": "a.txt", "offset": 2, "file_sha256": dabc}, b"c"),
           [reply({"kind": "ok", "id": 8, "name": "a.txt", "size": 3, "file_sha256": dabc})])],
         files={pn: b"ab"}, after={"files": {"a.txt": abc}, "absent": [pn]})
    conv("put-resume-offset-past-partial", "10.3", ["app-put", "app-refusal", "id"],
         "put with an offset beyond the partial upload the server holds: bad_request.",
         [(wire({"kind": "put", "id": 9, "name": "a.txt", "offset": 5, "file_sha256": dabc}, b"c"),
           [refusal("bad_request", 9)])],
         files={pn: b"ab"}, after={"absent": ["a.txt"]})
    conv("put-file-digest-mismatch", "10.3", ["app-put", "app-refusal", "id"],
         "put whose whole file does not match file_sha256: file_digest_mismatch, nothing stored, "
         "the connection stays open.",
         [(wire({"kind": "put", "id": 10, "name": "a.txt", "offset": 0, "file_sha256": sha256(xyz)}, abc),
           [refusal("file_digest_mismatch", 10)]),
          (wire({"kind": "stat", "id": 11, "name": "a.txt"}),
           [reply({"kind": "ok", "id": 11, "name": "a.txt", "size": None, "partial": 0})])],
         after={"absent": ["a.txt"]})
    req = wire({"kind": "put", "id": 12, "name": "a.txt", "sha256": sha256(xyz)}, abc)
    conv("put-body-digest-mismatch", "10.3", ["app-put", "error-frame", "close-after-error", "error-offset"],
         "put whose body does not match its sha256: the codec's digest_mismatch, a connection error "
         "(offset = the first body octet, no id), then the close; nothing stored.",
         [(req, [reply({"kind": "error", "code": "digest_mismatch", "message": "", "offset": len(req) - 3})])],
         after={"absent": ["a.txt"]}, end=True)
    # names (10.2)
    bad_names = [
        ("traversal", "../evil"), ("traversal-inner", "a/../../b"), ("absolute", "/etc/passwd"),
        ("empty", ""), ("dot", "."), ("dot-dot", ".."), ("empty-component", "a//b"), ("trailing-slash", "a/"),
        ("control-character", "a\u0001b"), ("nul", "a\u0000b"), ("c1-control", "a\u0085b"),
        ("partial-prefix", ".lhp-partial-0123"), ("backslash", "a\\b"), ("device-name", "CON"),
        ("bidi-override", "a\u202eexe.txt"), ("component-256", "x" * 256),
    ]
    for i, (slug, name) in enumerate(bad_names):
        rid = 20 + i if i % 2 == 0 else None
        conv(f"put-bad-name-{slug}", "10.2", ["app-put", "app-refusal"] + (["id"] if rid is not None else []),
             f"put of the name {json.dumps(name)[:40]}: bad_name, nothing opened or created.",
             [(wire(with_id({"kind": "put", "name": name, "sha256": dabc}, rid), abc), [refusal("bad_name", rid)])])
    conv("put-over-directory", "10.2", ["app-put", "app-refusal", "id"],
         "put with replace over a name that is a directory (not a regular file): bad_name.",
         [(wire({"kind": "put", "id": 40, "name": "sub", "replace": True, "sha256": dabc}, abc),
           [refusal("bad_name", 40)])], dirs=["sub"])
    conv("put-missing-directory", "10.2", ["app-put", "app-refusal", "id"],
         "put into a directory that does not exist: not_found.",
         [(wire({"kind": "put", "id": 41, "name": "nodir/a.txt", "sha256": dabc}, abc),
           [refusal("not_found", 41)])])
    # ---- stat (10.4)
    conv("stat-file", "10.4", ["app-stat", "id"], "stat of a complete file: size 3, partial 0.",
         [(wire({"kind": "stat", "id": 50, "name": "a.txt"}),
           [reply({"kind": "ok", "id": 50, "name": "a.txt", "size": 3, "partial": 0})])], files={"a.txt": abc})
    conv("stat-absent", "10.4", ["app-stat"], "stat of a name the server does not hold: size null, partial 0.",
         [(wire({"kind": "stat", "name": "a.txt"}),
           [reply({"kind": "ok", "name": "a.txt", "size": None, "partial": 0})])])
    conv("stat-directory", "10.4", ["app-stat", "app-refusal", "id"], "stat of a directory: bad_name.",
         [(wire({"kind": "stat", "id": 51, "name": "sub"}), [refusal("bad_name", 51)])], dirs=["sub"])
    conv("stat-traversal", "10.4", ["app-stat", "app-refusal"], "stat of ../x: bad_name.",
         [(wire({"kind": "stat", "name": "../x"}), [refusal("bad_name", None)])])
    # ---- get (10.5)
    for rid in (60, None):
        tag = "" if rid is None else "-id"
        conv(f"get-whole{tag}", "10.5", ["app-get"] + (["id"] if rid is not None else []),
             "get of a file: file reply with size, offset 0, file_sha256 and the body's sha256.",
             [(wire(with_id({"kind": "get", "name": "a.txt"}, rid)),
               [reply(with_id({"kind": "file", "name": "a.txt", "size": 3, "offset": 0, "file_sha256": dabc,
                               "sha256": dabc, "body_len": 3}, rid), abc)])], files={"a.txt": abc})
    conv("get-offset", "10.5", ["app-get", "id"], "get from offset 1: the tail, file_sha256 of the whole file, no sha256.",
         [(wire({"kind": "get", "id": 61, "name": "a.txt", "offset": 1}),
           [reply({"kind": "file", "id": 61, "name": "a.txt", "size": 3, "offset": 1, "file_sha256": dabc,
                   "body_len": 2}, b"bc")])], files={"a.txt": abc})
    conv("get-offset-at-end", "10.5", ["app-get", "id"], "get from offset = size: an empty body.",
         [(wire({"kind": "get", "id": 62, "name": "a.txt", "offset": 3}),
           [reply({"kind": "file", "id": 62, "name": "a.txt", "size": 3, "offset": 3, "file_sha256": dabc})])],
         files={"a.txt": abc})
    conv("get-offset-past-end", "10.5", ["app-get", "app-refusal", "id"], "get from offset > size: bad_request.",
         [(wire({"kind": "get", "id": 63, "name": "a.txt", "offset": 4}), [refusal("bad_request", 63)])],
         files={"a.txt": abc})
    conv("get-not-found", "10.5", ["app-get", "app-refusal", "id"], "get of a missing file: not_found.",
         [(wire({"kind": "get", "id": 64, "name": "nope.txt"}), [refusal("not_found", 64)])])
    conv("get-directory", "10.5", ["app-get", "app-refusal"], "get of a directory (not a regular file): bad_name.",
         [(wire({"kind": "get", "name": "sub"}), [refusal("bad_name", None)])], dirs=["sub"])
    conv("get-traversal", "10.5", ["app-get", "app-refusal", "id"], "get of ../../etc/passwd: bad_name.",
         [(wire({"kind": "get", "id": 65, "name": "../../etc/passwd"}), [refusal("bad_name", 65)])])
    conv("get-partial-is-invisible", "10.5", ["app-get", "app-refusal", "id"],
         "A partial upload is not a file: get of its name is not_found.",
         [(wire({"kind": "get", "id": 66, "name": "a.txt"}), [refusal("not_found", 66)])], files={pn: b"ab"})
    # ---- list (10.6)
    conv("list-empty", "10.6", ["app-list"], "list of an empty root: count 0 and the body [].",
         [(wire({"kind": "list"}), [reply({"kind": "listing", "count": 0, "truncated": False}, b"[]")])])
    listing = b'[{"name":"a.txt","size":3},{"name":"sub/b.txt","size":2}]'
    conv("list-files", "10.6", ["app-list", "id"],
         "list: regular files recursively, sorted by name, partial uploads hidden.",
         [(wire({"kind": "list", "id": 70}),
           [reply({"kind": "listing", "id": 70, "count": 2, "truncated": False}, listing)])],
         files={"a.txt": abc, "sub/b.txt": b"hi", "sub/" + partial_name("c.txt"): b"x"}, dirs=["sub"])
    # ---- exec (10.7)
    conv("exec-off", "10.7", ["app-exec", "app-refusal", "id"], "exec while exec is off: exec_denied.",
         [(wire({"kind": "exec", "id": 80, "argv": ["echo", "hi"]}), [refusal("exec_denied", 80)])])
    conv("exec-not-allowed", "10.7", ["app-exec", "app-refusal"], "exec of a program not on the allow-list.",
         [(wire({"kind": "exec", "argv": ["sh", "-c", "id"]}), [refusal("exec_denied", None)])],
         allow_exec=["echo"])
    conv("exec-echo", "10.7", ["app-exec", "id"], "exec echo hello: one stdout output frame, then exit 0.",
         [(wire({"kind": "exec", "id": 81, "argv": ["echo", "hello"]}),
           [reply({"kind": "output", "id": 81, "stream": "stdout"}, b"hello\n"),
            reply({"kind": "exit", "id": 81, "code": 0, "signal": None, "timed_out": False})])],
         allow_exec=["echo"])
    conv("exec-no-shell", "10.7", ["app-exec"], "$(id);ls is one literal argument: echo prints it unchanged.",
         [(wire({"kind": "exec", "argv": ["echo", "$(id);ls"]}),
           [reply({"kind": "output", "stream": "stdout"}, b"$(id);ls\n"),
            reply({"kind": "exit", "code": 0, "signal": None, "timed_out": False})])],
         allow_exec=["echo"])
    for slug, argv in (("argv-empty", []), ("argv-string", "echo hi"), ("argv-number", [1]), ("argv-missing", None)):
        m = {"kind": "exec", "id": 82}
        if argv is not None:
            m["argv"] = argv
        conv(f"exec-{slug}", "10.7", ["app-exec", "app-refusal", "id"], f"exec with argv {json.dumps(argv)}: bad_request.",
             [(wire(m), [refusal("bad_request", 82)])], allow_exec=["echo"])
    # ---- requests in general (10.1)
    conv("unknown-kind", "10.1", ["app-refusal", "id"], "An unknown kind: bad_request; the connection stays open.",
         [(wire({"kind": "frobnicate", "id": 90}), [refusal("bad_request", 90)]),
          (wire({"kind": "list", "id": 91}),
           [reply({"kind": "listing", "id": 91, "count": 0, "truncated": False}, b"[]")])])
    conv("no-kind", "10.1", ["app-refusal"], "A request without kind: bad_request.",
         [(wire({"name": "a.txt"}), [refusal("bad_request", None)])])
    conv("kind-wrong-case", "10.1", ["app-refusal", "id"], "kind values are compared exactly: PUT is unknown.",
         [(wire({"kind": "PUT", "id": 92, "name": "a.txt", "sha256": dabc}, abc), [refusal("bad_request", 92)])],
         after={"absent": ["a.txt"]})
    reqs = (wire({"kind": "stat", "id": 93, "name": "a.txt"}) + wire({"kind": "get", "id": 94, "name": "../x"})
            + wire({"kind": "frob", "id": 95}) + wire({"kind": "get", "id": 96, "name": "a.txt"}))
    conv("pipelined-with-refusals", "10.1", ["app-get", "app-stat", "app-refusal", "id", "pipelining"],
         "Four requests in one write, two of them refused: four replies, in order, ids copied.",
         [(reqs, [reply({"kind": "ok", "id": 93, "name": "a.txt", "size": 3, "partial": 0}),
                  refusal("bad_name", 94), refusal("bad_request", 95),
                  reply({"kind": "file", "id": 96, "name": "a.txt", "size": 3, "offset": 0, "file_sha256": dabc,
                         "sha256": dabc, "body_len": 3}, abc)])], files={"a.txt": abc})
    # critical members (lhp-1 13.3)
    conv("crit-unknown-member", "13.3", ["app-stat", "app-refusal", "id", "crit"],
         "crit names a member the server does not implement: bad_request, the request is not acted on.",
         [(wire({"kind": "stat", "id": 98, "name": "a.txt", "acme_snapshot": 3, "crit": ["acme_snapshot"]}),
           [refusal("bad_request", 98)])], files={"a.txt": abc})
    conv("crit-known-member", "13.3", ["app-get", "id", "crit"],
         "crit names offset, which get implements: served normally.",
         [(wire({"kind": "get", "id": 99, "name": "a.txt", "offset": 2, "crit": ["offset"]}),
           [reply({"kind": "file", "id": 99, "name": "a.txt", "size": 3, "offset": 2, "file_sha256": dabc,
                   "body_len": 1}, b"c")])], files={"a.txt": abc})
    conv("crit-not-carried", "13.3", ["app-stat", "app-refusal", "crit"],
         "crit names a member the request does not carry: bad_request.",
         [(wire({"kind": "stat", "name": "a.txt", "crit": ["offset"]}), [refusal("bad_request", None)])],
         files={"a.txt": abc})
    conv("echo", "8", ["echo", "id"], "echo with an unknown member and a body: the same octets come back.",
         [(wire({"kind": "echo", "id": 97, "note": 0.1}, b"hi"),
           [{"hex": wire({"kind": "echo", "id": 97, "note": 0.1}, b"hi").hex()}])])


def check_conversations():
    """Self-check: unique ids, well-formed steps, and every octet a client sends decodes (with
    the reference decoder) to complete, valid frames."""
    errs = []
    seen = set()
    for c in CONVERSATIONS:
        if c["id"] in seen:
            errs.append(f"duplicate id {c['id']}")
        seen.add(c["id"])
        if c["spec"] not in SECTIONS and c["spec"] not in ("8", "10.1", "10.2", "13.3"):
            errs.append(f"{c['id']}: unknown section {c['spec']}")
        steps = c["steps"]
        for k, st in enumerate(steps):
            if "send" in st:
                got = ref_decode(bytes.fromhex(st["hex"]), "lhp1",
                                 {"max_header_len": MAX_HEADER_LEN, "max_body_len": MAX_BODY_LEN}, 0)
                if got["result"] != "valid":
                    # Only a connection error the conversation expects, at the same offset.
                    nxt = steps[k + 1] if k + 1 < len(steps) else {}
                    h = (nxt.get("frames") or [{}])[-1].get("header", {})
                    if (h.get("code"), h.get("offset")) != (got["error"]["code"], got["error"]["offset"]):
                        errs.append(f"{c['id']}: a request does not decode: {got.get('error')}")
            elif "expect" in st:
                for f in st["frames"]:
                    if "hex" in f:
                        continue
                    h = f["header"]
                    if h.get("kind") == "error":
                        keys = list(h)
                        conn = "offset" in h
                        want = (["kind", "code", "message", "offset"] if conn
                                else ["kind"] + (["id"] if "id" in h else []) + ["code", "message"])
                        if keys[:len(want)] != want:
                            errs.append(f"{c['id']}: error members {keys}, section 7.2 says {want}")
    return errs


SCHEMA_VERSION = "lhp-vectors/1"
GENERATOR = "spec/vectors/generate.py"
SPEC_VERSION = "LHP/1"

# Bug classes (glossary: spec/vectors/README.md, "Flags").
GROUP_FLAGS = {
    "framing": ["framing"], "limits": ["limits"], "eof": ["eof"], "json": ["json-syntax"],
    "toplevel": ["not-object"], "utf8": ["utf8"], "members": ["registered-member"],
    "version": ["version"], "extension": ["extension"], "digest": ["digest"],
    "precedence": ["precedence"], "errors": ["sticky-error"], "wrong-protocol": ["wrong-protocol"],
    "streams": ["coalescing"], "large": ["large-body"], "seed-compat": ["seed-compat"],
    "app": ["app-message"], "ijson": [],
}


def flags_for(v):
    group, slug = v["id"].split("/", 1)
    flags = list(GROUP_FLAGS[group])
    if group == "ijson":
        for key, flag in (("dup", "duplicate"), ("case-differs", "duplicate"), ("nfc", "duplicate"),
                          ("same-name", "duplicate"), ("repeats", "duplicate"),
                          ("e400", "overflow"), ("largest-finite", "overflow"), ("e-400", "underflow"),
                          ("round-", "rounding"), ("number-length", "caps"), ("depth", "depth"),
                          ("members-", "caps"), ("array-1100", "caps")):
            if key in slug and flag not in flags:
                flags.append(flag)
        if not flags:
            flags.append("number-range")
    if group == "utf8" and "noncharacter" in slug:
        flags.append("parser-differential")
    if group == "ijson" and any(f in flags for f in ("overflow", "underflow", "rounding", "depth", "caps")):
        flags.append("parser-differential")
    if "version" in slug or slug.startswith("v-") or "-v-" in slug:
        if "version" not in flags:
            flags.append("version")
    if group == "limits" and ("no-header-bytes" in slug or "max-is-accepted" in slug or "2p53" in slug):
        flags.append("allocation")
    if group == "seed-compat" and ("lhp1" in slug or "big-endian" in slug):
        flags.append("profile-confusion")
    if "digest" in slug and "digest" not in flags:
        flags.append("digest")
    if "eof" in slug and "eof" not in flags:
        flags.append("eof")
    if v["input"].get("recipe") is not None and "large-body" not in flags and group != "wrong-protocol":
        flags.append("large-body")
    return flags


SECTIONS = {"3.1", "3.2", "3.3", "3.4", "4.1", "4.2", "4.3", "4.4", "4.5", "5", "6", "7.2", "7.3",
            "10.3", "10.4", "10.5", "10.6", "10.7", "10.8"}


def main():
    check_only = "--check" in sys.argv[1:]
    for g in (g_framing, g_limits, g_eof, g_json, g_toplevel, g_utf8, g_ijson, g_members, g_version,
              g_extension, g_digest, g_precedence, g_errors, g_wrongproto, g_streams, g_large, g_seed,
              g_app):
        g()
    with open(os.path.join(HERE, "schema.json"), encoding="utf-8") as fh:
        schema = json.load(fh)
    failures = 0
    total = 0
    counts = {}
    for group in sorted(GROUPS):
        doc = {"schema": SCHEMA_VERSION, "generator": GENERATOR, "spec_version": SPEC_VERSION,
               "group": group, "number_of_tests": len(GROUPS[group]), "vectors": []}
        for i, v in enumerate(GROUPS[group]):
            parts = v.pop("_parts")
            v = {**{k: v[k] for k in ("id", "spec")}, "flags": flags_for(v),
                 **{k: x for k, x in v.items() if k not in ("id", "spec")}}
            GROUPS[group][i] = v
            assert v["spec"] in SECTIONS, v["id"]
            assert v["id"].startswith(group + "/")
            data = materialize(parts)
            assert decode_input(v["input"]) == data, v["id"]
            lim = v.get("limits", {"max_header_len": MAX_HEADER_LEN, "max_body_len": MAX_BODY_LEN})
            got = ref_decode(data, v["profile"], lim, v.get("skip_bytes", 0))
            if not outcome_matches(got, v["expect"]):
                failures += 1
                g_err = got.get("error")
                print(f"MISMATCH {v['id']}: reference got {got['result']} {g_err} "
                      f"after {len(got['frames'])} frame(s); expected {json.dumps(v['expect'])[:300]}",
                      file=sys.stderr)
            doc["vectors"].append(v)
        # round-trip through JSON text so the schema check sees exactly what is written
        text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
        errs = schema_validate(json.loads(text), schema, schema)
        if errs:
            failures += len(errs)
            for e in errs[:20]:
                print(f"SCHEMA {group}: {e}", file=sys.stderr)
        counts[group] = len(doc["vectors"])
        total += len(doc["vectors"])
        if not check_only:
            with open(os.path.join(HERE, group + ".json"), "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
    g_app_conversations()
    errs = check_conversations()
    for e in errs:
        print(f"CONVERSATION {e}", file=sys.stderr)
    failures += len(errs)
    cdoc = {"schema": "lhp-conversations/1", "generator": GENERATOR, "spec_version": SPEC_VERSION,
            "group": "app", "number_of_tests": len(CONVERSATIONS), "conversations": CONVERSATIONS}
    if not check_only:
        os.makedirs(os.path.join(HERE, "conversations"), exist_ok=True)
        with open(os.path.join(HERE, "conversations", "app.json"), "w", encoding="utf-8", newline="\n") as fh:
            fh.write(json.dumps(cdoc, indent=1, ensure_ascii=False) + "\n")
    print(f"{'conversations':16} {len(CONVERSATIONS):4d} (app)")
    if len(IDS) != total:
        print("duplicate ids", file=sys.stderr)
        failures += 1
    for group in sorted(counts):
        print(f"{group:16} {counts[group]:4d}")
    print(f"{'total':16} {total:4d} vectors in {len(counts)} groups")
    if failures:
        print(f"{failures} failure(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
