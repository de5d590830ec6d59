"""Interop with the Rust side over loopback, both directions:

- the examples' clients against `lhp serve` (files, exec, echo), checked
  with `lhp get`;
- `lhp put` / `lhp get` / `lhp exec` against the examples' servers;
- the seeds' own upload client against upload_server.py (seed-compat);
- `lhp-conformance --server-cmd` against concurrent_server.py.

Needs target/{release,debug}/lhp (or $LHP_BIN): `cargo build -p lhp`.
Without it every test here says SKIP on stderr."""

import hashlib
import io
import os
import shutil
import socket
import tempfile
import unittest

import support
from support import Server, example, run, rust_binary
from lhp import recv_frame, send_frame, send_stream
from lhp.codec import encode_head

LHP = rust_binary("lhp")


def payload(n, seed=b"lhp"):
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


class RustInterop(unittest.TestCase):
    def setUp(self):
        if LHP is None:
            support.skip_loudly(self, "the lhp binary is not built (cargo build -p lhp)")
        self.tmp = tempfile.mkdtemp(prefix="lhp-py-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def write(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def ok(self, argv, **kw):
        r = run(argv, **kw)
        self.assertEqual(r.returncode, 0, "%s failed: %s%s" % (argv, r.stdout, r.stderr))
        return r

    def test_ten_line_script_talks_to_lhp_serve(self):
        with Server([LHP, "serve", "--addr", "127.0.0.1:0"]) as srv:
            with socket.create_connection(srv.address, timeout=20) as sock:
                send_frame(sock, {"kind": "echo", "id": 1}, b"hello")
                big = payload(3 << 20)
                send_frame(sock, {"kind": "echo", "id": 2}, big)
                h1, b1 = recv_frame(sock)
                h2, b2 = recv_frame(sock)
        self.assertEqual((h1, bytes(b1)), ({"kind": "echo", "id": 1, "body_len": 5}, b"hello"))
        self.assertEqual(h2["id"], 2)
        self.assertTrue(b2 == big)

    def test_python_upload_client_to_lhp_serve(self):
        os.mkdir(self.path("root"))
        data = payload(5 << 20)
        src = self.write("src.bin", data)
        with Server([LHP, "serve", "--root", self.path("root"), "--addr", "127.0.0.1:0"]) as srv:
            self.ok(example("upload_client.py") + ["put", src, "--as", "up.bin",
                                                   "--addr", srv.addr])
            self.assertEqual(self.read("root/up.bin"), data)
            # the Rust client fetches what the Python client stored
            self.ok([LHP, "get", "up.bin", "-o", self.path("viarust.bin"), "--addr", srv.addr])
            self.assertEqual(self.read("viarust.bin"), data)
            # and the Python client fetches it too
            self.ok(example("upload_client.py") + ["get", "up.bin", "-o", self.path("viapy.bin"),
                                                   "--addr", srv.addr])
            self.assertEqual(self.read("viapy.bin"), data)
            # a second put without --replace is refused by the server
            r = run(example("upload_client.py") + ["put", src, "--as", "up.bin",
                                                   "--addr", srv.addr])
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("exists", r.stderr)

    def test_lhp_put_and_get_against_python_upload_server(self):
        os.mkdir(self.path("root"))
        data = payload(4 << 20, b"other")
        src = self.write("src.bin", data)
        with Server(example("upload_server.py") + ["--root", self.path("root"),
                                                   "--addr", "127.0.0.1:0"]) as srv:
            self.ok([LHP, "put", src, "--as", "stored.bin", "--addr", srv.addr])
            self.assertEqual(self.read("root/stored.bin"), data)
            self.assertEqual([n for n in os.listdir(self.path("root"))], ["stored.bin"])
            self.ok([LHP, "get", "stored.bin", "-o", self.path("back.bin"), "--addr", srv.addr])
            self.assertEqual(self.read("back.bin"), data)
            self.ok(example("upload_client.py") + ["get", "stored.bin", "-o",
                                                   self.path("back2.bin"), "--addr", srv.addr])
            self.assertEqual(self.read("back2.bin"), data)
            r = run([LHP, "put", src, "--as", "stored.bin", "--addr", srv.addr])
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("exists", r.stderr)
            r = run(example("upload_client.py") + ["put", src, "--as", "../escape",
                                                   "--addr", srv.addr])
            self.assertIn("bad_name", r.stderr)
            self.assertFalse(os.path.exists(self.path("escape")))
            r = run([LHP, "get", "missing", "-o", self.path("m"), "--addr", srv.addr])
            self.assertIn("not_found", r.stderr)

    def test_python_upload_server_stores_nothing_on_a_digest_mismatch(self):
        os.mkdir(self.path("root"))
        data = payload(1 << 20)
        with Server(example("upload_server.py") + ["--root", self.path("root"),
                                                   "--addr", "127.0.0.1:0"]) as srv:
            with socket.create_connection(srv.address, timeout=20) as sock:
                wrong = hashlib.sha256(b"something else").hexdigest()
                # send_stream does not check the digest (the caller computed it)
                send_stream(sock, {"kind": "put", "name": "x.bin", "sha256": wrong},
                            len(data), io.BytesIO(data))
                err = recv_frame(sock).header
                self.assertIsNone(recv_frame(sock))
        body_start = len(encode_head({"kind": "put", "name": "x.bin", "sha256": wrong},
                                     len(data)))        # prefix + header
        self.assertEqual((err["code"], err["offset"]), ("digest_mismatch", body_start))
        self.assertEqual(os.listdir(self.path("root")), [])

    def test_seed_client_against_python_upload_server_seed_compat(self):
        seed_client = os.path.join(support.REPO, "conformance", "seeds",
                                   "seed_000_upload_client.py")
        os.mkdir(self.path("root"))
        data = payload(200000, b"seed")
        src = self.write("movie.mp4", data)
        with Server(example("upload_server.py") + ["--root", self.path("root"), "--profile",
                                                   "seed-compat", "--addr", "127.0.0.1:0"]) as srv:
            self.ok([support.sys.executable, seed_client, srv.addr, src, "movie.mp4"])
            # the seed's client sends and closes without waiting for a reply: wait for the
            # server to place the file
            for _ in range(100):
                if os.path.exists(self.path("root", "movie.mp4")):
                    break
                support.time.sleep(0.05)
            self.ok([LHP, "put", src, "--as", "again.mp4", "--profile", "seed-compat",
                     "--addr", srv.addr])
            for _ in range(100):
                if os.path.exists(self.path("root", "again.mp4")):
                    break
                support.time.sleep(0.05)
        self.assertEqual(self.read("root/movie.mp4"), data)
        self.assertEqual(self.read("root/again.mp4"), data)

    def test_python_cmd_client_against_lhp_serve(self):
        with Server([LHP, "serve", "--addr", "127.0.0.1:0", "--allow-exec", "echo"]) as srv:
            r = self.ok(example("cmd_client.py") + ["--addr", srv.addr, "--", "echo", "a",
                                                    "$(id);ls"])
            self.assertEqual(r.stdout, "a $(id);ls\n")
            r = run(example("cmd_client.py") + ["--addr", srv.addr, "--", "ls"])
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("exec_denied", r.stderr)

    def test_lhp_exec_against_python_cmd_server(self):
        with Server(example("cmd_server.py") + ["--allow", "seq", "--allow", "sh",
                                                "--addr", "127.0.0.1:0"]) as srv:
            r = self.ok([LHP, "exec", "--addr", srv.addr, "--", "seq", "1", "100000"])
            self.assertEqual(r.stdout, "".join("%d\n" % i for i in range(1, 100001)))
            r = run([LHP, "exec", "--addr", srv.addr, "--", "sh", "-c",
                     "echo out; echo err >&2; exit 3"])
            self.assertEqual((r.returncode, r.stdout), (3, "out\n"))
            self.assertIn("err", r.stderr)
            r = run([LHP, "exec", "--addr", srv.addr, "--", "rm", "-rf", "/nonexistent"])
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("exec_denied", r.stderr)
            r = self.ok(example("cmd_client.py") + ["--addr", srv.addr, "--", "seq", "3"])
            self.assertEqual(r.stdout, "1\n2\n3\n")

    def test_python_cmd_server_time_limit(self):
        with Server(example("cmd_server.py") + ["--allow", "sleep", "--exec-timeout", "0.5",
                                                "--addr", "127.0.0.1:0"]) as srv:
            t0 = support.time.monotonic()
            r = run([LHP, "exec", "--addr", srv.addr, "--", "sleep", "30"])
            elapsed = support.time.monotonic() - t0
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("time limit", r.stderr)
        self.assertLess(elapsed, 20)

    def test_conformance_harness_server_mode_against_concurrent_server(self):
        harness = rust_binary("lhp-conformance")
        if harness is None:
            support.skip_loudly(self, "lhp-conformance is not built "
                                "(cargo build -p lhp-conformance)")
        cmd = "%s %s --addr 127.0.0.1:0" % (support.sys.executable,
                                            os.path.join(support.EXAMPLES, "concurrent_server.py"))
        # The decode vectors through the echo server; the behaviour conversations need a
        # server that takes their settings (timeouts, limits, profile), which this example
        # does not: an empty conversation directory leaves them out.
        no_conversations = self.path("no-conversations")
        os.makedirs(no_conversations, exist_ok=True)
        r = run([harness, "--server-cmd", cmd, "--vectors",
                 os.path.join(support.REPO, "spec", "vectors"), "--conversations",
                 no_conversations, "--out", self.path("report")],
                timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"\b1[0-9]{2} passed, 0 failed")


if __name__ == "__main__":
    unittest.main()
