#!/usr/bin/env python3
"""Generates spec/vectors/datagram.json: the vectors of the UDP binding (spec/lhp-udp.md §10).

Python 3 standard library only. It imports the independent reference decoder of generate.py
(ref_decode, the stream rules) and adds the two datagram rules on top: the size limit (§3.2)
and exactly one frame (§4.2, §4.3). Limits are clamped to the datagram (§4.1).

    python3 spec/vectors/gen_datagram.py          # writes datagram.json, prints counts
    python3 spec/vectors/gen_datagram.py --check  # verifies the file on disk is up to date
"""

import glob
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from generate import decode_input, ref_decode  # noqa: E402  (the independent decoder)

MAX_DATAGRAM_LEN = 65507
DEFAULT_LIMITS = {"max_header_len": 65536, "max_body_len": 64 * 1024 * 1024}
OUT = os.path.join(HERE, "datagram.json")


def clamp(limits, max_dgram):
    """§4.1: no limit larger than a datagram can hold."""
    return {"max_header_len": min(limits["max_header_len"], max_dgram - 4),
            "max_body_len": min(limits["max_body_len"], max_dgram - 6)}


def datagram_decode(data, profile, limits, max_dgram):
    """The binding's outcome for one datagram: {"result": "valid", "frame": F} or
    {"result": "invalid", "error": {...}}."""
    if len(data) > max_dgram:
        return {"result": "invalid", "error": {"code": "datagram_too_large", "offset": max_dgram}}
    if not data:
        return {"result": "invalid",
                "error": {"code": "unexpected_eof", "offset": 0, "missing": 4}}
    got = ref_decode(data, profile, clamp(limits, max_dgram), 0)
    if got["frames"]:
        first = got["frames"][0]
        h = struct.unpack(">I" if profile == "lhp1" else "<i", data[:4])[0]
        end = 4 + h + first["body_len"]
        if end < len(data):
            return {"result": "invalid", "error": {"code": "trailing_octets", "offset": end}}
        return {"result": "valid", "frame": first}
    return {"result": "invalid", "error": got["error"]}


def hexin(b):
    return {"hex": b.hex()}


def frame(header_text, body=b"", profile="lhp1"):
    hb = header_text.encode("utf-8")
    p = struct.pack(">I", len(hb)) if profile == "lhp1" else struct.pack("<i", len(hb))
    return p + hb + body


def derived():
    """Every stream vector without skip_bytes whose input fits a datagram."""
    out = []
    for path in sorted(glob.glob(os.path.join(HERE, "*.json"))):
        name = os.path.basename(path)
        if name in ("schema.json", "datagram.json"):
            continue
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        for v in doc.get("vectors", []):
            # Vectors with alternative outcomes are left to the stream harness.
            if v.get("skip_bytes") or "input" not in v or v["expect"]["result"] == "acceptable":
                continue
            data = decode_input(v["input"])
            if len(data) > MAX_DATAGRAM_LEN or len(data) > 4096:
                continue
            d = {"id": "datagram/from-" + v["id"].replace("/", "-"), "spec": "4.1",
                 "from": v["id"],
                 "description": "The stream vector %s as one datagram." % v["id"],
                 "profile": v["profile"]}
            if "limits" in v:
                d["limits"] = v["limits"]
            d["input"] = v["input"]
            out.append((d, data))
    return out


def handmade():
    out = []

    def add(slug, spec, desc, data, profile="lhp1", max_dgram=None, limits=None, recipe=None):
        d = {"id": "datagram/" + slug, "spec": spec, "description": desc, "profile": profile}
        if limits:
            d["limits"] = limits
        if max_dgram:
            d["max_datagram_len"] = max_dgram
        d["input"] = recipe if recipe else hexin(data)
        out.append((d, data))

    echo = frame('{"kind":"echo","id":1,"body_len":5}', b"hello")
    add("one-frame", "4.1", "One echo frame: the whole datagram.", echo)
    add("empty", "4.2", "An empty datagram holds less than one frame.", b"")
    for n in range(1, len(echo)):
        add("truncated-%02d" % n, "4.2",
            "The echo frame cut after %d octets: unexpected_eof where the datagram ends." % n,
            echo[:n])
    add("two-frames", "4.3", "Two frames in one datagram: trailing_octets where the first ends.",
        echo + echo)
    add("two-frames-empty", "4.3", "Two {} frames in one datagram.", frame("{}") * 2)
    add("one-trailing-octet", "4.3", "One zero octet after a frame.", frame("{}") + b"\0")
    add("trailing-garbage-after-error-free-frame", "4.3",
        "A frame followed by an invalid prefix: still trailing_octets (the datagram is invalid "
        "as a whole; the rest is not decoded).", frame("{}") + b"\0\0\0\0")
    add("error-before-trailing", "4.1",
        "A bad header followed by more octets: the header's own error, not trailing_octets.",
        frame('{"a":1,"a":2}') + b"xx")
    big_hdr = '{"kind":"echo","body_len":%d}'
    body = MAX_DATAGRAM_LEN - 4 - len(big_hdr % 65000)
    exact = frame(big_hdr % body, b"a" * body)
    assert len(exact) == MAX_DATAGRAM_LEN
    add("exactly-max", "3.1", "A frame of exactly max_datagram_len octets is accepted.", exact,
        recipe={"recipe": [{"hex": exact[:4 + len(big_hdr % body)].hex()},
                           {"repeat_hex": "61", "count": body}]})
    over = frame(big_hdr % (body + 1), b"a" * (body + 1))
    add("oversized-by-one", "3.2",
        "One octet over the maximum: datagram_too_large at offset max_datagram_len.", over,
        recipe={"recipe": [{"hex": over[:4 + len(big_hdr % (body + 1))].hex()},
                           {"repeat_hex": "61", "count": body + 1}]})
    small = frame('{"kind":"echo","body_len":2000}', b"x" * 2000)
    add("oversized-2000-over-1024", "3.2",
        "The seeds' case: a 2,000-octet message to a receiver whose maximum is 1024.", small,
        max_dgram=1024, recipe={"recipe": [{"hex": small[:35].hex()},
                                           {"repeat_hex": "78", "count": 2000}]})
    add("huge-body-claim", "4.1",
        "body_len 2^53-1: body_too_large under the clamped limit, nothing allocated.",
        frame('{"body_len":9007199254740991}'))
    add("body-claim-beyond-datagram", "4.1",
        "body_len 65502 (one more than a datagram can carry after a 2-octet header): "
        "body_too_large.", frame('{"body_len":65502}'))
    add("body-claim-not-present", "4.2",
        "body_len 60000 with one body octet: unexpected_eof, 59999 missing.",
        frame('{"body_len":60000}', b"x"))
    add("huge-header-claim", "4.1", "A prefix claiming 4 GiB of header: header_len_too_large.",
        b"\xff\xff\xff\xff{}")
    add("header-claim-beyond-datagram", "4.1",
        "A prefix claiming 65504 header octets (max_datagram_len - 3): header_len_too_large.",
        struct.pack(">I", 65504) + b"{}")
    add("seed-compat-one-frame", "8", "A seed-compat frame (little-endian prefix, file_size).",
        frame('{"file_name":"a.txt","file_size":3}', b"abc", "seed-compat"), profile="seed-compat")
    add("seed-compat-two-frames", "8", "Two seed-compat frames in one datagram.",
        frame('{}', b"", "seed-compat") * 2, profile="seed-compat")
    add("lhp1-in-seed-compat", "8",
        "An lhp1 prefix read by a seed-compat receiver: the big-endian 2 reads as 2^25.",
        frame("{}"), profile="seed-compat")
    add("http-request", "4.1", "An HTTP request line in a datagram: header_len_too_large.",
        b"GET / HTTP/1.1\r\n\r\n")
    return out


def build():
    # Wycheproof-style file header (spec/vectors/README.md). `number_of_tests` counts the
    # stream vectors of this file (none: the datagrams are not streams, so the stream loaders
    # see an empty group); `number_of_datagrams` counts the datagram cases.
    doc = {"schema": "lhp-vectors/1", "generator": "spec/vectors/gen_datagram.py",
           "spec_version": "LHP/1 (spec/lhp-1.md) over UDP (spec/lhp-udp.md)",
           "group": "datagram", "number_of_tests": 0, "vectors": [],
           "max_datagram_len": MAX_DATAGRAM_LEN, "datagrams": []}
    seen = set()
    for d, data in handmade() + derived():
        assert d["id"] not in seen, d["id"]
        seen.add(d["id"])
        assert decode_input(d["input"]) == data, d["id"]
        d["expect"] = datagram_decode(data, d["profile"], d.get("limits", DEFAULT_LIMITS),
                                      d.get("max_datagram_len", MAX_DATAGRAM_LEN))
        doc["datagrams"].append(d)
    return doc


def main():
    doc = build()
    doc["number_of_datagrams"] = len(doc["datagrams"])
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if "--check" in sys.argv[1:]:
        with open(OUT, encoding="utf-8") as fh:
            if fh.read() != text:
                print("datagram.json is out of date: run gen_datagram.py", file=sys.stderr)
                sys.exit(1)
    else:
        with open(OUT, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    counts = {}
    for d in doc["datagrams"]:
        k = d["expect"]["result"] + " " + d["expect"].get("error", {}).get("code", "")
        counts[k] = counts.get(k, 0) + 1
    for k in sorted(counts):
        print("%-32s %4d" % (k, counts[k]))
    print("%-32s %4d datagrams" % ("total", len(doc["datagrams"])))


if __name__ == "__main__":
    main()
