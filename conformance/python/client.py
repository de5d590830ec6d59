#!/usr/bin/env python3
"""Client under test for `lhp-conformance --client` (spec/conformance.md §5).

Connects to $LHP_CONFORMANCE_ADDR, decodes until end of stream or a decode
error (profile/limits/skip from the environment), prints one JSON line per
frame and a final {"end":"clean"} or {"error":{...}} line, exits 0.
"""

import hashlib
import json
import os
import socket
import sys

# The package lives in python/src (pip-installable); use the copy in this checkout.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python", "src"))

from lhp.codec import Decoder, DecodeError, END, encode_header  # noqa: E402
from lhp.net import parse_addr  # noqa: E402


def emit(obj):
    sys.stdout.write(encode_header(obj, strict=False).decode("utf-8") + "\n")
    sys.stdout.flush()


def main():
    env = os.environ
    sock = socket.create_connection(parse_addr(env["LHP_CONFORMANCE_ADDR"]),
                                    timeout=30)
    d = Decoder(env.get("LHP_PROFILE", "lhp1"),
                max_header_len=int(env.get("LHP_MAX_HEADER_LEN", 65536)),
                max_body_len=int(env.get("LHP_MAX_BODY_LEN", 64 << 20)),
                offset=int(env.get("LHP_SKIP_BYTES", 0)))
    try:
        while True:
            f = d.next_frame()
            if f is END:
                emit({"end": "clean"})
                break
            if f is not None:
                emit({"header": f.header, "body_len": len(f.body),
                      "body_sha256": hashlib.sha256(f.body).hexdigest()})
                continue
            data = sock.recv(65536)
            if data:
                d.feed(data)
            else:
                d.feed_eof()
    except DecodeError as e:
        emit({"error": e.as_dict()})
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
