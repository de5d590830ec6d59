#!/usr/bin/env python3
"""A small LHP/1 application server (spec/lhp-app.md: put, get, stat, list,
exec, and echo), on the connection layer of the reference echo server
(conformance/controls/echo_reference.py: error frames, deadlines, `busy`).

    python3 app_server.py --root DIR [--allow-exec PROG ...] [--addr 127.0.0.1:0]
                          [--read-timeout-ms N ...]

The first line on stdout is `listening on HOST:PORT`. Refusals are request
error frames {"kind":"error"[,"id"],"code","message"} and the connection goes
on. Bodies are held in memory (this is a conformance sample, not a file
server), and exec output is sent when the program ends.
"""

import hashlib
import json
import os
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "controls"))

import echo_reference as ref  # noqa: E402

# spec/lhp-app.md 10.2 rules 3 and 6.
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
           "\u2066\u2067\u2068\u2069")
DEVICES = {"CON", "PRN", "AUX", "NUL"} | {"COM%d" % i for i in range(1, 10)} \
    | {"LPT%d" % i for i in range(1, 10)}
# spec/lhp-1.md 13.3: the members this server implements, per kind.
IMPLEMENTED = {
    "put": {"name", "offset", "replace", "file_sha256", "trailer"},
    "get": {"name", "offset", "trailer"},
    "stat": {"name"},
    "list": {"name"},
    "exec": {"argv"},
}
REGISTERED = {"kind", "id", "name", "sha256", "body_len", "v"}


def check_crit(kind, members):
    """spec/lhp-1.md 13.3: refuse a request whose `crit` this server cannot honour."""
    if "crit" not in members:
        return
    crit = members["crit"]
    if type(crit) is not list or not all(type(c) is str for c in crit):
        raise Refusal("bad_request", "crit must be an array of member names")
    for c in crit:
        if c in REGISTERED:
            raise Refusal("bad_request", "crit lists the registered member %r" % c)
        if c not in members:
            raise Refusal("bad_request", "crit lists %r, which the request lacks" % c)
        if c not in IMPLEMENTED.get(kind, set()):
            raise Refusal("bad_request", "crit member %r is not implemented" % c)

PARTIAL = ".lhp-partial-"
EXEC_LIMIT = 30.0


class Refusal(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def frame(profile, members, body=b""):
    if body or "body_len" in members:
        members = dict(members)
        members["body_len"] = len(body)
    return ref.frame_octets(profile, ref.header_text(members), body)


class AppServer(ref.Server):
    def __init__(self, addr, s, root, allow_exec):
        super().__init__(addr, s)
        self.root = os.path.realpath(root)
        self.allow_exec = set(allow_exec)
        self.uploads = set()
        self.uploads_lock = threading.Lock()

    def answer(self, head, body):
        members, text = head
        kind = members.get("kind")
        if kind == "echo":
            return ref.frame_octets(self.s.profile, text, body)
        rid = {"id": members["id"]} if "id" in members else {}
        handler = {"put": self.put, "get": self.get, "stat": self.stat,
                   "list": self.list, "exec": self.exec}.get(kind)
        try:
            if handler is None:
                raise Refusal("bad_request", "unknown kind %r" % (kind,))
            check_crit(kind, members)
            return handler(members, body, rid)
        except Refusal as r:
            reply = {"kind": "error"}
            reply.update(rid)
            reply["code"] = r.code
            reply["message"] = r.message
            return frame(self.s.profile, reply)
        except OSError as e:
            reply = {"kind": "error"}
            reply.update(rid)
            reply["code"] = "internal"
            reply["message"] = str(e)
            return frame(self.s.profile, reply)

    # -- names (spec/lhp-app.md 10.2) -------------------------------------

    def path(self, name, must_exist_dir=True):
        if not isinstance(name, str):
            raise Refusal("bad_request", "name must be a string")
        raw = name.encode("utf-8", "surrogatepass")
        if not name or len(raw) > 4096:
            raise Refusal("bad_name", "empty or too long")
        if name.startswith("/"):
            raise Refusal("bad_name", "absolute")
        if any(ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f or ch in BIDI
               for ch in name):
            raise Refusal("bad_name", "control or bidirectional character")
        if "\\" in name:
            raise Refusal("bad_name", "a backslash")
        parts = name.split("/")
        if ":" in parts[0]:
            raise Refusal("bad_name", "a ':' in the first component")
        for p in parts:
            if p in ("", ".", ".."):
                raise Refusal("bad_name", "empty, . or .. component")
            if p.split(".")[0].upper() in DEVICES:
                raise Refusal("bad_name", "a reserved device name")
            if len(p.encode()) > 255:
                raise Refusal("bad_name", "component too long")
            if p.startswith(PARTIAL):
                raise Refusal("bad_name", "reserved component")
        directory = os.path.join(self.root, *parts[:-1])
        if must_exist_dir and not os.path.isdir(directory):
            raise Refusal("not_found", "no such directory")
        real = os.path.realpath(directory)
        if real != self.root and not real.startswith(self.root + os.sep):
            raise Refusal("bad_name", "outside the root")
        full = os.path.join(real, parts[-1])
        if os.path.islink(full):
            raise Refusal("bad_name", "a symbolic link")
        if os.path.lexists(full) and not os.path.isfile(full):
            raise Refusal("bad_name", "not a regular file (10.2 rule 9)")
        return real, parts[-1], full

    @staticmethod
    def partial_name(last):
        return PARTIAL + hashlib.sha256(last.encode()).hexdigest()[:32]

    # -- messages ---------------------------------------------------------

    def put(self, m, body, rid):
        directory, last, full = self.path(m.get("name"))
        offset = m.get("offset", 0)
        if type(offset) is not int or offset < 0:
            raise Refusal("bad_request", "offset must be an integer >= 0")
        want = m.get("file_sha256")
        if want is None and offset == 0:
            want = m.get("sha256")
        if not isinstance(want, str):
            raise Refusal("bad_request", "no digest of the whole file")
        replace = m.get("replace", False) is True
        if os.path.lexists(full):
            if not os.path.isfile(full) or os.path.islink(full):
                raise Refusal("bad_name", "not a regular file")
            if not replace:
                raise Refusal("exists", "the name exists")
        with self.uploads_lock:
            if full in self.uploads:
                raise Refusal("in_use", "the name is being uploaded")
            self.uploads.add(full)
        try:
            part = os.path.join(directory, self.partial_name(last))
            mode = "r+b" if offset else "wb"
            if offset and (not os.path.exists(part)
                           or os.path.getsize(part) < offset):
                raise Refusal("bad_request", "no partial file that long")
            with open(part, mode) as f:
                f.truncate(offset)
                f.seek(offset)
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            with open(part, "rb") as f:
                data = f.read()
            have = hashlib.sha256(data).hexdigest()
            if have != want:
                os.unlink(part)
                raise Refusal("file_digest_mismatch", "whole-file digest")
            try:
                if replace:
                    os.rename(part, full)
                else:
                    os.link(part, full)
                    os.unlink(part)
            except FileExistsError:
                os.unlink(part)
                raise Refusal("exists", "the name appeared meanwhile")
            reply = {"kind": "ok"}
            reply.update(rid)
            reply.update({"name": m["name"], "size": len(data),
                          "file_sha256": have})
            return frame(self.s.profile, reply)
        finally:
            with self.uploads_lock:
                self.uploads.discard(full)

    def get(self, m, body, rid):
        _, _, full = self.path(m.get("name"))
        if not os.path.isfile(full):
            raise Refusal("not_found", "no such file")
        offset = m.get("offset", 0)
        with open(full, "rb") as f:
            data = f.read()
        if type(offset) is not int or offset < 0 or offset > len(data):
            raise Refusal("bad_request", "impossible offset")
        reply = {"kind": "file"}
        reply.update(rid)
        reply.update({"name": m["name"], "size": len(data), "offset": offset,
                      "file_sha256": hashlib.sha256(data).hexdigest()})
        if offset == 0:
            reply["sha256"] = reply["file_sha256"]
        return frame(self.s.profile, reply, data[offset:])

    def stat(self, m, body, rid):
        directory, last, full = self.path(m.get("name"))
        part = os.path.join(directory, self.partial_name(last))
        reply = {"kind": "ok"}
        reply.update(rid)
        reply.update({
            "name": m["name"],
            "size": os.path.getsize(full) if os.path.isfile(full) else None,
            "partial": os.path.getsize(part) if os.path.isfile(part) else 0})
        return frame(self.s.profile, reply)

    def list(self, m, body, rid):
        entries = []
        for d, dirs, files in os.walk(self.root):
            dirs[:] = [x for x in dirs
                       if not os.path.islink(os.path.join(d, x))]
            for name in files:
                p = os.path.join(d, name)
                if name.startswith(PARTIAL) or os.path.islink(p) \
                        or not os.path.isfile(p):
                    continue
                rel = os.path.relpath(p, self.root).replace(os.sep, "/")
                entries.append({"name": rel, "size": os.path.getsize(p)})
        entries.sort(key=lambda e: e["name"].encode())
        reply = {"kind": "listing"}
        reply.update(rid)
        reply.update({"count": len(entries), "truncated": False,
                      "body_len": 0})
        return frame(self.s.profile, reply, ref.header_text(entries))

    def exec(self, m, body, rid):
        argv = m.get("argv")
        if not isinstance(argv, list) or not argv \
                or not all(isinstance(a, str) for a in argv):
            raise Refusal("bad_request", "argv must be a non-empty array of "
                                         "strings")
        if argv[0] not in self.allow_exec:
            raise Refusal("exec_denied", "not an allowed program")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE,
                                 start_new_session=True)
        except FileNotFoundError:
            raise Refusal("not_found", "no such program")
        timed_out = False
        try:
            out, err = p.communicate(timeout=EXEC_LIMIT)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, 9)
            out, err = p.communicate()
        frames = []
        for stream, data in (("stdout", out), ("stderr", err)):
            for i in range(0, len(data), 65536):
                h = {"kind": "output"}
                h.update(rid)
                h.update({"stream": stream, "body_len": 0})
                frames.append(frame(self.s.profile, h, data[i:i + 65536]))
        code = p.returncode
        h = {"kind": "exit"}
        h.update(rid)
        h.update({"code": code if code >= 0 else None,
                  "signal": -code if code < 0 else None,
                  "timed_out": timed_out})
        frames.append(frame(self.s.profile, h))
        return b"".join(frames)


def main(argv=None):
    ap = ref.argument_parser(__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--allow-exec", action="append", default=[])
    a = ap.parse_args(argv)
    allow = [p for x in a.allow_exec for p in x.split(",") if p]
    srv = AppServer(a.addr, ref.Settings(a), a.root, allow)
    print("listening on %s" % srv.addr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
