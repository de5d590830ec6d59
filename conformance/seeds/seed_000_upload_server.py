#!/usr/bin/env python3
"""Seed 000 (shared/seeds/000_a5353341c0f9fd75.txt), the upload server ("服务端"), as a
standalone program.

    python3 seed_000_upload_server.py HOST:PORT DIR [CONNECTIONS]

Adaptations, and nothing else:
- the address ('127.0.0.1', 8080) comes from argv[1]; port 0 picks an ephemeral port, and the
  first line on stdout is "listening on HOST:PORT" (flushed) so a test can find it;
- the files land in DIR (argv[2]): the program chdir()s there first, then opens file_name as
  the seed does (relative to the working directory; the seed's own path traversal is kept);
- the outer `while True` accept loop is bounded to CONNECTIONS (argv[3], default 1)
  connections, after which the program exits;
- print() flushes (stdout is a pipe in the tests).
The per-connection code (recv(4), struct.unpack('i'), recv(dic_len), json.loads, the
recv(1024) loop until file_size, the print) is the seed's.
"""
import socket
import json
import struct
import os
import sys

host, port = sys.argv[1].rsplit(':', 1)
os.chdir(sys.argv[2])
connections = int(sys.argv[3]) if len(sys.argv) > 3 else 1

server = socket.socket()
server.bind((host, int(port)))
server.listen(5)
print('listening on %s:%d' % server.getsockname(), flush=True)

for _ in range(connections):
   conn, addr = server.accept()
   while True:
       try:
           header = conn.recv(4)
           if len(header) == 0:break
           dic_len = struct.unpack('i', header)[0]

           real_dic = json.loads(conn.recv(dic_len).decode('utf-8'))
           print(real_dic, flush=True)
           file_name = real_dic.get('file_name')
           file_size = real_dic.get('file_size')
           recv_size = 0
           with open(file_name, 'wb') as f:
               while recv_size < file_size:
                   recv_data = conn.recv(1024)
                   f.write(recv_data)
                   recv_size += len(recv_data)
       except ConnectionResetError:
           break
   conn.close()
server.close()
