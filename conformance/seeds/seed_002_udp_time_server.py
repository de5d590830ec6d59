#!/usr/bin/env python3
"""Seed 002 (shared/seeds/002_d1bbd5b6d2acaac3.txt), the time server ("时间服务器": the time
in the format the client sends), as a standalone program.

    python3 seed_002_udp_time_server.py HOST:PORT [DATAGRAMS]

Adaptations, and nothing else:
- the address ('127.0.0.1', 9000) comes from argv[1]; port 0 picks an ephemeral port, and the
  first line on stdout is "listening on HOST:PORT" (flushed) so a test can find it;
- the `while True` loop is bounded to DATAGRAMS (argv[2], default 1) datagrams;
- print() flushes (stdout is a pipe in the tests).
The loop body (recvfrom(bufsize), the default format, strftime, sendto) is the seed's.
"""
import sys
from socket import *
from time import strftime

host, port = sys.argv[1].rsplit(':', 1)
datagrams = int(sys.argv[2]) if len(sys.argv) > 2 else 1

ip_port=(host,int(port))
bufsize=1024

tcp_server=socket(AF_INET,SOCK_DGRAM)
tcp_server.bind(ip_port)
print('listening on %s:%d' % tcp_server.getsockname(), flush=True)

for _ in range(datagrams):
    msg,addr=tcp_server.recvfrom(bufsize)
    print('===>',msg, flush=True)

    if not msg:
        time_fmt='%Y-%m-%d %X'
    else:
        time_fmt=msg.decode('utf-8')
    back_msg=strftime(time_fmt)

    tcp_server.sendto(back_msg.encode('utf-8'),addr)

tcp_server.close()
