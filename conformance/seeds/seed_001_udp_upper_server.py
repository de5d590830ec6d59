#!/usr/bin/env python3
"""Seed 001 (shared/seeds/001_bdd8a5dce7baef91.txt), the UDP upper-casing server ("服务端"),
as a standalone program. The same server is in seeds 000 (socketserver), 002 and 004.

    python3 seed_001_udp_upper_server.py HOST:PORT [DATAGRAMS]

Adaptations, and nothing else:
- the address ('127.0.0.1', 8080) comes from argv[1]; port 0 picks an ephemeral port, and the
  first line on stdout is "listening on HOST:PORT" (flushed) so a test can find it;
- the `while True` loop is bounded to DATAGRAMS (argv[2], default 1) datagrams;
- print() flushes (stdout is a pipe in the tests).
The loop body (recvfrom(1024), print, sendto(data.upper())) is the seed's.
"""
import socket
import sys

host, port = sys.argv[1].rsplit(':', 1)
datagrams = int(sys.argv[2]) if len(sys.argv) > 2 else 1

server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # 数据报协议-》UDP
server.bind((host, int(port)))
print('listening on %s:%d' % server.getsockname(), flush=True)

for _ in range(datagrams):
    """client_addr: 客户端的地址"""
    data, client_addr = server.recvfrom(1024) # 接收的最大字节数
    print('===>', data, client_addr, flush=True)
    server.sendto(data.upper(), client_addr)

server.close()
