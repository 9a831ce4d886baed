#!/usr/bin/env python3
"""Local HTTP/1.1 test server for lumu's http/async specs (standard library only).

Binds 127.0.0.1 on a free port and prints "PORT <n>" (then "PID <pid>") on
stdout.  Exits after --idle seconds (default 60) without requests, when its
parent process dies, or on GET /shutdown.

Endpoints (any method unless noted):
  /echo...            200 JSON {method, path, headers: {name: value}, body}
                      (body decoded as latin-1, so bytes round-trip via \\u00XX)
  /status/N           status N, body "status N"
  /delay/MS           waits MS milliseconds, then 200 "delayed MS"
  /big/N              N bytes of "x" with Content-Length; /big/N?chunked
                      sends them chunked (no Content-Length)
  /repeat             200 with repeated headers X-Multi: a, X-Multi: b and two
                      Set-Cookie headers
  /close              200 with "Connection: close" (the server closes)
  /redirect           302 to /echo
  /connections        200 body: number of TCP connections accepted so far
  /drop               promises 1000 bytes, sends 10, closes the socket
  /hugeheaders        a response whose headers total about 2 MiB
  /shutdown           200 "bye", then the server exits
Options: --tls CERT KEY (serve HTTPS), --idle SECONDS.
"""
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"connections": 0, "last": time.monotonic()}
LOCK = threading.Lock()


def touch():
    with LOCK:
        STATE["last"] = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lumu-test-httpd"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between header and body

    def log_message(self, fmt, *args):  # quiet
        pass

    def send(self, status, body=b"", headers=None, ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        if status < 200 or status in (204, 304):
            body = b""  # these never carry a body
        else:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers or []:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def handle_any(self):
        touch()
        body = self.read_body()
        path, _, query = self.path.partition("?")
        parts = path.strip("/").split("/")
        head = parts[0]
        if head == "echo" or self.path.startswith("http://"):
            doc = {
                "method": self.command,
                "path": self.path,
                "headers": {k: v for k, v in self.headers.items()},
                "body": body.decode("latin-1"),
            }
            self.send(200, json.dumps(doc, sort_keys=True), ctype="application/json")
        elif head == "status" and len(parts) == 2 and parts[1].isdigit():
            n = int(parts[1])
            self.send(n, "status %d" % n)
        elif head == "delay" and len(parts) == 2 and parts[1].isdigit():
            time.sleep(int(parts[1]) / 1000.0)
            touch()
            self.send(200, "delayed " + parts[1])
        elif head == "big" and len(parts) == 2 and parts[1].isdigit():
            n = int(parts[1])
            if query == "chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                left, chunk = n, b"x" * 65536
                while left > 0:
                    k = min(left, len(chunk))
                    self.wfile.write(b"%x\r\n" % k + chunk[:k] + b"\r\n")
                    left -= k
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send(200, b"x" * n)
        elif head == "repeat":
            self.send(200, "ok", headers=[("X-Multi", "a"), ("X-Multi", "b"),
                                          ("Set-Cookie", "c=1"), ("Set-Cookie", "d=2"),
                                          ("X-Empty", ""), ("X-Spaced", "  v  ")])
        elif head == "close":
            self.close_connection = True
            self.send(200, "closing", headers=[("Connection", "close")])
        elif head == "redirect":
            self.send(302, "moved", headers=[("Location", "/echo")])
        elif head == "connections":
            with LOCK:
                n = STATE["connections"]
            self.send(200, str(n))
        elif head == "drop":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        elif head == "hugeheaders":
            big = "y" * 8000
            self.send(200, "ok", headers=[("X-Big-%d" % i, big) for i in range(260)])
        elif head == "shutdown":
            self.send(200, "bye")
            self.wfile.flush()
            threading.Thread(target=self.server.shutdown, daemon=True).start()
        else:
            self.send(404, "not found: " + self.path)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many concurrent connects (default 5 drops SYNs)
    tls = None

    def get_request(self):
        sock, addr = super().get_request()
        with LOCK:
            STATE["connections"] += 1
        return sock, addr

    def finish_request(self, request, client_address):
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except OSError:
                return  # failed handshake: the client reports it
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # broken pipes, resets: expected in error tests


def watchdog(server, idle, parent):
    while True:
        time.sleep(0.2)
        with LOCK:
            quiet = time.monotonic() - STATE["last"]
        if quiet > idle or os.getppid() != parent:
            os._exit(0)


def main(argv):
    idle, tls = 60.0, None
    i = 1
    while i < len(argv):
        if argv[i] == "--idle":
            idle = float(argv[i + 1])
            i += 2
        elif argv[i] == "--tls":
            tls = (argv[i + 1], argv[i + 2])
            i += 3
        else:
            sys.stderr.write("httpd.py: unknown argument %s\n" % argv[i])
            return 2
    server = Server(("127.0.0.1", 0), Handler)
    if tls:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
        server.tls = ctx
    parent = os.getppid()
    threading.Thread(target=watchdog, args=(server, idle, parent), daemon=True).start()
    sys.stdout.write("PORT %d\nPID %d\n" % (server.server_address[1], os.getpid()))
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.2)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
