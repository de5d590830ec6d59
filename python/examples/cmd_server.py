#!/usr/bin/env python3
"""Remote-command server: seed 002's server, done with lhp and without a shell.

    python3 cmd_server.py --allow seq --allow echo [--addr 127.0.0.1:7000]

Speaks spec/lhp-app.md `exec`: the request carries argv as a JSON array;
argv[0] must be on the allow-list (the seed ran any text with shell=True);
stdout and stderr stream back in separate `output` frames as the program
writes them, then one `exit` frame.  `lhp exec` works against it.
The first line on stdout is "listening on HOST:PORT".
"""
import argparse
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from lhp.server import FrameHandler, FrameServer  # noqa: E402


class ExecHandler(FrameHandler):
    def handle_frame(self, header, body):
        if header.get("kind") != "exec":
            return self.refuse("bad_request", "this server only runs exec", header)
        argv = header.get("argv")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            return self.refuse("bad_request", "argv must be a non-empty array of strings", header)
        if argv[0] not in self.server.allowed:
            return self.refuse("exec_denied", "%r is not allowed" % argv[0], header)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)   # argv, never a shell
        except FileNotFoundError:
            return self.refuse("not_found", "no such program", header)
        rid = {"id": header["id"]} if "id" in header else {}
        lock = threading.Lock()                 # one frame at a time on the socket

        def pump(pipe, name):
            for chunk in iter(lambda: pipe.read1(65536), b""):
                with lock:
                    self.send(dict(kind="output", **rid, stream=name), chunk)

        expired = []                            # the time limit (spec/lhp-app.md 10.7)
        timer = threading.Timer(self.server.exec_timeout,
                                lambda: (expired.append(True), proc.kill()))
        timer.start()
        t = threading.Thread(target=pump, args=(proc.stderr, "stderr"))
        t.start()
        pump(proc.stdout, "stdout")
        t.join()
        code = proc.wait()
        timer.cancel()
        timed_out = bool(expired)
        signal = -code if code < 0 else None
        self.send(dict(kind="exit", **rid, code=None if signal else code, signal=signal,
                       timed_out=timed_out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:7000")
    ap.add_argument("--allow", action="append", default=[], metavar="PROGRAM")
    ap.add_argument("--exec-timeout", type=float, default=30.0)
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    with FrameServer((host, int(port)), ExecHandler) as srv:
        srv.allowed, srv.exec_timeout = frozenset(a.allow), a.exec_timeout
        print("listening on %s" % srv.address, flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
