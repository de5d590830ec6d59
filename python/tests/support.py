"""Shared helpers for the package's tests: import path, the `lhp` binary,
subprocess servers that print "listening on HOST:PORT"."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYTHON_DIR)
SRC = os.path.join(PYTHON_DIR, "src")
EXAMPLES = os.path.join(PYTHON_DIR, "examples")
if SRC not in sys.path:
    sys.path.insert(0, SRC)


def rust_binary(name):
    """Path of a Rust binary of this workspace: $LHP_BIN (for `lhp`), else
    the more recently built of target/release and target/debug; None if
    neither is built."""
    if name == "lhp" and os.environ.get("LHP_BIN"):
        return os.environ["LHP_BIN"]
    found = [os.path.join(REPO, "target", profile, name) for profile in ("release", "debug")]
    found = [p for p in found if os.path.isfile(p) and os.access(p, os.X_OK)]
    return max(found, key=os.path.getmtime) if found else None


def skip_loudly(test, what):
    """Print SKIP on stderr (visible in CI logs) and skip the test."""
    sys.stderr.write("\nSKIP %s: %s\n" % (test.id(), what))
    test.skipTest(what)


class Server:
    """A server subprocess whose first stdout line is "listening on ADDR"."""

    def __init__(self, argv, cwd=None, timeout=30.0):
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        if not line.startswith("listening on ") or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError("server %r printed %r; stderr: %s"
                               % (argv, line, self.proc.stderr.read()))
        self.addr = line.split()[-1]
        host, port = self.addr.rsplit(":", 1)
        self.address = (host, int(port))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run(argv, cwd=None, timeout=120):
    """Run a command; returns CompletedProcess (text)."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def example(name):
    return [sys.executable, os.path.join(EXAMPLES, name)]
