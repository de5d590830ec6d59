#!/usr/bin/env python3
"""LHP/1 echo server (spec/lhp-1.md section 8, error model of section 7).

    python3 echo_server.py --addr 127.0.0.1:0 [--read-timeout-ms 400 ...]

The first line on stdout is `listening on HOST:PORT`. It runs the reference
connection layer of conformance/controls/echo_reference.py (verbatim echo,
connection and request error frames, the deadlines of section 11.2, `busy`),
which passes every conversation of the conformance harness.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "controls"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python", "src"))

import echo_reference as ref  # noqa: E402


def main(argv=None):
    ap = ref.argument_parser(__doc__.splitlines()[0])
    # The flags of the first version, in seconds.
    ap.add_argument("--idle-timeout", type=float, default=None)
    ap.add_argument("--frame-timeout", type=float, default=None)
    ap.add_argument("--verbose", "-v", action="store_true")
    a = ap.parse_args(argv)
    if a.idle_timeout is not None:
        a.idle_timeout_ms = int(a.idle_timeout * 1000)
    if a.frame_timeout is not None:
        a.read_timeout_ms = int(a.frame_timeout * 1000)
    srv = ref.Server(a.addr, ref.Settings(a))
    print("listening on %s" % srv.addr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
