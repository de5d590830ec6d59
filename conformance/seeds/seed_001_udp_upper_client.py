#!/usr/bin/env python3
"""Seed 001 (shared/seeds/001_bdd8a5dce7baef91.txt), the UDP client ("客户端"), as a
standalone program.

    python3 seed_001_udp_upper_client.py HOST:PORT < messages

Adaptations, and nothing else:
- the server address ('127.0.0.1', 8080) comes from argv[1];
- input() reads the fixed input the test pipes in; the `while True` loop ends at the end of
  that input (EOFError) instead of running forever;
- print() flushes (stdout is a pipe in the tests).
The loop body (sendto, recvfrom(1024), print(data)) is the seed's.
"""
import socket
import sys

host, port = sys.argv[1].rsplit(':', 1)

client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # 数据报协议-》UDP

while True:
    try:
        msg = input('>>: ').strip()  # msg=''
    except EOFError:
        break
    client.sendto(msg.encode('utf-8'), (host, int(port)))
    data, server_addr = client.recvfrom(1024)
    print(data, flush=True)

client.close()
