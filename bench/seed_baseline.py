#!/usr/bin/env python3
"""The seeds' framing in Python, done correctly: the Python baseline of docs/performance.md.

Each frame is what the seed tutorials send: struct.pack('i', len(header)) (4 octets), a JSON
header (json.dumps, about 80 octets here) and the body (100 octets). Unlike the tutorials, the
receiver uses a correct recv loop (recv until exactly n octets arrived), so TCP may split or
join the writes however it likes. The sender writes each frame with one sendall (the tutorials
use three send calls, which would only make Python slower).

Run alone:  python3 bench/seed_baseline.py --frames 100000 --runs 5
It starts the server as a second python3 process (so the two sides do not share one GIL),
times, for each run, one connection streaming --frames frames until the server has parsed
them all and acknowledged, and prints one JSON line:
  {"impl": "python-seed", "frames": N, "body": 100, "header": 80, "frames_per_s": [..]}
lhp-bench runs it as a subprocess and parses that line.
"""

import argparse
import json
import socket
import struct
import subprocess
import sys
import time


def recv_exact(conn, n):
    """The correct recv loop the seeds lack: returns exactly n octets, or None at EOF."""
    chunks = []
    while n > 0:
        chunk = conn.recv(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def serve():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    print(server.getsockname()[1], flush=True)
    while True:
        conn, _ = server.accept()
        frames = 0
        body_octets = 0
        with conn:
            while True:
                prefix = recv_exact(conn, 4)
                if prefix is None:
                    break
                (header_len,) = struct.unpack("i", prefix)
                header = json.loads(recv_exact(conn, header_len).decode("utf-8"))
                if header.get("kind") == "stop":
                    conn.sendall(struct.pack("!QQ", frames, body_octets))
                    break
                body = recv_exact(conn, header["file_size"])
                frames += 1
                body_octets += len(body)
        if frames == 0:
            return


def header_bytes(i, body_len):
    # About 80 octets, like the Rust workloads' header.
    header = {"kind": "upload", "id": i, "file_name": "sensor-42/t.bin",
              "file_size": body_len}
    return json.dumps(header).encode("utf-8")


def run_client(port, frames, body):
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.perf_counter()
    for i in range(frames):
        hb = header_bytes(100000 + i, len(body))
        conn.sendall(struct.pack("i", len(hb)) + hb + body)
    stop = json.dumps({"kind": "stop"}).encode("utf-8")
    conn.sendall(struct.pack("i", len(stop)) + stop)
    got, octets = struct.unpack("!QQ", recv_exact(conn, 16))
    elapsed = time.perf_counter() - start
    conn.close()
    if got != frames or octets != frames * len(body):
        raise SystemExit(f"server parsed {got} frames, {octets} octets; sent {frames}")
    return frames / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--body", type=int, default=100)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE,
                              text=True)
    try:
        port = int(server.stdout.readline())
        body = b"x" * args.body
        rates = [run_client(port, args.frames, body) for _ in range(args.runs)]
        # An empty connection tells the server to exit.
        socket.create_connection(("127.0.0.1", port)).close()
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    print(json.dumps({"impl": "python-seed", "frames": args.frames, "body": args.body,
                      "header": len(header_bytes(100000, args.body)),
                      "frames_per_s": rates}))


if __name__ == "__main__":
    main()
