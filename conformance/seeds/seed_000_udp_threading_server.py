#!/usr/bin/env python3
"""Seed 000 (shared/seeds/000_a5353341c0f9fd75.txt), "UDP socketserver使用": the
socketserver.ThreadingUDPServer upper-casing server, as a standalone program.

    python3 seed_000_udp_threading_server.py HOST:PORT

Adaptations, and nothing else:
- the address ('127.0.0.1', 8080) comes from argv[1]; port 0 picks an ephemeral port, and the
  first line on stdout is "listening on HOST:PORT" (flushed) so a test can find it;
- the handler does not print each datagram (it would fill the test's pipe: see below).
The handler is the seed's, including its `while True`: one datagram received is answered
again and again, forever (the test shows it, then kills the program).
"""
import socketserver
import sys

host, port = sys.argv[1].rsplit(':', 1)


class MyUdpServer(socketserver.BaseRequestHandler):
   def handle(self):
       while True:
           data, sock = self.request # self.request是一个元组,第一个元素是客户端发过来的数据,第二个元素是服务端对象
           sock.sendto(data.upper(), self.client_address)


if __name__ == '__main__':
   server = socketserver.ThreadingUDPServer((host, int(port)), MyUdpServer)
   print('listening on %s:%d' % server.server_address, flush=True)
   server.serve_forever()
