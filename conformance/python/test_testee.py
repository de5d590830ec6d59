"""End-to-end check of testee.py over its stdio protocol
(spec/conformance.md §3): every vector whole, plus a seeded random plan,
with the [n, r] run-length chunk form."""

import json
import os
import random
import struct
import subprocess
import sys
import unittest

# The package lives in python/src (pip-installable); use the copy in this checkout.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python", "src"))

from lhp.vectors import load_vectors, build_input, judge, Outcome  # noqa
from lhp.codec import DecodeError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class TesteeProcess:
    def __init__(self, env=None):
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen([sys.executable,
                                   os.path.join(HERE, "testee.py")],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, env=e)

    def request(self, header, body=b""):
        header = dict(header)
        header["body_len"] = len(body)
        text = json.dumps(header).encode()
        self.p.stdin.write(struct.pack(">I", len(text)) + text + body)
        self.p.stdin.flush()
        (n,) = struct.unpack(">I", self.p.stdout.read(4))
        raw = self.p.stdout.read(n)
        # The testee's reply is the harness's control channel, not an LHP header under
        # test: it wraps the decoded header, so it can be deeper than the section 4.2 cap
        # (a depth-64 vector's header inside {"frames":[{"header":...}]}).
        return json.loads(raw)

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait(10)
        self.p.stdout.close()
        return rc


def rle(chunks):
    out = []
    for c in chunks:
        if out and isinstance(out[-1], list) and out[-1][0] == c:
            out[-1][1] += 1
        elif out and out[-1] == c:
            out[-1] = [c, 2]
        else:
            out.append(c)
    return out


def random_plan(rng, n):
    plan = []
    while n > 0:
        c = min(n, rng.choice([1, 2, 3, 5, 7, rng.randint(8, 4096)]))
        plan.append(c)
        n -= c
    return plan


class TesteeTests(unittest.TestCase):
    def run_all(self, env):
        t = TesteeProcess(env)
        caps = t.request({"kind": "probe"})
        self.assertEqual(caps["kind"], "capabilities")
        self.assertEqual(caps["profiles"], ["lhp1", "seed-compat"])
        rng = random.Random(1)
        for k, v in enumerate(load_vectors()):
            full = build_input(v["input"])
            skip = v.get("skip_bytes", 0)
            data = full[skip:]
            plans = [[len(data)] if data else []]
            if len(data) <= (1 << 20) + 4096:
                plans.append(random_plan(rng, len(data)))
            for plan in plans:
                req = {"kind": "decode", "id": k, "profile": v["profile"],
                       "limits": v.get("limits") or {
                           "max_header_len": 65536,
                           "max_body_len": 67108864},
                       "skip_bytes": skip, "chunks": rle(plan)}
                r = t.request(req, data)
                self.assertEqual((r["kind"], r["id"]), ("result", k))
                frames = [(f["header"], f["body_len"], f["body_sha256"], None)
                          for f in r["frames"]]
                e = r["error"]
                err = None if e is None else DecodeError(
                    e["code"], e["offset"], e.get("missing"))
                exp = v["expect"]
                # bodies are reported as sha256 only: compare by digest
                exp = json.loads(json.dumps(exp))
                for alt in exp.get("alternatives", [exp]):
                    for fr in alt.get("frames", []):
                        if "body_hex" in fr:
                            import hashlib
                            fr["body_sha256"] = hashlib.sha256(
                                bytes.fromhex(fr.pop("body_hex"))).hexdigest()
                ok, _, why = judge(Outcome(frames, err), exp)
                self.assertTrue(ok, "%s %s: %s" % (v["id"], plan[:8], why))
        self.assertEqual(t.close(), 0)

    def test_streaming_mode(self):
        self.run_all({})

    def test_whole_frame_mode(self):
        self.run_all({"LHP_TESTEE_MODE": "whole"})


if __name__ == "__main__":
    unittest.main()
