"""Loading spec/vectors/*.json and judging decoder outcomes against them
(format: spec/vectors/README.md)."""

import glob
import hashlib
import json
import os

from .codec import Decoder, DecodeError, END, Head, BodyChunk

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "spec",
                                            "vectors"))


def load_vectors(directory=DEFAULT_DIR):
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        if os.path.basename(path) == "schema.json":
            continue
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        out.extend(doc["vectors"])
    return out


def build_input(inp):
    if "hex" in inp:
        return bytes.fromhex(inp["hex"])
    parts = []
    for p in inp["recipe"]:
        if "hex" in p:
            parts.append(bytes.fromhex(p["hex"]))
        elif "repeat_hex" in p:
            parts.append(bytes.fromhex(p["repeat_hex"]) * p["count"])
        else:
            parts.append(p["utf8"].encode("utf-8"))
    return b"".join(parts)


class Outcome:
    """What a decoder did with a stream: frames [(header, body_len,
    sha256hex, body_or_None)] and error (DecodeError or None)."""

    def __init__(self, frames, error):
        self.frames = frames
        self.error = error

    def __repr__(self):
        return "Outcome(%d frames, %r)" % (len(self.frames), self.error)


def run_plan(data, chunks, profile="lhp1", limits=None, skip=0,
             streaming=False, keep_bodies_upto=4096):
    """Feed `data` to a fresh decoder in `chunks` (list of lengths), letting
    it deliver everything it can after each chunk; then end of stream."""
    limits = limits or {}
    d = Decoder(profile,
                max_header_len=limits.get("max_header_len", 65536),
                max_body_len=limits.get("max_body_len", 64 * 1024 * 1024),
                offset=skip)
    frames = []
    state = {}

    def drain():
        if streaming:
            while True:
                ev = d.next_event()
                if ev is None or ev is END:
                    return ev
                t = type(ev)
                if t is Head:
                    state["head"] = ev
                    state["h"] = hashlib.sha256()
                    state["parts"] = []
                    state["n"] = 0
                elif t is BodyChunk:
                    state["h"].update(ev.data)
                    state["n"] += len(ev.data)
                    if state["n"] <= keep_bodies_upto:
                        state["parts"].append(ev.data)
                else:
                    head = state["head"]
                    assert state["n"] == head.body_len
                    body = (b"".join(state["parts"])
                            if state["n"] <= keep_bodies_upto else None)
                    frames.append((head.header, state["n"],
                                   state["h"].hexdigest(), body))
        else:
            while True:
                f = d.next_frame()
                if f is None or f is END:
                    return f
                b = f.body
                frames.append((f.header, len(b), hashlib.sha256(b).hexdigest(),
                               b if len(b) <= keep_bodies_upto else None))

    pos = 0
    try:
        for n in chunks:
            d.feed(data[pos:pos + n])
            pos += n
            if drain() is END:
                raise AssertionError("END before end of stream")
        assert pos == len(data), "plan does not cover the stream"
        d.feed_eof()
        r = drain()
        if r is not END:
            raise AssertionError("no END after end of stream")
        return Outcome(frames, None)
    except DecodeError as e:
        # stickiness (section 7): every later call reports the same error
        try:
            d.next_event()
        except DecodeError as e2:
            if e2 is not e:
                raise AssertionError("error not sticky")
        else:
            raise AssertionError("error not sticky")
        return Outcome(frames, e)


# -- comparison (README "Comparing outcomes") --------------------------------

def json_equal(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) or isinstance(b, (int, float)):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and a == b)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list)
                and len(a) == len(b)
                and all(json_equal(x, y) for x, y in zip(a, b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return (a.keys() == b.keys()
                and all(json_equal(a[k], b[k]) for k in a))
    return False


def match_expectation(outcome, exp):
    """Return None if the outcome matches a valid/invalid expectation,
    else a string saying why not."""
    if exp["result"] == "valid" and outcome.error is not None:
        return "expected valid, got error %r" % (outcome.error,)
    if exp["result"] == "invalid":
        if outcome.error is None:
            return "expected error %r, got a clean end" % (exp["error"],)
        want = exp["error"]
        got = outcome.error
        if got.code != want["code"] or got.offset != want["offset"]:
            return "expected %r, got %r" % (want, got.as_dict())
        if "missing" in want and got.missing != want["missing"]:
            return "expected %r, got %r" % (want, got.as_dict())
    if len(outcome.frames) != len(exp["frames"]):
        return "expected %d frames, got %d" % (len(exp["frames"]),
                                               len(outcome.frames))
    for i, (got, want) in enumerate(zip(outcome.frames, exp["frames"])):
        header, blen, sha, body = got
        if not json_equal(header, want["header"]):
            return "frame %d header %r != %r" % (i, header, want["header"])
        if list(header.keys()) != list(want["header"].keys()):
            return "frame %d member order %r != %r" % (
                i, list(header.keys()), list(want["header"].keys()))
        if blen != want["body_len"]:
            return "frame %d body_len %d != %d" % (i, blen, want["body_len"])
        if "body_hex" in want:
            if body is None or body.hex() != want["body_hex"]:
                return "frame %d body differs" % i
        elif sha != want["body_sha256"]:
            return "frame %d body sha256 differs" % i
    return None


def judge(outcome, expect):
    """Return (ok, alternative_index_or_None, reason)."""
    if expect["result"] == "acceptable":
        reasons = []
        for k, alt in enumerate(expect["alternatives"]):
            r = match_expectation(outcome, alt)
            if r is None:
                return True, k, None
            reasons.append(r)
        return False, None, "; ".join(reasons)
    r = match_expectation(outcome, expect)
    return r is None, None, r

