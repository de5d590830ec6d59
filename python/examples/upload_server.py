#!/usr/bin/env python3
"""File server: the seeds' upload server (seed 000), done with lhp.

    python3 upload_server.py --root DIR [--addr 127.0.0.1:7000] [--profile seed-compat]

Speaks spec/lhp-app.md `put` (without resume) and `get`, so `lhp put` and
`lhp get` work against it.  Unlike the seed it refuses names that leave DIR,
never shows a half-written file (the body goes to a hidden partial file,
verified against `sha256`, then linked into place), and serves many clients
at once.  With --profile seed-compat it also stores the seeds' own upload
({"file_name":..,"file_size":n} + n octets, spec/lhp-app.md 10.9).
The first line on stdout is "listening on HOST:PORT".
"""
import argparse
import hashlib
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from lhp.server import FrameHandler, FrameServer  # noqa: E402


class Refused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def resolve(root, name):
    """spec/lhp-app.md 10.2: the path for `name` under `root`, or Refused."""
    if not isinstance(name, str) or not name or len(name.encode()) > 4096 or name.startswith("/"):
        raise Refused("bad_name", "empty, too long or absolute name")
    parts = name.split("/")
    for p in parts:
        if p in ("", ".", "..") or len(p.encode()) > 255 or p.startswith(".lhp-partial-") \
                or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in p):
            raise Refused("bad_name", "bad name component %r" % p)
    top = os.path.realpath(root)
    d = os.path.realpath(os.path.join(top, *parts[:-1]))
    if d != top and not d.startswith(top + os.sep):
        raise Refused("bad_name", "the name leads outside the root")
    if not os.path.isdir(d):
        raise Refused("not_found", "no such directory")
    path = os.path.join(d, parts[-1])
    if os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path)):
        raise Refused("bad_name", "not a regular file")
    return path


class Discard:
    def write(self, data):
        pass


class HashingFile:
    """Writes to a file and hashes what it wrote.  With `trailer`, the body's
    last 32 octets are the whole file's sha256 (spec/lhp-app.md 10.3): they
    are held back, never written, and compared at the end."""
    def __init__(self, path, trailer=False):
        self.file, self.sha256 = open(path, "wb"), hashlib.sha256()
        self.held = b"" if trailer else None

    def write(self, data):
        if self.held is not None:
            data = self.held + bytes(data)
            data, self.held = data[:-32], data[-32:]
        self.sha256.update(data)
        self.file.write(data)

    def trailer_matches(self):
        return self.held is None or self.held == self.sha256.digest()


class FileHandler(FrameHandler):
    def body_sink(self, header):
        self.upload = None
        kind = header.get("kind")
        if kind != "put" and not (kind is None and "file_name" in header):
            return Discard() if header.get("body_len") else None  # no other kind has a body
        try:
            self.upload = self.start_upload(header, kind is None)
            return self.upload["file"]
        except Refused as r:
            self.upload = r
            return Discard()

    def start_upload(self, header, seed):
        name = header.get("file_name" if seed else "name")
        path = resolve(self.server.root, name)
        trailer = header.get("trailer")
        if trailer not in (None, "file_sha256") or (trailer and header.get("body_len", 0) < 32):
            raise Refused("bad_request", "trailer must be \"file_sha256\" with 32 octets")
        if not seed and "sha256" not in header and trailer is None:
            raise Refused("bad_request", "put needs sha256 or a digest trailer "
                                         "(resume is not supported here)")
        if not seed and os.path.exists(path) and not header.get("replace"):
            raise Refused("exists", "%s exists" % name)
        with self.server.lock:
            if path in self.server.uploading:
                raise Refused("in_use", "%s is being uploaded" % name)
            self.server.uploading.add(path)
        tag = hashlib.sha256(os.path.basename(path).encode()).hexdigest()[:32]
        partial = os.path.join(os.path.dirname(path), ".lhp-partial-" + tag)
        return {"name": name, "path": path, "partial": partial,
                "file": HashingFile(partial, trailer is not None),
                "replace": seed or header.get("replace")}

    def finish_upload(self, up, keep):
        f = up["file"].file
        try:
            if keep and not up["file"].trailer_matches():
                raise Refused("file_digest_mismatch",
                              "%s does not have the digest in its trailer" % up["name"])
            if keep:
                f.flush()
                os.fsync(f.fileno())
                f.close()
                if up["replace"]:
                    os.replace(up["partial"], up["path"])
                else:
                    os.link(up["partial"], up["path"])  # fails if the name appeared meanwhile
                return os.path.getsize(up["path"]), up["file"].sha256.hexdigest()
        finally:
            f.close()
            if os.path.exists(up["partial"]):
                os.unlink(up["partial"])
            with self.server.lock:
                self.server.uploading.discard(up["path"])

    def body_failed(self, header, sink, error):
        if isinstance(self.upload, dict):
            self.finish_upload(self.upload, keep=False)

    def handle_frame(self, header, body):
        kind = header.get("kind")
        try:
            if isinstance(self.upload, Refused):
                raise self.upload
            if kind == "put" or (kind is None and self.upload):
                try:
                    size, digest = self.finish_upload(self.upload, keep=True)
                except FileExistsError:
                    raise Refused("exists", "%s exists" % self.upload["name"])
                if kind == "put":                 # the seeds' client reads no reply
                    self.send(reply(header, "ok", name=header["name"], size=size,
                                    file_sha256=digest))
            elif kind == "get":
                self.send_file(header)
            else:
                raise Refused("bad_request", "unknown kind %r" % (kind,))
        except Refused as r:
            self.refuse(r.code, str(r), header)

    def send_file(self, header):
        if header.get("offset", 0) != 0:
            raise Refused("bad_request", "resume is not supported here")
        path = resolve(self.server.root, header.get("name"))
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise Refused("not_found", "no such file")
        with f:
            digest = hashlib.sha256()
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
            size = f.tell()
            f.seek(0)
            d = digest.hexdigest()
            self.send_stream(reply(header, "file", name=header["name"], size=size, offset=0,
                                   file_sha256=d, sha256=d), size, f)


def reply(request, kind, **members):
    """A reply header: kind, the request's id if it had one, then members."""
    h = {"kind": kind}
    if "id" in request:
        h["id"] = request["id"]
    h.update(members)
    return h


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--addr", default="127.0.0.1:7000")
    ap.add_argument("--profile", default="lhp1", choices=("lhp1", "seed-compat"))
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    with FrameServer((host, int(port)), FileHandler, profile=a.profile,
                     max_body_len=2 ** 53 - 1) as srv:
        srv.root, srv.lock, srv.uploading = a.root, threading.Lock(), set()
        print("listening on %s" % srv.address, flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
