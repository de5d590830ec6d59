#!/usr/bin/env python3
"""Negative control: the seeds' echo server (spec/conformance.md section 6).

    python3 seed_server.py [--addr 127.0.0.1:0]

Prints `listening on HOST:PORT` first. Each connection is handled the way the tutorials in
/work/shared/seeds do it:

    header = conn.recv(4)
    dic_len = struct.unpack('i', header)[0]          # native (little-endian), signed
    real_dic = json.loads(conn.recv(dic_len).decode('utf-8'))
    while recv_size < body_len: data = conn.recv(...)

recv(4) and recv(dic_len) are taken as complete, the length is native signed, and nothing is
limited. To be usable as an "LHP echo server" at all, the prefix it *writes* is big-endian,
and it reads the prefix big-endian signed too (struct '>i'): otherwise it would fail every
case and prove nothing interesting. The harness in --server mode must still fail it: on split
plans (recv(n) is not complete) and on the limit cases (it waits for a 1 GiB header instead
of rejecting it). It never sends error frames: the connection handler just dies.
Python 3 standard library only.
"""
import argparse
import json
import socket
import struct
import sys
import threading


def handle(conn):
    try:
        while True:
            header = conn.recv(4)
            if not header:
                return
            dic_len = struct.unpack(">i", header)[0]  # raises on a short read, like the seeds
            real_dic = json.loads(conn.recv(dic_len).decode("utf-8"))
            size = real_dic.get("body_len") or 0
            data = b""
            while len(data) < size:
                more = conn.recv(min(1024, size - len(data)))
                if not more:
                    return
                data += more
            if real_dic.get("kind") == "echo":
                h = json.dumps(real_dic, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                conn.sendall(struct.pack(">i", len(h)) + h + data)
    except Exception as e:  # what the seeds do: the handler dies, the connection closes
        sys.stderr.write("seed server: %r\n" % (e,))
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description="the seeds' echo server (negative control)")
    ap.add_argument("--addr", default="127.0.0.1:0")
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(64)
    print("listening on %s:%d" % srv.getsockname(), flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
