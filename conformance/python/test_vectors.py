"""Run every vector in spec/vectors against lhp.codec (unittest).

    cd /work/main && python3 -m unittest discover -s conformance/python -v

For each vector: the whole stream in one chunk, split at every single cut
point (a deterministic sample of 256 cut points -- 64 above 1 MiB --, always including the first
and last 8 and frame boundaries +-2, when the stream is longer than 4 KiB or
stream length x frame count exceeds 300000), and one
octet at a time (streams <= 64 KiB).  Whole-frame and streaming delivery are
both exercised (whole: both; cuts: alternating; bytes: both).
"""

import os
import sys
import unittest

# The package lives in python/src (pip-installable); use the copy in this checkout.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python", "src"))

from lhp.codec import Decoder, END, DecodeError  # noqa: E402
from lhp.vectors import load_vectors, build_input, run_plan, judge  # noqa: E402

EXHAUSTIVE_MAX = 64 * 1024          # one octet at a time only up to this
# Every cut point only up to this: a cut costs a whole decode of the stream, and a pure-Python
# parse of a 10 KiB header 10,000 times took minutes (ijson/members-1025*). The Rust codec is
# checked at every cut of every vector (crates/lhp-codec/tests/vectors.rs); here the sample
# keeps every frame boundary +-2 and the first and last 8 cuts.
EXHAUSTIVE_CUTS_MAX = 4 * 1024
COST_MAX = 300_000                  # stream octets x (frames + 1)
SAMPLES = 256                       # cut points for sampled vectors
SAMPLES_HUGE = 64                   # ... and for streams above ~1 MiB

VECTORS = load_vectors()
STATS = {"required": [0, 0], "recommended": [0, 0], "acceptable": [0, 0],
         "non_first_alternative": []}


def frame_ends(data, vector):
    """Frame boundaries (relative to the decoded stream) from a whole run;
    used only to choose sampled cut points."""
    limits = vector.get("limits") or {}
    d = Decoder(vector["profile"],
                max_header_len=limits.get("max_header_len", 65536),
                max_body_len=limits.get("max_body_len", 64 << 20))
    d.feed(data)
    d.feed_eof()
    ends = []
    try:
        while True:
            f = d.next_frame()
            if f is END:
                break
            ends.append(f.offset + 4 + f.header_len + len(f.body))
            ends.append(f.offset + 4)
            ends.append(f.offset + 4 + f.header_len)
    except DecodeError as e:
        ends.append(min(e.offset, len(data)))
    return ends


def cut_points(data, vector):
    """Every cut point, or a deterministic sample of SAMPLES of them when
    the stream is longer than 4 KiB or exhaustive splitting is too costly
    (stream length x frame count above COST_MAX)."""
    L = len(data)
    if L < 2:
        return [], False
    ends = frame_ends(data, vector)
    nframes = len(ends) // 3
    if L <= EXHAUSTIVE_CUTS_MAX and L * (nframes + 1) <= COST_MAX:
        return list(range(1, L)), False
    pts = set(range(1, min(9, L)))
    pts.update(range(max(1, L - 8), L))
    ends.sort()
    # frame boundaries +-2, at most 48 of them (evenly chosen)
    step = max(1, len(ends) // 48)
    for e in ends[::step]:
        for d in (-2, -1, 0, 1, 2):
            if 0 < e + d < L:
                pts.add(e + d)
    samples = SAMPLES if L <= (1 << 20) + 4096 else SAMPLES_HUGE
    room = max(1, samples - len(pts))
    stride = max(1, (L - 1) // room)
    pts.update(range(1, L, stride))
    return sorted(pts), True


class VectorTests(unittest.TestCase):
    @classmethod
    def tearDownClass(cls):
        total = {t: sum(1 for v in VECTORS if v["tier"] == t)
                 for t in ("required", "recommended")}
        acc = sum(1 for v in VECTORS if v["expect"]["result"] == "acceptable")
        sys.stderr.write(
            "\nLHP vectors passed: required %d/%d, recommended %d/%d, "
            "acceptable %d/%d (non-first alternative: %s)\n" % (
                STATS["required"][0], total["required"],
                STATS["recommended"][0], total["recommended"],
                STATS["acceptable"][0], acc,
                ", ".join("%s#%d" % x for x in STATS["non_first_alternative"])
                or "none"))


def make_test(v):
    def test(self):
        full = build_input(v["input"])
        skip = v.get("skip_bytes", 0)
        data = full[skip:]
        L = len(data)
        kw = dict(profile=v["profile"], limits=v.get("limits"), skip=skip)

        def check(plan, streaming, label):
            out = run_plan(data, plan, streaming=streaming, **kw)
            ok, alt, why = judge(out, v["expect"])
            if not ok:
                self.fail("%s [%s, %s]: %s" % (
                    v["id"], label, "streaming" if streaming else "whole-frame",
                    why))
            return alt

        whole = [L] if L else []
        alt = check(whole, False, "whole")
        alt2 = check(whole, True, "whole")
        self.assertEqual(alt, alt2, "modes chose different alternatives")
        pts, sampled = cut_points(data, v)
        for k, c in enumerate(pts):
            a = check([c, L - c], bool(k & 1), "cut %d" % c)
            self.assertEqual(a, alt, "cut %d chose another alternative" % c)
        if 0 < L <= EXHAUSTIVE_MAX:
            for streaming in (False, True):
                a = check([1] * L, streaming, "one octet at a time")
                self.assertEqual(a, alt)
        tier = v["tier"]
        STATS[tier][0] += 1
        if v["expect"]["result"] == "acceptable":
            STATS["acceptable"][0] += 1
            if alt:
                STATS["non_first_alternative"].append((v["id"], alt))
    return test


for _v in VECTORS:
    _name = "test_" + _v["id"].replace("/", "__").replace("-", "_").replace(
        ".", "_")
    setattr(VectorTests, _name, make_test(_v))


def load_tests(loader, tests, pattern):
    suite = unittest.TestSuite()
    suite.addTests(loader.loadTestsFromTestCase(VectorTests))
    return suite


if __name__ == "__main__":
    unittest.main()
