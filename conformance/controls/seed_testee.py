#!/usr/bin/env python3
"""Negative control: the seeds' receiver as a --stdio testee (spec/conformance.md section 6).

It decodes the way the tutorials in /work/shared/seeds do:

    header = conn.recv(4)
    dic_len = struct.unpack('i', header)[0]          # native (little-endian), signed
    real_dic = json.loads(conn.recv(dic_len).decode('utf-8'))
    while recv_size < file_size: data = conn.recv(...)

taking recv(4) and recv(dic_len) as complete, with no limits. Each chunk of the harness's plan
plays the part of what one recv could return. It offers only the seed-compat profile (its
length prefix is native signed little-endian). The harness must fail it on split plans.
Python 3 standard library only.
"""
import hashlib
import json
import struct
import sys

INP = sys.stdin.buffer
OUT = sys.stdout.buffer


def read_exact(n):
    data = b""
    while len(data) < n:
        more = INP.read(n - len(data))
        if not more:
            return None
        data += more
    return data


def send(obj):
    h = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    OUT.write(struct.pack(">I", len(h)) + h)
    OUT.flush()


class Conn:
    """A socket whose recv() returns at most what is left of the current chunk."""

    def __init__(self, body, chunks):
        self.body, self.chunks, self.pos, self.pending = body, iter(chunks), 0, b""

    def recv(self, n):
        if not self.pending:
            size = next(self.chunks, 0)
            self.pending = self.body[self.pos:self.pos + size]
            self.pos += size
        data, self.pending = self.pending[:n], self.pending[n:]
        return data


def seed_decode(body, chunks, skip):
    conn = Conn(body, chunks)
    frames, consumed = [], 0
    try:
        while True:
            header = conn.recv(4)
            if not header:
                return frames, None
            dic_len = struct.unpack("i", header)[0]
            consumed += 4
            real_dic = json.loads(conn.recv(dic_len).decode("utf-8"))
            consumed += dic_len
            size = real_dic.get("file_size") or real_dic.get("total_size") or real_dic.get("body_len") or 0
            data = b""
            while len(data) < size:
                more = conn.recv(min(1024, size - len(data)))
                if not more:
                    return frames, {"code": "unexpected_eof", "offset": skip + consumed + len(data),
                                    "missing": size - len(data)}
                data += more
            consumed += size
            frames.append({"header": real_dic, "body_len": len(data),
                           "body_sha256": hashlib.sha256(data).hexdigest()})
    except Exception as e:  # what the seeds do: the connection handler dies
        sys.stderr.write("seed receiver failed: %r\n" % (e,))
        return frames, {"code": "seed_exception", "offset": skip + consumed, "missing": None}


def main():
    while True:
        prefix = read_exact(4)
        if prefix is None:
            return
        req = json.loads(read_exact(struct.unpack(">I", prefix)[0]).decode("utf-8"))
        body = read_exact(req.get("body_len", 0)) or b""
        if req["kind"] == "probe":
            send({"kind": "capabilities", "name": "seed receiver (negative control)",
                  "profiles": ["seed-compat"], "features": []})
            continue
        chunks = []
        for c in req["chunks"]:
            chunks += [c[0]] * c[1] if isinstance(c, list) else [c]
        frames, error = seed_decode(body, chunks, req.get("skip_bytes", 0))
        send({"kind": "result", "id": req["id"], "frames": frames, "error": error})


if __name__ == "__main__":
    main()
