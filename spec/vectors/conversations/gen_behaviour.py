#!/usr/bin/env python3
"""Writes behaviour.json: the connection rules of LHP/1 as conversation vectors.

Every octet is computed here from the frames' JSON text (nothing is typed as hex), and every
expected offset from the rules of spec/lhp-1.md section 7.1 (prefix errors: the frame's first
octet; header errors and body_too_large: the header's first octet; digest_mismatch: the body's
first octet; unexpected_eof: the end of the stream, with `missing`). Timeouts are E2's
"octets received when the deadline passed"; busy is offset 0.

Run from the repository root:  python3 spec/vectors/conversations/gen_behaviour.py
The schema is crates/lhp-vectors/src/conversation.rs.
"""

import hashlib
import json
import os
import struct

ANY = {"$any": "string"}


def prefix(h, profile="lhp1"):
    return struct.pack(">I", h) if profile == "lhp1" else struct.pack("<i", h)


def frame(header_text, body=b"", profile="lhp1"):
    t = header_text.encode() if isinstance(header_text, str) else header_text
    return prefix(len(t), profile) + t + body


def send(c, data, note=None):
    s = {"send": c, "hex": data.hex()}
    if note:
        s["note"] = note
    return s


def exact(*octets):
    return [{"hex": o.hex()} for o in octets]


def expect(c, frames, within=None):
    s = {"expect": c, "frames": frames}
    if within is not None:
        s["within_ms"] = within
    return s


def end(c, within=None):
    s = {"expect_end": c}
    if within is not None:
        s["within_ms"] = within
    return s


def conn_error(code, offset, missing=None):
    h = {"kind": "error", "code": code, "message": ANY, "offset": offset}
    if missing is not None:
        h["missing"] = missing
    return {"header": h, "body_hex": ""}


def req_error(code, id=None):
    h = {"kind": "error"}
    if id is not None:
        h["id"] = id
    h.update({"code": code, "message": ANY})
    return {"header": h, "body_hex": ""}


GOOD = frame('{"kind":"echo","id":1,"body_len":2}', b"ok")
SHORT = {"idle_timeout_ms": 1500, "read_timeout_ms": 300}

cases = []


def case(slug, spec, flags, description, steps, config=None, profile="lhp1"):
    c = {
        "id": "behaviour/" + slug,
        "spec": spec,
        "flags": flags,
        "description": description,
        "role": "server",
        "profile": profile,
    }
    if config:
        c["config"] = config
    c["steps"] = steps
    # A conversation that expects a connection error frame (one with `offset`) and then the
    # end of the connection checks the close after the error: it carries that class, so that
    # a server that keeps reading fails it as `close-after-error` (the negative controls
    # assert each fails exactly its class).
    sends_conn_error = any(
        "offset" in f.get("header", {})
        for st in steps if "expect" in st for f in st["frames"])
    ends = any("expect_end" in st for st in steps)
    if sends_conn_error and ends and "close-after-error" not in flags:
        c["flags"] = flags + ["close-after-error"]
    cases.append(c)


# --- Echo (section 8, E7) -------------------------------------------------------------------
case("echo", "8", ["echo"], "An echo frame comes back octet for octet.",
     [send(0, GOOD), expect(0, exact(GOOD))])
odd = frame('{"kind":"echo","a":0.1,"b":1e2,"c":-0,"d":"\\u00e9","body_len":3}', b"xyz")
case("echo-verbatim-numbers", "8", ["echo"],
     "The echo's header is the request's text: 0.1, 1e2, -0 and a \\u escape survive unchanged (E7).",
     [send(0, odd), expect(0, exact(odd))])
spaced = frame('{ "kind" : "echo" , "id" : 2 }')
case("echo-verbatim-whitespace", "8", ["echo"],
     "Insignificant whitespace in the request header is echoed as it was (E7).",
     [send(0, spaced), expect(0, exact(spaced))])
seed = frame('{"kind":"echo","file_name":"a.txt","file_size":3}', b"abc", "seed-compat")
case("echo-seed-compat-file-size", "8", ["echo"],
     "seed-compat: the echo keeps file_size and adds no body_len; little-endian prefix (E6, E7).",
     [send(0, seed), expect(0, exact(seed))], profile="seed-compat")
body = bytes(range(256)) * 4
digest = hashlib.sha256(body).hexdigest()
withsha = frame('{"kind":"echo","sha256":"%s","body_len":%d}' % (digest, len(body)), body)
case("echo-with-digest", "8", ["echo"], "A body with a correct sha256 is echoed whole.",
     [send(0, withsha), expect(0, exact(withsha))])
other = frame('{"kind":"nope","id":7}')
case("echo-server-refuses-other-kinds", "7.2", ["error-frame", "id"],
     "An echo server refuses a kind it has no handler for with a request error: id copied, no offset; the connection goes on.",
     [send(0, other), expect(0, [req_error("bad_request", 7)]), send(0, GOOD), expect(0, exact(GOOD))])
other_noid = frame('{"kind":"nope"}')
case("echo-server-refuses-without-id", "7.2", ["error-frame", "id"],
     "A refused request without id gets an error frame without id (E2).",
     [send(0, other_noid), expect(0, [req_error("bad_request")])])

# --- Pipelining and half-close (E5) ---------------------------------------------------------
three = [frame('{"kind":"echo","id":%d,"body_len":1}' % i, bytes([48 + i])) for i in range(1, 4)]
case("pipelining", "8", ["pipelining", "echo"],
     "Three requests in one write are answered in order.",
     [send(0, b"".join(three)), expect(0, exact(*three))])
case("half-close-after-last-request", "3.4", ["half-close", "pipelining"],
     "After the client half-closes at a frame boundary every request is answered, then the server closes without an error frame.",
     [send(0, b"".join(three)), {"half_close": 0}, expect(0, exact(*three)), end(0)])
case("half-close-idle", "3.4", ["half-close"],
     "A half-close with nothing sent is a clean end: no error frame.",
     [send(0, GOOD), expect(0, exact(GOOD)), {"half_close": 0}, end(0)])

# --- Fatal decode errors, alone and after a good request (7.1, 7.2, E3) -------------------
too_large = prefix(0x00100000)
bad = {
    "header_len_too_small": (prefix(1) + b"{}", 0, None, False),
    "header_len_too_large": (too_large, 0, None, False),
    "header_not_utf8": (frame(b'{"a":"\xff"}'), 4, None, False),
    "header_not_json": (frame('{"a":}'), 4, None, False),
    "header_not_object": (frame('[1,2]'), 4, None, False),
    "duplicate_member": (frame('{"a":1,"a":2}'), 4, None, False),
    "unsupported_version": (frame('{"v":2,"kind":"echo"}'), 4, None, False),
    "number_out_of_range": (frame('{"n":9007199254740992}'), 4, None, False),
    "invalid_body_len": (frame('{"body_len":-1}'), 4, None, False),
    "invalid_member": (frame('{"kind":5}'), 4, None, False),
    "body_too_large": (frame('{"kind":"echo","body_len":67108865}'), 4, None, False),
    "digest_mismatch": (frame('{"kind":"echo","sha256":"%s","body_len":3}' % ("0" * 64), b"abc"),
                        None, None, False),
    "unexpected_eof": (frame('{"kind":"echo","body_len":5}', b"ab"), None, 3, True),
}
for code, (data, off, missing, half) in bad.items():
    for after in (False, True):
        lead = GOOD if after else b""
        if code == "digest_mismatch":
            o = len(lead) + len(data) - 3
        elif code == "unexpected_eof":
            o = len(lead) + len(data)
        else:
            o = len(lead) + off
        steps = [send(0, lead + data)]
        if half:
            steps.append({"half_close": 0})
        want = (exact(GOOD) if after else []) + [conn_error(code, o, missing)]
        steps += [expect(0, want), end(0)]
        flags = ["error-frame", "close-after-error", "error-offset"]
        if half:
            flags.append("half-close")
        # body_too_large is judged against the default limit (section 5): state it, so that
        # a server whose own default is higher (a file server) is started with it.
        config = {"max_body_len": 67108864} if code == "body_too_large" else None
        case(("%s-after-request" if after else "%s") % code.replace("_", "-"), "7.2", flags,
             "%s%s: one connection error frame (offset %d, no id), then close." %
             ("After a good request, " if after else "", code, o), steps, config=config)
eof_prefix = b"\x00\x00"
case("unexpected-eof-in-prefix", "3.4", ["error-frame", "half-close", "error-offset"],
     "The stream ends inside a prefix: unexpected_eof with missing 2.",
     [send(0, eof_prefix), {"half_close": 0}, expect(0, [conn_error("unexpected_eof", 2, 2)]), end(0)])
case("unexpected-eof-in-header", "3.4", ["error-frame", "half-close", "error-offset"],
     "The stream ends inside a header: unexpected_eof with the octets missing.",
     [send(0, GOOD + frame('{"kind":"echo"}')[:9]), {"half_close": 0},
      expect(0, exact(GOOD) + [conn_error("unexpected_eof", len(GOOD) + 9, 10)]), end(0)])

# --- Wrong protocol (7.3, E3) ---------------------------------------------------------------
http = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"
case("wrong-protocol-http", "7.3", ["wrong-protocol", "error-frame"],
     "An HTTP request line gets one header_len_too_large error frame at offset 0 and the close.",
     [send(0, http), expect(0, [conn_error("header_len_too_large", 0)]), end(0)])
hello = bytes.fromhex("160301") + struct.pack(">H", 49) + b"\x01" + struct.pack(">I", 45)[1:] + \
    b"\x03\x03" + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00\x00\x04\x00\x00\x00\x00"
case("wrong-protocol-tls", "7.3", ["wrong-protocol", "error-frame"],
     "A TLS ClientHello gets one header_len_too_large error frame at offset 0 and the close.",
     [send(0, hello), expect(0, [conn_error("header_len_too_large", 0)]), end(0)])
case("wrong-protocol-after-request", "7.3", ["wrong-protocol", "error-frame", "error-offset"],
     "After a good frame, an HTTP request line is header_len_too_large at its own offset.",
     [send(0, GOOD + http), expect(0, exact(GOOD) + [conn_error("header_len_too_large", len(GOOD))]), end(0)])

# --- Deadlines (E4) -------------------------------------------------------------------------
case("timeout-idle", "11.2", ["timeout-idle", "error-frame"],
     "No request for idle_timeout after an answer: timeout with offset = octets received, then close.",
     [send(0, GOOD), expect(0, exact(GOOD)),
      expect(0, [conn_error("timeout", len(GOOD))], within=3000), end(0)],
     config={"idle_timeout_ms": 400, "read_timeout_ms": 5000})
case("timeout-idle-fresh", "11.2", ["timeout-idle", "error-frame"],
     "A connection that never sends: timeout at offset 0.",
     [{"expect_silence": 0, "for_ms": 150}, expect(0, [conn_error("timeout", 0)], within=3000), end(0)],
     config={"idle_timeout_ms": 400, "read_timeout_ms": 5000})
case("timeout-read-prefix", "11.2", ["timeout-read", "error-frame"],
     "A frame stalled inside its prefix: timeout after read_timeout, offset = octets received.",
     [send(0, GOOD + b"\x00\x00"), expect(0, exact(GOOD)),
      expect(0, [conn_error("timeout", len(GOOD) + 2)], within=3000), end(0)],
     config=SHORT)
hdr = frame('{"kind":"echo","body_len":4}')
case("timeout-read-header", "11.2", ["timeout-read", "error-frame"],
     "A frame stalled inside its header: timeout after read_timeout.",
     [send(0, hdr[:10]), expect(0, [conn_error("timeout", 10)], within=3000), end(0)],
     config=SHORT)
case("timeout-body", "11.2", ["timeout-body", "error-frame"],
     "A body stalled after its header: timeout after read_timeout + body_len/min_body_rate.",
     [send(0, hdr + b"ab"), expect(0, [conn_error("timeout", len(hdr) + 2)], within=3000), end(0)],
     config=SHORT)
slow = frame('{"kind":"echo","body_len":600}')
case("timeout-body-rate", "11.2", ["timeout-body", "error-frame"],
     "The body allowance grows with body_len: 600 octets at 1000 octets/s get read_timeout + 600 ms, "
     "so octets sent 500 ms in still count (the offset says so) and the deadline passes later.",
     [send(0, slow + bytes(100)), {"wait_ms": 500}, send(0, bytes(100)),
      expect(0, [conn_error("timeout", len(slow) + 200)], within=3000), end(0)],
     config={"idle_timeout_ms": 5000, "read_timeout_ms": 300, "min_body_rate": 1000})

# --- busy (E4) ------------------------------------------------------------------------------
case("busy", "11.2", ["busy", "error-frame"],
     "With max_connections 1, a second connection gets busy (offset 0) and the close; the first goes on.",
     [send(0, GOOD), expect(0, exact(GOOD)), expect(1, [conn_error("busy", 0)]), end(1),
      send(0, GOOD), expect(0, exact(GOOD))],
     config={"max_connections": 1})

out = {
    "schema": "lhp-conversations/1",
    "generator": "spec/vectors/conversations/gen_behaviour.py",
    "spec_version": "LHP/1",
    "group": "behaviour",
    "number_of_tests": len(cases),
    "conversations": cases,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "behaviour.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
print("wrote %d conversations to %s" % (len(cases), path))
