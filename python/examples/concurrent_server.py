#!/usr/bin/env python3
"""Concurrent server: the seeds' socketserver example (seeds 000, 003), with frames.

    python3 concurrent_server.py [--addr 127.0.0.1:8081] [--profile seed-compat]

One thread per connection (socketserver.ThreadingTCPServer underneath); each
handler gets whole frames, never a recv()'s worth of bytes.  `echo` frames come
back unchanged (spec/lhp-1.md section 8, so the conformance harness's --server
mode can test it), `upper` frames with the body upper-cased (the seed's
data.upper()); anything else is refused with bad_request and the connection goes
on.  The first line on stdout is "listening on HOST:PORT".
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from lhp.server import FrameHandler, FrameServer  # noqa: E402


class Handler(FrameHandler):
    keep_header_octets = True                  # echo repeats the header text exactly

    def handle_frame(self, header, body):
        kind = header.get("kind")
        if kind == "echo":
            self.echo(body)
        elif kind == "upper":
            self.send(header, body.upper())
        elif kind != "error":                  # never answer an error frame
            self.refuse("bad_request", "this server answers echo and upper", header)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:8081")
    ap.add_argument("--profile", default="lhp1", choices=("lhp1", "seed-compat"))
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    with FrameServer((host, int(port)), Handler, profile=a.profile) as srv:
        print("listening on %s" % srv.address, flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
