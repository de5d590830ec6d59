#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the test vectors in spec/vectors/*.json.

Each vector's input (hex, or a recipe of hex / repeat_hex+count / utf8 parts; inputs over
64 KiB are skipped) becomes one corpus file per target, in the layout that target reads
(see fuzz/src/lib.rs): a configuration header carrying the vector's profile and limits,
then the stream. File names are the SHA-1 of the contents, as libFuzzer names them.

Usage: fuzz/seed_corpus.py [VECTORS_DIR] [CORPUS_DIR]
"""

import glob
import hashlib
import json
import os
import struct
import sys

MAX_INPUT = 64 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))


def build(inp):
    """The octets of a vector's input, or None if over MAX_INPUT."""
    if "hex" in inp:
        return bytes.fromhex(inp["hex"])
    out = bytearray()
    for part in inp["recipe"]:
        if "hex" in part:
            out += bytes.fromhex(part["hex"])
        elif "repeat_hex" in part:
            unit = bytes.fromhex(part["repeat_hex"])
            if len(out) + len(unit) * part["count"] > MAX_INPUT:
                return None
            out += unit * part["count"]
        elif "utf8" in part:
            out += part["utf8"].encode("utf-8")
        else:
            raise ValueError(f"unknown recipe part {part!r}")
        if len(out) > MAX_INPUT:
            return None
    return bytes(out)


def config(profile, limits):
    """The configuration header of fuzz/src/lib.rs."""
    flags = 1 if profile == "seed-compat" else 0
    if not limits:
        return bytes([flags, 0, 0])
    h = limits.get("max_header_len", 65536)
    b = limits.get("max_body_len", 64 << 20)
    return bytes([flags, 7, 7]) + struct.pack(">IQ", h, b)


def header_of(stream, profile):
    """The first frame's header octets, if the prefix is plausible."""
    if len(stream) < 4:
        return None
    fmt = "<i" if profile == "seed-compat" else ">I"
    (h,) = struct.unpack(fmt, stream[:4])
    if h < 0 or h > len(stream) - 4:
        return None
    return stream[4 : 4 + h]


def main():
    vectors = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "spec", "vectors")
    corpus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "corpus")
    seeds = {t: set() for t in ("decode", "chunked", "roundtrip", "header", "seed_compat")}
    skipped = 0
    for path in sorted(glob.glob(os.path.join(vectors, "*.json"))):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        for v in doc.get("vectors", []):
            stream = build(v["input"])
            if stream is None:
                skipped += 1
                continue
            stream = stream[v.get("skip_bytes", 0) :]
            profile = v["profile"]
            cfg = config(profile, v.get("limits"))
            seeds["decode"].add(cfg + stream)
            seeds["chunked"].add(cfg + b"\x00" + stream)
            seeds["roundtrip"].add(stream)
            if profile == "seed-compat":
                seeds["seed_compat"].add(cfg + stream)
            header = header_of(stream, profile)
            if header is not None:
                seeds["header"].add(bytes([1 if profile == "seed-compat" else 0, 0]) + header)
    for target, items in seeds.items():
        d = os.path.join(corpus, target)
        os.makedirs(d, exist_ok=True)
        for data in items:
            with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
                f.write(data)
        print(f"{target}: {len(items)} seeds")
    print(f"skipped {skipped} vectors over {MAX_INPUT} octets")


if __name__ == "__main__":
    main()
