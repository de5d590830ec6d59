#!/usr/bin/env python3
"""stdio testee for the LHP/1 conformance harness (spec/conformance.md §3).

    lhp-conformance --stdio 'python3 conformance/python/testee.py'

Requests and replies are LHP/1 frames (lhp1 profile) on stdin/stdout; the
control channel itself is read with lhp.codec.Decoder.

Environment: LHP_TESTEE_MODE=whole uses whole-frame delivery instead of the
default streaming delivery (both must give the same outcome, section 5).
"""

import hashlib
import os
import sys

# The package lives in python/src (pip-installable); use the copy in this checkout.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python", "src"))

from lhp.codec import (Decoder, DecodeError, END, Head, BodyChunk,  # noqa
                       encode_header, PROFILES)
import struct  # noqa: E402

NAME = "lhp-python 1.0 (conformance/python)"
MODE = os.environ.get("LHP_TESTEE_MODE", "streaming")


def log(*a):
    print("testee:", *a, file=sys.stderr, flush=True)


def send(out, header):
    # Replies can be larger than 65536 octets (many frames) and may carry
    # decoded headers deeper than 64 or with noncharacters, so the sender
    # rules of section 9 are relaxed here (strict=False).
    text = encode_header(header, strict=False)
    out.write(struct.pack(">I", len(text)) + text)
    out.flush()


def expand_chunks(plan):
    for c in plan:
        if isinstance(c, list):
            n, r = c
            for _ in range(r):
                yield n
        else:
            yield c


def decode(req, body):
    limits = req.get("limits") or {}
    skip = req.get("skip_bytes", 0) or 0
    d = Decoder(req.get("profile", "lhp1"),
                max_header_len=limits.get("max_header_len", 65536),
                max_body_len=limits.get("max_body_len", 64 * 1024 * 1024),
                offset=skip)
    frames = []
    cur = {}

    def drain_streaming():
        while True:
            ev = d.next_event()
            if ev is None or ev is END:
                return
            t = type(ev)
            if t is Head:
                cur["head"] = ev
                cur["h"] = hashlib.sha256()
                cur["n"] = 0
            elif t is BodyChunk:
                cur["h"].update(ev.data)
                cur["n"] += len(ev.data)
            else:
                frames.append({"header": cur["head"].header,
                               "body_len": cur["n"],
                               "body_sha256": cur["h"].hexdigest()})
                cur.clear()

    def drain_whole():
        while True:
            f = d.next_frame()
            if f is None or f is END:
                return
            frames.append({"header": f.header, "body_len": len(f.body),
                           "body_sha256": hashlib.sha256(f.body).hexdigest()})

    drain = drain_whole if MODE == "whole" else drain_streaming
    mv = memoryview(body)
    pos = 0
    try:
        for n in expand_chunks(req.get("chunks", [])):
            d.feed(mv[pos:pos + n])
            pos += n
            drain()
        d.feed_eof()
        drain()
        if not d.at_clean_end:
            raise RuntimeError("decoder did not reach an end")  # bug guard
        return frames, None
    except DecodeError as e:
        err = {"code": e.code, "offset": e.offset}
        if e.missing is not None:
            err["missing"] = e.missing
        return frames, err


def main():
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    fd = inp.fileno()
    ctl = Decoder("lhp1", max_header_len=1 << 24, max_body_len=1 << 32)
    while True:
        try:
            f = ctl.next_frame()
        except DecodeError as e:
            log("bad control frame:", e)
            return 1
        if f is END:
            return 0
        if f is None:
            data = os.read(fd, 1 << 20)
            if not data:
                ctl.feed_eof()
            else:
                ctl.feed(data)
            continue
        req = f.header
        kind = req.get("kind")
        if kind == "probe":
            send(out, {"kind": "capabilities", "name": NAME,
                       "profiles": list(PROFILES),
                       "features": ["streaming-body", "limits"]
                       if MODE != "whole" else ["limits"]})
        elif kind == "decode":
            frames, err = decode(req, f.body)
            send(out, {"kind": "result", "id": req.get("id"),
                       "frames": frames, "error": err})
        else:
            log("unknown request kind", kind)
            send(out, {"kind": "unsupported", "id": req.get("id")})


if __name__ == "__main__":
    sys.exit(main())
