#!/usr/bin/env python3
"""LHP/1 echo server (spec/lhp-1.md section 8).

    python3 echo_server.py --addr 127.0.0.1:0

The first line on stdout is `listening on HOST:PORT`.
"""

import argparse
import os
import sys

# The package lives in python/src (pip-installable); use the copy in this checkout.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python", "src"))

from lhp.net import EchoServer  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:7000")
    ap.add_argument("--profile", default="lhp1",
                    choices=("lhp1", "seed-compat"))
    ap.add_argument("--max-header-len", type=int, default=65536)
    ap.add_argument("--max-body-len", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--max-connections", type=int, default=64)
    ap.add_argument("--idle-timeout", type=float, default=30.0)
    ap.add_argument("--frame-timeout", type=float, default=120.0)
    ap.add_argument("--verbose", "-v", action="store_true")
    a = ap.parse_args(argv)
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if a.verbose \
        else None
    srv = EchoServer(a.addr, a.profile, a.max_header_len, a.max_body_len,
                     a.max_connections, a.idle_timeout, a.frame_timeout,
                     log=log)
    print("listening on %s" % srv.addr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
