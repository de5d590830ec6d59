#!/usr/bin/env python3
"""File client: the seeds' upload client (seed 000), done with lhp.

    python3 upload_client.py put FILE [--as NAME] [--replace] [--addr HOST:PORT]
    python3 upload_client.py get NAME -o PATH [--addr HOST:PORT]

Works against `lhp serve --root DIR` and upload_server.py.  The upload carries
the file's sha256 (the server verifies it before the name appears); the
download is verified against the server's sha256 before PATH appears.
"""
import argparse
import hashlib
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from lhp import DecodeError, PeerError, raise_for_error, recv_frame, send_frame, send_stream  # noqa: E402


def put(sock, path, name, replace):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
        size = f.tell()
        f.seek(0)
        header = {"kind": "put", "id": 1, "name": name, "sha256": digest.hexdigest()}
        if replace:
            header["replace"] = True
        send_stream(sock, header, size, f)            # adds body_len
    reply = raise_for_error(recv_frame(sock).header)  # PeerError if refused
    print("put %s: %d octets, sha256 %s" % (reply["name"], reply["size"], reply["file_sha256"]))


def get(sock, name, path):
    send_frame(sock, {"kind": "get", "id": 2, "name": name})
    partial = path + ".part"
    try:
        with open(partial, "wb") as f:     # the body goes to the file as it arrives
            frame = recv_frame(sock, out=f, max_body_len=2 ** 53 - 1)
        if frame is None:
            sys.exit("the server closed the connection")
        raise_for_error(frame.header)      # PeerError if refused
        # recv_frame verified the body against the header's sha256
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    print("get %s -> %s: %d octets" % (name, path, frame.header["size"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("put", "get"))
    ap.add_argument("target", help="FILE to put, or NAME to get")
    ap.add_argument("--as", dest="name")
    ap.add_argument("-o", "--output")
    ap.add_argument("--replace", action="store_true")
    ap.add_argument("--addr", default="127.0.0.1:7000")
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        if a.command == "put":
            put(sock, a.target, a.name or os.path.basename(a.target), a.replace)
        else:
            get(sock, a.target, a.output or os.path.basename(a.target))


if __name__ == "__main__":
    try:
        main()
    except (PeerError, DecodeError) as e:     # a refusal, or a peer that broke the protocol
        sys.exit("%s: %s" % (os.path.basename(sys.argv[0]), e))
