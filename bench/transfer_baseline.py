#!/usr/bin/env python3
"""File transfer in the seeds' style with sha256: the Python baseline of `lhp put`/`lhp get`.

Every frame is what the seed tutorials send: struct.pack('i', len(header)) (4 octets), a JSON
header (json.dumps), then the body. Done correctly and with the integrity `lhp` gives:

  put:  client -> {"file_name": N, "file_size": S, "sha256": D} + S octets
        (the sender hashes the file first: the digest goes in the header, before the body)
        server: streams the body into a hidden file while hashing it, fsyncs it, compares the
        digest, renames it into place, fsyncs the directory, then answers {"ok": true, ...}
  get:  client -> {"get": N}
        server -> {"file_name": N, "file_size": S, "sha256": D} + S octets (hashed first)
        client: streams the body into a hidden file while hashing it, fsyncs, compares,
        renames it into place

Reads and writes use 1 MiB buffers (recv_into a reused buffer), as a careful Python
programmer would; only the standard library.

    python3 bench/transfer_baseline.py serve --root DIR       # prints its port, serves forever
    python3 bench/transfer_baseline.py put --port P --file F --name N
    python3 bench/transfer_baseline.py get --port P --name N --out F

lhp-bench --transfer runs these as subprocesses and times the client process.
"""

import argparse
import hashlib
import json
import os
import socket
import struct
import sys

CHUNK = 1 << 20


def recv_exact(conn, n):
    """Exactly n octets, or None at EOF."""
    chunks = []
    while n > 0:
        chunk = conn.recv(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def send_frame(conn, header, body=b""):
    hb = json.dumps(header).encode("utf-8")
    conn.sendall(struct.pack("i", len(hb)) + hb + body)


def recv_header(conn):
    prefix = recv_exact(conn, 4)
    if prefix is None:
        return None
    (n,) = struct.unpack("i", prefix)
    return json.loads(recv_exact(conn, n).decode("utf-8"))


def file_sha256(path):
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def send_file(conn, path, size):
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        left = size
        while left:
            n = f.readinto(view[: min(CHUNK, left)])
            if not n:
                raise IOError("file shrank")
            conn.sendall(view[:n])
            left -= n


def receive_file(conn, path, size):
    """Streams size octets into path while hashing; fsyncs; returns the hex digest."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "wb", buffering=0) as f:
        left = size
        while left:
            n = conn.recv_into(view[: min(CHUNK, left)])
            if not n:
                raise IOError("connection closed mid-body")
            h.update(view[:n])
            f.write(view[:n])
            left -= n
        os.fsync(f.fileno())
    return h.hexdigest()


def fsync_dir(path):
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def serve(root):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    print(server.getsockname()[1], flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            header = recv_header(conn)
            if header is None:
                continue
            if "get" in header:
                path = os.path.join(root, os.path.basename(header["get"]))
                size = os.path.getsize(path)
                digest = file_sha256(path)
                send_frame(conn, {"file_name": header["get"], "file_size": size,
                                  "sha256": digest})
                send_file(conn, path, size)
                continue
            name = os.path.basename(header["file_name"])
            hidden = os.path.join(root, "." + name + ".partial")
            digest = receive_file(conn, hidden, header["file_size"])
            if digest != header["sha256"]:
                os.unlink(hidden)
                send_frame(conn, {"ok": False, "error": "digest mismatch"})
                continue
            os.replace(hidden, os.path.join(root, name))
            fsync_dir(hidden)
            send_frame(conn, {"ok": True, "file_size": header["file_size"], "sha256": digest})


def put(port, path, name):
    size = os.path.getsize(path)
    digest = file_sha256(path)
    conn = socket.create_connection(("127.0.0.1", port))
    with conn:
        send_frame(conn, {"file_name": name, "file_size": size, "sha256": digest})
        send_file(conn, path, size)
        reply = recv_header(conn)
    if not reply or not reply.get("ok") or reply.get("sha256") != digest:
        sys.exit("put failed: %r" % (reply,))


def get(port, name, out):
    conn = socket.create_connection(("127.0.0.1", port))
    with conn:
        send_frame(conn, {"get": name})
        header = recv_header(conn)
        hidden = os.path.join(os.path.dirname(os.path.abspath(out)),
                              "." + os.path.basename(out) + ".partial")
        digest = receive_file(conn, hidden, header["file_size"])
    if digest != header["sha256"]:
        os.unlink(hidden)
        sys.exit("get failed: digest mismatch")
    os.replace(hidden, out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--root", required=True)
    s = sub.add_parser("put")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--file", required=True)
    s.add_argument("--name", required=True)
    s = sub.add_parser("get")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--out", required=True)
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a.root)
    elif a.cmd == "put":
        put(a.port, a.file, a.name)
    else:
        get(a.port, a.name, a.out)


if __name__ == "__main__":
    main()
