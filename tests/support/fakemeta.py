#!/usr/bin/env python3
"""Fake AWS metadata / credential endpoints for lumu's credential specs
(standard library only; binds 127.0.0.1 only).

Prints "PORT <n>" then "PID <pid>" on stdout.  Exits after --idle seconds
(default 60) without requests, when its parent process dies, or on
GET /shutdown.

Behaviour is set with POST /_config {section: {key: value}} (merged into the
current settings; POST /_reset restores the defaults and clears the log).
GET /_log returns the requests seen so far as a JSON list of
{"method", "path", "headers": {lower-case name: value}, "body"}.

Sections and their defaults:
  imds       token_status 200, token "IMDSTOKEN-0123456789", token_delay_ms 0,
             require_token false (GETs without the right
             X-aws-ec2-metadata-token get 401), role "lumu-role",
             region "eu-central-1", creds {...}
             PUT /latest/api/token (needs X-aws-ec2-metadata-token-ttl-seconds,
             else 400), GET /latest/meta-data/iam/security-credentials/[role],
             GET /latest/meta-data/placement/region
  container  status 200, token null (when set, Authorization must equal it,
             else 401), creds {...};  GET /container/...
  sso        token "SSO-ACCESS-TOKEN" (x-amz-sso_bearer_token must equal it,
             else 401 UnauthorizedException), status 200, creds {...},
             expiration_ms;  GET /federation/credentials?account_id=&role_name=
  oidc       refresh_token "REFRESH-1" (must match), access_token
             "SSO-ACCESS-TOKEN-2", expires_in 3600;  POST /token
"""
import copy
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
LAST = [time.monotonic()]


def default_creds(prefix):
    return {
        "AccessKeyId": "ASIA" + prefix + "EXAMPLEKEY",
        "SecretAccessKey": prefix.lower() + "-secret-0123456789abcdef",
        "Token": prefix.lower() + "-session-token-0123456789",
        "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
    }


def defaults():
    return {
        "imds": {"token_status": 200, "token": "IMDSTOKEN-0123456789", "token_delay_ms": 0,
                 "require_token": False, "role": "lumu-role", "region": "eu-central-1",
                 "creds": dict(default_creds("IMDS"), Code="Success")},
        "container": {"status": 200, "token": None, "creds": default_creds("ECS")},
        "sso": {"token": "SSO-ACCESS-TOKEN", "status": 200, "creds": default_creds("SSO"),
                "expiration_ms": int((time.time() + 3600) * 1000)},
        "oidc": {"refresh_token": "REFRESH-1", "access_token": "SSO-ACCESS-TOKEN-2",
                 "expires_in": 3600},
    }


STATE = {"config": defaults(), "log": []}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lumu-fakemeta"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body="", ctype="text/plain", headers=()):
        if not isinstance(body, (bytes, bytearray)):
            body = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, doc, headers=()):
        self.send(status, json.dumps(doc), "application/json", headers)

    def handle_any(self):
        with LOCK:
            LAST[0] = time.monotonic()
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        url = urlsplit(self.path)
        path = url.path
        if not path.startswith("/_"):
            with LOCK:
                STATE["log"].append({
                    "method": self.command, "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("latin-1"),
                })
        with LOCK:
            cfg = copy.deepcopy(STATE["config"])
        if path == "/_config" and self.command == "POST":
            doc = json.loads(body or b"{}")
            with LOCK:
                for section, values in doc.items():
                    STATE["config"].setdefault(section, {}).update(values)
            return self.send(200, "ok")
        if path == "/_reset":
            with LOCK:
                STATE["config"] = defaults()
                STATE["log"] = []
            return self.send(200, "ok")
        if path == "/_log":
            with LOCK:
                return self.send_json(200, STATE["log"])
        if path == "/shutdown":
            self.send(200, "bye")
            self.wfile.flush()
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return None
        if path.startswith("/latest/"):
            return self.imds(cfg["imds"], path)
        if path.startswith("/container/"):
            return self.container(cfg["container"])
        if path == "/federation/credentials":
            return self.sso(cfg["sso"], parse_qs(url.query))
        if path == "/token" and self.command == "POST":
            return self.oidc(cfg["oidc"], body)
        return self.send(404, "not found")

    def imds(self, c, path):
        if path == "/latest/api/token":
            if self.command != "PUT":
                return self.send(405, "method not allowed")
            if c["token_delay_ms"]:
                time.sleep(c["token_delay_ms"] / 1000.0)
            if not self.headers.get("x-aws-ec2-metadata-token-ttl-seconds"):
                return self.send(400, "missing ttl")
            if c["token_status"] != 200:
                return self.send(c["token_status"], "no token")
            return self.send(200, c["token"])
        if self.command != "GET":
            return self.send(405, "method not allowed")
        if c["require_token"] and self.headers.get("x-aws-ec2-metadata-token") != c["token"]:
            return self.send(401, "unauthorized")
        base = "/latest/meta-data/iam/security-credentials/"
        if path == base:
            return self.send(200, c["role"])
        if path == base + c["role"]:
            return self.send_json(200, c["creds"])
        if path == "/latest/meta-data/placement/region":
            return self.send(200, c["region"])
        return self.send(404, "not found")

    def container(self, c):
        if c["token"] is not None and self.headers.get("Authorization") != c["token"]:
            return self.send_json(401, {"message": "bad token"})
        if c["status"] != 200:
            return self.send(c["status"], "container error")
        return self.send_json(200, c["creds"])

    def sso(self, c, query):
        if self.headers.get("x-amz-sso_bearer_token") != c["token"]:
            return self.send_json(401, {"message": "Session token not found or invalid"},
                                  [("x-amzn-errortype", "UnauthorizedException")])
        if c["status"] != 200:
            return self.send_json(c["status"], {"message": "boom"},
                                  [("x-amzn-errortype", "InternalServerException")])
        if not query.get("account_id") or not query.get("role_name"):
            return self.send_json(400, {"message": "missing parameters"})
        cr = c["creds"]
        return self.send_json(200, {"roleCredentials": {
            "accessKeyId": cr["AccessKeyId"], "secretAccessKey": cr["SecretAccessKey"],
            "sessionToken": cr["Token"], "expiration": c["expiration_ms"]}})

    def oidc(self, c, body):
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return self.send_json(400, {"error": "invalid_request"})
        if doc.get("grantType") != "refresh_token" or doc.get("refreshToken") != c["refresh_token"]:
            return self.send_json(400, {"error": "invalid_grant"})
        return self.send_json(200, {"accessToken": c["access_token"], "expiresIn": c["expires_in"],
                                    "refreshToken": c["refresh_token"] + "-next",
                                    "tokenType": "Bearer"})

    do_GET = do_PUT = do_POST = do_DELETE = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        pass


def watchdog(idle, parent):
    while True:
        time.sleep(0.2)
        with LOCK:
            quiet = time.monotonic() - LAST[0]
        if quiet > idle or os.getppid() != parent:
            os._exit(0)


def main(argv):
    idle = 60.0
    if len(argv) == 3 and argv[1] == "--idle":
        idle = float(argv[2])
    elif len(argv) != 1:
        sys.stderr.write("usage: fakemeta.py [--idle SECONDS]\n")
        return 2
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=watchdog, args=(idle, os.getppid()), daemon=True).start()
    sys.stdout.write("PORT %d\nPID %d\n" % (server.server_address[1], os.getpid()))
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.2)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
