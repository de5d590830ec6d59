#!/usr/bin/env python3
"""Seed 000 (shared/seeds/000_a5353341c0f9fd75.txt), the upload client ("socket发送大文件示例,
客户端"), as a standalone program.

    python3 seed_000_upload_client.py HOST:PORT PATH FILE_NAME

Adaptations, and nothing else:
- the address ('127.0.0.1', 8080) comes from argv[1];
- the hard-coded file path (r'/Users/jiboyuan/.../10 解决粘包问题终极版.mp4') comes from argv[2];
- the hard-coded 'file_name' ('澳门最大线上赌场开业啦.mp4') comes from argv[3], so a test can
  also send '../evil.mp4'.
Everything else is the seed's: struct.pack('i', ...), json.dumps with its default separators
and ensure_ascii, one send() for the prefix, one for the header, one per file line, and no
close() (the process exit closes the socket, as in the seed).
"""
import struct
import json
import socket
import os
import sys

host, port = sys.argv[1].rsplit(':', 1)

client = socket.socket()
client.connect((host, int(port)))

file_size = os.path.getsize(sys.argv[2])
file_path = sys.argv[2]
data_dic = {
   'file_name': sys.argv[3],
   'file_size': file_size
}
header_json = json.dumps(data_dic)
header_bytes = header_json.encode('utf-8')
# 制作字典的报头
header = struct.pack('i', len(header_bytes))
# 发送报头
client.send(header)
# 发字典数据
client.send(header_bytes)
# 打开文件发送文件数据
with open(file_path,'rb') as f:
   for line in f:
       client.send(line)
