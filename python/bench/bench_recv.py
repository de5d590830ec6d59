#!/usr/bin/env python3
"""Receive-path benchmark: the package's recv_frame against the seeds' naive
struct + json loop, over loopback TCP, side by side in one run.

    python3 python/bench/bench_recv.py [--runs 5] [--small 200000] [--large 100]

A separate sender process writes pre-encoded frames as fast as it can; the
receiver under test reads until the sender closes.  Workloads: small frames
(a 39-octet header and a 32-octet body) and 1 MiB bodies.  Receivers:

- ``seed``: the seeds' loop (recv(4), struct.unpack, recv(H), json.loads,
  then recv(1024) and ``+=`` until the body is complete), with one fix it
  needs to finish at all: a loop around short reads of the prefix and the
  header (as written it fails on the first short read; the "seed as
  written" line reports after how many frames);
- ``naive``: that loop with the obvious fixes for speed (recv(65536), a
  list joined at the end) -- still no validation and no limits;
- ``lhp``: ``lhp.recv_frame`` (buffered recv_into, every header fully
  validated, limits checked, body in a bytearray);
- ``lhp-file``: ``recv_frame(sock, out=sink)``, the body streamed to a
  writer that discards it (large bodies only);
- ``raw``: recv_into a 1 MiB buffer, no parsing at all (the ceiling).

Reports the median, min and max of the runs (frames/s and GB/s of body,
wall clock), each receiver's median as a ratio of ``naive``'s, and frames per
CPU-second of the receiving process (``time.process_time``: what the receive
path costs, less sensitive to other load on the machine than wall time).
"""
import argparse
import json
import multiprocessing
import os
import socket
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from lhp import recv_frame  # noqa: E402
from lhp.codec import encode_frame  # noqa: E402

SMALL_BODY = b"0123456789abcdef0123456789abcdef"


def small_batch(n):
    return b"".join(encode_frame({"kind": "echo", "id": i % 100000}, SMALL_BODY)
                    for i in range(n))


def sender(port, kind, count):
    s = socket.create_connection(("127.0.0.1", port))
    if kind == "small":
        batch = small_batch(1000)
        for _ in range(count // 1000):
            s.sendall(batch)
    else:
        frame = encode_frame({"kind": "echo"}, b"\xab" * (1 << 20))
        mv = memoryview(frame)
        for _ in range(count):
            s.sendall(mv)
    s.close()


def recv_exactly(conn, n):
    """The loop the seeds leave out: recv(n) may return fewer octets."""
    data = conn.recv(n)
    while 0 < len(data) < n:
        more = conn.recv(n - len(data))
        if not more:
            break
        data += more
    return data


def recv_seed_literal(conn):
    """The seeds' loop exactly as written; returns (frames, body) or raises
    on the first short read of a prefix or header."""
    frames = body = 0
    while True:
        header = conn.recv(4)
        if len(header) == 0:
            break
        dic_len = struct.unpack(">I", header)[0]
        real_dic = json.loads(conn.recv(dic_len).decode("utf-8"))
        size = real_dic.get("body_len", 0)
        recv_size, recv_data = 0, b""
        while recv_size < size:
            res = conn.recv(min(1024, size - recv_size))
            recv_data += res
            recv_size += len(res)
        frames += 1
        body += len(recv_data)
    return frames, body


def recv_seed(conn):
    frames = body = 0
    while True:
        header = recv_exactly(conn, 4)
        if len(header) == 0:
            break
        dic_len = struct.unpack(">I", header)[0]
        real_dic = json.loads(recv_exactly(conn, dic_len).decode("utf-8"))
        size = real_dic.get("body_len", 0)
        recv_size, recv_data = 0, b""
        while recv_size < size:
            res = conn.recv(min(1024, size - recv_size))
            recv_data += res
            recv_size += len(res)
        frames += 1
        body += len(recv_data)
    return frames, body


def recv_naive(conn):
    frames = body = 0
    while True:
        header = recv_exactly(conn, 4)
        if len(header) == 0:
            break
        dic_len = struct.unpack(">I", header)[0]
        real_dic = json.loads(recv_exactly(conn, dic_len))
        size = real_dic.get("body_len", 0)
        parts, recv_size = [], 0
        while recv_size < size:
            res = conn.recv(min(65536, size - recv_size))
            parts.append(res)
            recv_size += len(res)
        data = b"".join(parts)
        frames += 1
        body += len(data)
    return frames, body


def recv_lhp(conn):
    frames = body = 0
    while True:
        f = recv_frame(conn)
        if f is None:
            return frames, body
        frames += 1
        body += len(f.body)


class Discard:
    def write(self, data):
        pass


def recv_lhp_file(conn):
    frames = body = 0
    sink = Discard()
    while True:
        f = recv_frame(conn, out=sink)
        if f is None:
            return frames, body
        frames += 1
        body += f.header["body_len"]


def recv_raw(conn):
    buf = bytearray(1 << 20)
    n = 0
    while True:
        k = conn.recv_into(buf)
        if not k:
            return None, n
        n += k


RECEIVERS = {"seed-literal": recv_seed_literal, "seed": recv_seed, "naive": recv_naive, "lhp": recv_lhp,
             "lhp-file": recv_lhp_file, "raw": recv_raw}


def one_run(receiver, kind, count):
    ctx = multiprocessing.get_context("fork")
    with socket.create_server(("127.0.0.1", 0)) as lst:
        p = ctx.Process(target=sender, args=(lst.getsockname()[1], kind, count))
        p.start()
        conn, _ = lst.accept()
    with conn:
        t0, c0 = time.perf_counter(), time.process_time()
        frames, body = RECEIVERS[receiver](conn)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    p.join()
    if frames is not None and frames != count:
        raise SystemExit("%s received %d frames of %d" % (receiver, frames, count))
    return count / dt, body / dt / 1e9, count / max(cpu, 1e-9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--small", type=int, default=200000, help="small frames per run")
    ap.add_argument("--large", type=int, default=100, help="1 MiB frames per run")
    a = ap.parse_args()
    plan = [("small", a.small, ["seed", "naive", "lhp"]),
            ("1MiB", a.large, ["seed", "naive", "lhp", "lhp-file", "raw"])]
    print("python %s, %d runs, receivers interleaved" % (sys.version.split()[0], a.runs))
    try:
        one_run("seed-literal", "small", a.small)
        print("seed as written: received all %d small frames" % a.small)
    except Exception as e:  # noqa: BLE001 - reporting how the seed's loop fails
        print("seed as written: failed on small frames: %s: %s" % (type(e).__name__, e))
    for kind, count, receivers in plan:
        res = {r: [] for r in receivers}
        for _ in range(a.runs):
            for r in receivers:
                res[r].append(one_run(r, "small" if kind == "small" else "large", count))
        base = statistics.median(x[0] for x in res["naive"])
        print("\n%s frames (%d per run)" % (kind, count))
        cbase = statistics.median(x[2] for x in res["naive"])
        print("%-9s %14s %22s %9s %22s %16s %9s" % (
            "receiver", "frames/s med", "(min .. max)", "vs naive", "GB/s med (min..max)",
            "frames/CPU-s med", "vs naive"))
        for r in receivers:
            fps = [x[0] for x in res[r]]
            gbs = [x[1] for x in res[r]]
            cps = [x[2] for x in res[r]]
            print("%-9s %14.0f %22s %8.2fx %22s %16.0f %8.2fx" % (
                r, statistics.median(fps), "(%.0f .. %.0f)" % (min(fps), max(fps)),
                statistics.median(fps) / base,
                "%.3f (%.3f..%.3f)" % (statistics.median(gbs), min(gbs), max(gbs)),
                statistics.median(cps), statistics.median(cps) / cbase))


if __name__ == "__main__":
    main()
