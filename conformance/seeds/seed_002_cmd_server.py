#!/usr/bin/env python3
"""Seed 002 (shared/seeds/002_d1bbd5b6d2acaac3.txt), the remote-command server of
"将其运用到我们的案例中就可以变成 / 服务器端" (struct length prefix, JSON header with
total_size and a placeholder md5, then stdout and stderr), as a standalone program.

    python3 seed_002_cmd_server.py HOST:PORT [CONNECTIONS] [--loop]

Adaptations, and nothing else:
- the address ('127.0.0.1', 8080) comes from argv[1]; port 0 picks an ephemeral port, and the
  first line on stdout is "listening on HOST:PORT" (flushed) so a test can find it;
- the outer `while True` accept loop is bounded to CONNECTIONS (default 1) connections;
- subprocess.Popen(cmd, shell=True, ...) on text from the network is replaced by a fixed
  allow-list run without a shell: the command text is split with shlex.split and argv[0] must
  be one of ALLOWED ('seq', 'echo'); anything else gets b'' on stdout and
  b'not allowed: ...' on stderr, sent exactly where the seed sends res1 and res2;
- print() flushes (stdout is a pipe in the tests).
- --loop: the seed's framed server answers ONE command per accepted connection (its client
  would wait forever for the reply to a second command). With --loop, each connection runs the
  seed's reply code in the per-connection `while True` of the seed's first (unframed) server in
  the same tutorial, so several commands can share one connection; a recv() of b'' ends the
  connection instead of the whole server.
The reply code (recv(1024), the header dict, struct.pack('i', len(header_bytes)), one send()
each for the prefix, the header, res1 and res2) is the seed's.
"""
from socket import *
import json, struct, subprocess, shlex, sys

ALLOWED = ('seq', 'echo')


def run(cmd):
    """The adaptation of subprocess.Popen(cmd, shell=True, stdout=PIPE, stderr=PIPE)."""
    argv = shlex.split(cmd)
    if not argv or argv[0] not in ALLOWED:
        return b'', ('not allowed: %r\n' % cmd).encode('utf-8')
    res_obj = subprocess.Popen(argv,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE
                               )
    res1 = res_obj.stdout.read()
    res2 = res_obj.stderr.read()
    res_obj.wait()
    return res1, res2


host, port = sys.argv[1].rsplit(':', 1)
args = [a for a in sys.argv[2:] if a != '--loop']
connections = int(args[0]) if args else 1
loop = '--loop' in sys.argv[2:]

server = socket(AF_INET, SOCK_STREAM)

server.bind((host, int(port)))

server.listen(5)
print('listening on %s:%d' % server.getsockname(), flush=True)


def reply(conn):
    """The seed's body of the accept loop; returns False where the seed breaks."""
    try:
        cmd = conn.recv(1024)
        if len(cmd) == 0: return False
        cmd = cmd.decode('utf-8')
        res1, res2 = run(cmd)
        header = len(res1 + res2)

        # 先制造字典
        header_dic = {
            "file_name": 'a.txt',
            'total_size': header,
            'md5': 'hih1jk5jk151jk51'
        }

        # 将字典变为bytes类型的字典
        header_bytes = json.dumps(header_dic)
        conn.send(struct.pack('i', len(header_bytes)))

        # 再发送header_bytes 到接收端
        conn.send(header_bytes.encode('utf-8'))

        # # 发送真正的数据
        conn.send(res1)
        conn.send(res2)
    except Exception:
        return False
    return True


for _ in range(connections):
    conn, addr = server.accept()
    print(addr, flush=True)
    if loop:
        while reply(conn):
            pass
    elif not reply(conn):
        break
    conn.close()
server.close()
