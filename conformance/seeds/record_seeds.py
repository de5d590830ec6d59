#!/usr/bin/env python3
"""Runs the seeds' own socket programs (shared/seeds/000 and 002), adapted only to loopback,
non-interactive input and a safe command list, and records what their peer received: the
octets, and the sizes of the reads as the kernel delivered them. Each recording becomes a
test vector (spec/vectors/README.md format, plus a "reads" member) in conformance/recorded/.

The sending code below is the seeds' code: struct.pack('i', ...), json.dumps(...) with its
default separators and ensure_ascii, one send() per piece, a send() per file line.

    python3 conformance/seeds/record_seeds.py        # rewrites conformance/recorded/*.json
"""

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "recorded")


def recorder():
    """A listening socket that records every recv() until the peer closes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    result = {}

    def run():
        conn, _ = srv.accept()
        data, reads = bytearray(), []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
            reads.append(len(chunk))
        result["data"], result["reads"] = bytes(data), reads
        conn.close()
        srv.close()

    t = threading.Thread(target=run)
    t.start()
    return srv.getsockname(), t, result


def frame_expect(header, body):
    f = {"header": header, "body_len": len(body)}
    if len(body) > 4096:
        f["body_sha256"] = hashlib.sha256(body).hexdigest()
    else:
        f["body_hex"] = body.hex()
    return f


def seed_000_upload(addr, path, file_name):
    """Seed 000, the upload client, verbatim but for the address and paths."""
    client = socket.socket()
    client.connect(addr)
    file_size = os.path.getsize(path)
    data_dic = {"file_name": file_name, "file_size": file_size}
    header_json = json.dumps(data_dic)
    header_bytes = header_json.encode("utf-8")
    header = struct.pack("i", len(header_bytes))
    client.send(header)
    client.send(header_bytes)
    with open(path, "rb") as f:
        for line in f:
            client.send(line)
    client.close()
    return data_dic


def seed_002_command_reply(conn, argv):
    """Seed 002, the remote-command server's reply, verbatim but for running a fixed argv
    without a shell (the seed's shell=True on network input is the bug LHP's exec fixes)."""
    res_obj = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    res1 = res_obj.stdout.read()
    res2 = res_obj.stderr.read()
    res_obj.wait()
    header = len(res1 + res2)
    header_dic = {"file_name": "a.txt", "total_size": header, "md5": "hih1jk5jk151jk51"}
    header_bytes = json.dumps(header_dic)
    conn.send(struct.pack("i", len(header_bytes)))
    conn.send(header_bytes.encode("utf-8"))
    conn.send(res1)
    conn.send(res2)
    return header_dic, res1 + res2


def seed_002_ftp_get(conn, file_name):
    """Seed 002, the FTP server's get(): a bare file size, then one frame per line."""
    header_dic = {"file_name": file_name, "file_size": 0, "md5": None}
    conn.send(struct.pack("i", os.path.getsize(file_name)))
    sent = []
    with open(file_name, "rb") as r_f:
        for line in r_f:
            header_dic["file_size"] = len(line)
            mm = hashlib.md5()
            mm.update(line)
            header_dic["md5"] = mm.hexdigest()
            header_json = json.dumps(header_dic)
            header_bytes = header_json.encode("utf-8")
            conn.send(struct.pack("i", len(header_bytes)))
            conn.send(header_bytes)
            conn.send(line)
            sent.append((dict(header_dic), line))
            time.sleep(0.001)
    return sent


def vector(vid, description, data, reads, frames, skip=0):
    return {
        "id": vid,
        "spec": "3.3",
        "description": description,
        "profile": "seed-compat",
        "tier": "required",
        "skip_bytes": skip,
        "input": {"hex": data.hex()},
        "reads": reads,
        "expect": {"result": "valid", "frames": frames},
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    vectors = []
    with tempfile.TemporaryDirectory() as tmp:
        # 1. Upload: a 200-line text file under the seed's Chinese file name.
        path = os.path.join(tmp, "movie.mp4")
        with open(path, "wb") as f:
            for i in range(200):
                f.write(("line %d of the upload, 粘包 test\n" % i).encode("utf-8"))
        addr, t, res = recorder()
        hdr = seed_000_upload(addr, path, "澳门最大线上赌场开业啦.mp4")
        t.join()
        body = open(path, "rb").read()
        vectors.append(vector(
            "recorded/seed-000-upload",
            "Seed 000's upload client (json.dumps with \\u escapes, one send per file line), "
            "as received on loopback.",
            res["data"], res["reads"], [frame_expect(hdr, body)]))

        # 2. Remote command replies, two commands, one connection (output > recv(1024)).
        addr, t, res = recorder()
        conn = socket.create_connection(addr)
        frames = []
        for argv in ([sys.executable, "-c", "print('x' * 3000)"],
                     [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]):
            h, b = seed_002_command_reply(conn, argv)
            frames.append(frame_expect(h, b))
        conn.close()
        t.join()
        vectors.append(vector(
            "recorded/seed-002-command-replies",
            "Seed 002's remote-command server replies (total_size, placeholder md5, stdout and "
            "stderr sent separately), as received on loopback.",
            res["data"], res["reads"], frames))

        # 3. FTP get: bare 4-byte size, then a frame per line with a real md5.
        ftp = os.path.join(tmp, "notes.txt")
        with open(ftp, "wb") as f:
            for i in range(50):
                f.write(("第%d行 ftp line\n" % i).encode("utf-8"))
        addr, t, res = recorder()
        conn = socket.create_connection(addr)
        sent = seed_002_ftp_get(conn, ftp)
        conn.close()
        t.join()
        vectors.append(vector(
            "recorded/seed-002-ftp-get",
            "Seed 002's FTP get: a bare struct.pack('i', size) then one frame per line with its "
            "md5 (skip_bytes 4), as received on loopback.",
            res["data"], res["reads"], [frame_expect(h, b) for h, b in sent], skip=4))

    doc = {"group": "recorded", "vectors": vectors}
    with open(os.path.join(OUT, "seeds.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for v in vectors:
        print("%s: %d octets in %d reads" % (v["id"], len(v["input"]["hex"]) // 2, len(v["reads"])))


if __name__ == "__main__":
    main()
