#!/usr/bin/env python3
"""Remote-command client: seed 002's client, done with lhp.

    python3 cmd_client.py [--addr HOST:PORT] -- PROGRAM [ARGS...]

Sends argv as a JSON array (no shell on either side: `$(id);ls` is one
literal argument), writes the program's stdout and stderr to ours as the
frames arrive, and exits with its exit code.  Works against
`lhp serve --allow-exec PROGRAM` and cmd_server.py.
"""
import argparse
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from lhp import DecodeError, PeerError, raise_for_error, recv_frame, send_frame  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:7000")
    ap.add_argument("argv", nargs="+")
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        send_frame(sock, {"kind": "exec", "id": 1, "argv": a.argv})
        while True:
            frame = recv_frame(sock)
            if frame is None:
                sys.exit("the server closed the connection")
            header = raise_for_error(frame.header)     # PeerError, e.g. exec_denied
            if header["kind"] == "output":
                out = sys.stdout if header["stream"] == "stdout" else sys.stderr
                out.buffer.write(frame.body)
                out.flush()
            elif header["kind"] == "exit":
                code = header["code"]
                sys.exit(code if code is not None else 128 + (header["signal"] or 0))


if __name__ == "__main__":
    try:
        main()
    except (PeerError, DecodeError) as e:     # a refusal, or a peer that broke the protocol
        sys.exit("%s: %s" % (os.path.basename(sys.argv[0]), e))
