"""fakeaws HTTP server: routing, SigV4, faults, call log, control endpoints.

  python3 -m tests.support.fakeaws [options]      (or: python3 tests/support/fakeaws)
    --port N          0 (default) picks a free port; binds 127.0.0.1 only
    --state-file F    load state from F (if it exists) and save it after
                      every call, so a restarted server carries on
    --faults SPEC     fault rules (see faults.py)     --seed N   (default 0)
    --chaos SEED      seeded random fault rules (faults.chaos_spec; also
                      $FAKEAWS_CHAOS); --seed defaults to SEED
    --idle S          exit after S seconds without requests (default 120)
    --time-scale F    multiply every simulated duration by F (default 1)
    --resource-ms MS  simulated time per CloudFormation resource (default 50)
    --credentials F   JSON {access key: {"secret": .., "account": .., "arn": ..,
                      "token": ..}} added to the default key AKIDEXAMPLE
    --max-skew S      reject requests signed more than S seconds away from
                      now (default 900; 0 disables)
Prints "PORT <n>" then "PID <pid>" on stdout (flushed).  Exits when its
parent process dies, after the idle timeout, or on POST /__fake/shutdown.

Routing: the service is the SigV4 credential scope's service name (from the
Authorization header or X-Amz-Credential); unsigned requests are routed by
X-Amz-Target or the query Action (sts:AssumeRoleWithWebIdentity is the only
operation that may be unsigned).  S3 is path-style (/bucket/key) or
virtual-hosted (Host: bucket.127.0.0.1:port, bucket.localhost:port).

Control endpoints (unsigned, JSON):
  GET  /__fake/health                 {"ok": true, "port": n}
  GET  /__fake/calls[?service=&operation=&since=SEQ]
                                      call log [{seq, time, service, operation,
                                      access_key, account, region, arn, status,
                                      error, fault}]
  POST /__fake/calls/reset            clear the call log
  GET  /__fake/faults                 {"spec", "seed", "rules": [{.., calls, fired}]}
  POST /__fake/faults                 {"spec": "...", "seed": n} (or the spec as text);
                                      {"chaos": n} adds faults.chaos_spec(n)
  GET  /__fake/stacks                 every stack ever made [{name, id, status, ..}]
  GET  /__fake/inventory              what exists now: live stacks, ssm, buckets,
                                      ecr, ecs_clusters
  POST /__fake/reset                  forget all state, calls and faults
  POST /__fake/config                 {"time_scale", "resource_ms", "changeset_ms",
                                      "max_skew", "page_sizes": {Op: n},
                                      "ecs_stabilize_ms", "task_run_ms"}
  POST /__fake/credentials            {access key: {secret, account, arn, token,
                                      expiration (epoch s)} | null}
  POST /__fake/clock                  {"advance": seconds}: moves the simulated
                                      clock (stack progress, expirations)
  POST /__fake/seed                   {"account", "region", "ssm": {name: value},
                                      "ecr": {"repositories": [..]},
                                      "ecs": {"clusters": [..], "services": [..]}}
  GET  /__fake/state                  the whole state as JSON
  POST /__fake/shutdown               stop the server
"""
import argparse
import base64
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from . import protocol, sigv4
from .faults import Faults, chaos_spec
from .protocol import AwsError

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_KEYS = {
    "AKIDEXAMPLE": {"secret": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    "account": DEFAULT_ACCOUNT,
                    "arn": f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/fakeaws",
                    "user_id": "AIDAFAKEAWSEXAMPLE01"},
}
DEFAULT_CONFIG = {"time_scale": 1.0, "resource_ms": 50, "changeset_ms": 50, "max_skew": 900,
                  "page_sizes": {}, "ecs_stabilize_ms": 300, "task_run_ms": 300,
                  "deny_assume": []}

SIG_MSG = ("The request signature we calculated does not match the signature you "
           "provided. Check your AWS Secret Access Key and signing method. Consult the "
           "service documentation for details.")
S3_SIG_MSG = ("The request signature we calculated does not match the signature you "
              "provided. Check your key and signing method.")
INVALID_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"

AUTH_ERRORS = {
    "query": {"missing": ("MissingAuthenticationToken", 403, "Request is missing Authentication Token"),
              "incomplete": ("IncompleteSignature", 400, None),
              "unknown_key": ("InvalidClientTokenId", 403, INVALID_TOKEN),
              "bad_token": ("InvalidClientTokenId", 403, INVALID_TOKEN),
              "expired_token": ("ExpiredToken", 403, EXPIRED_TOKEN),
              "signature": ("SignatureDoesNotMatch", 403, SIG_MSG),
              "skew": ("SignatureDoesNotMatch", 403, None),
              "presign_expired": ("AccessDenied", 403, "Request has expired")},
    "json": {"missing": ("MissingAuthenticationTokenException", 400, "Missing Authentication Token"),
             "incomplete": ("IncompleteSignatureException", 400, None),
             "unknown_key": ("UnrecognizedClientException", 400, INVALID_TOKEN),
             "bad_token": ("UnrecognizedClientException", 400, INVALID_TOKEN),
             "expired_token": ("ExpiredTokenException", 400, EXPIRED_TOKEN),
             "signature": ("InvalidSignatureException", 400, SIG_MSG),
             "skew": ("InvalidSignatureException", 400, None),
             "presign_expired": ("AccessDeniedException", 400, "Request has expired")},
    "rest-xml": {"missing": ("AccessDenied", 403, "Access Denied"),
                 "incomplete": ("AuthorizationQueryParametersError", 400, None),
                 "unknown_key": ("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided "
                                 "does not exist in our records."),
                 "bad_token": ("InvalidToken", 400, "The provided token is malformed or "
                               "otherwise invalid."),
                 "expired_token": ("ExpiredToken", 400, "The provided token has expired."),
                 "signature": ("SignatureDoesNotMatch", 403, S3_SIG_MSG),
                 "skew": ("RequestTimeTooSkewed", 403, "The difference between the request "
                          "time and the current time is too large."),
                 "presign_expired": ("AccessDenied", 403, "Request has expired"),
                 "content_sha256": ("XAmzContentSHA256Mismatch", 400, "The provided "
                                    "'x-amz-content-sha256' header does not match what was "
                                    "computed.")},
}
FAULT_ERRORS = {
    "query": {"throttle": ("Throttling", 400, "Rate exceeded"),
              "500": ("InternalFailure", 500, "The request processing has failed because of "
                      "an unknown error, exception or failure."),
              "503": ("ServiceUnavailable", 503, "Service is unavailable. Please try again later.")},
    "json": {"throttle": ("ThrottlingException", 400, "Rate exceeded"),
             "500": ("InternalFailure", 500, "The request processing has failed because of "
                     "an unknown error, exception or failure."),
             "503": ("ServiceUnavailable", 503, "Service is unavailable. Please try again later.")},
    "rest-xml": {"throttle": ("SlowDown", 503, "Please reduce your request rate."),
                 "500": ("InternalError", 500, "We encountered an internal error. Please try again."),
                 "503": ("ServiceUnavailable", 503, "Please reduce your request rate.")},
}


def _services():
    from . import cloudformation, ecr, ecs, s3, ssm, sts
    return {"cloudformation": cloudformation, "sts": sts, "ssm": ssm, "ecr": ecr,
            "ecs": ecs, "s3": s3}


class Request:
    def __init__(self, method, raw_path, header_list, body, port):
        self.method = method
        self.raw_path = raw_path
        split = urlsplit(raw_path)
        self.raw_query = split.query
        self.path = unquote(split.path)
        self.raw_url_path = split.path
        self.query = [(unquote(k), unquote(v)) for k, _, v in
                      (p.partition("=") for p in split.query.split("&") if p)]
        self.qdict = dict(self.query)
        self.header_list = header_list
        self.headers = {}
        for k, v in header_list:
            lk = k.lower()
            self.headers[lk] = v if lk not in self.headers else self.headers[lk] + "," + v
        self.body = body
        self.host = self.headers.get("host", f"127.0.0.1:{port}")
        self.port = port
        self.form = {}


class Ctx:
    """What a service handler sees of the call."""

    def __init__(self, world, req, service, op, caller, region, request_id):
        self.world = world
        self.req = req
        self.service = service
        self.op = op
        self.caller = caller or {}
        self.access_key = self.caller.get("access_key")
        self.account = self.caller.get("account", DEFAULT_ACCOUNT)
        self.region = region or "us-east-1"
        self.request_id = request_id
        self.now = world.now()
        self.auth = None

    def store(self, service, account=None, region=None):
        return self.world.store(account or self.account, region or self.region, service)

    def rand(self, n, alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"):
        return self.world.rand(n, alphabet)

    def page_size(self, op, default):
        return int(self.world.config["page_sizes"].get(op, default))

    def seconds(self, ms):
        return ms / 1000.0 * float(self.world.config["time_scale"])


class World:
    """All mutable state, guarded by one lock.  state is plain JSON data so
    it can be written to --state-file as it is."""

    def __init__(self, args):
        self.lock = threading.RLock()
        self.state_file = args.state_file
        self.extra_keys = {}
        if args.credentials:
            with open(args.credentials) as f:
                self.extra_keys = json.load(f)
        self.base_config = dict(DEFAULT_CONFIG)
        for key in ("time_scale", "resource_ms", "max_skew"):
            if getattr(args, key) is not None:
                self.base_config[key] = getattr(args, key)
        self.seed = args.seed
        self.faults = Faults(args.faults or "", args.seed)
        self.port = 0
        self.state = self.fresh_state()
        self.calls = []
        if self.state_file and os.path.exists(self.state_file):
            with open(self.state_file) as f:
                saved = json.load(f)
            self.state = saved["state"]
            self.calls = saved.get("calls", [])
            if not args.faults and saved.get("faults"):
                self.faults.set(saved["faults"]["spec"], saved["faults"].get("seed", args.seed))
                self.faults.restore(saved["faults"].get("counters"))
        self.config = self.state.setdefault("config", dict(self.base_config))

    def fresh_state(self):
        creds = {}
        for k, v in list(DEFAULT_KEYS.items()) + list(self.extra_keys.items()):
            rec = dict(v)
            rec.setdefault("account", DEFAULT_ACCOUNT)
            rec.setdefault("arn", f"arn:aws:iam::{rec['account']}:user/{k.lower()}")
            rec.setdefault("user_id", "AIDA" + k.upper()[:16].ljust(16, "X"))
            creds[k] = rec
        return {"version": 1, "counter": 0, "clock_offset": 0.0, "credentials": creds,
                "accounts": {}, "s3": {"buckets": {}}, "config": dict(self.base_config)}

    def now(self):
        return time.time() + float(self.state.get("clock_offset", 0.0))

    def store(self, account, region, service):
        acc = self.state["accounts"].setdefault(account, {})
        reg = acc.setdefault(region, {})
        return reg.setdefault(service, {})

    def regions(self):
        for account, regions in self.state["accounts"].items():
            for region, services in regions.items():
                yield account, region, services

    def rand(self, n, alphabet):
        self.state["counter"] += 1
        rng = random.Random(f"{self.seed}/{self.state['counter']}")
        return "".join(rng.choice(alphabet) for _ in range(n))

    def uuid(self):
        self.state["counter"] += 1
        rng = random.Random(f"{self.seed}/uuid/{self.state['counter']}")
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def save(self):
        if not self.state_file:
            return
        data = {"state": self.state, "calls": self.calls,
                "faults": dict(self.faults.describe(), counters=self.faults.counters())}
        tmp = f"{self.state_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.state_file)

    def advance(self):
        now = self.now()
        for mod in _services().values():
            fn = getattr(mod, "advance", None)
            if fn:
                fn(self, now)

    def reset(self):
        self.state = self.fresh_state()
        self.config = self.state["config"]
        self.calls = []
        self.faults.set("", self.seed)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that went away (or a fault that cut it off)
        super().handle_error(request, client_address)

    def __init__(self, addr, world):
        super().__init__(addr, Handler)
        self.world = world
        self.last = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonS3"
    sys_version = ""
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def version_string(self):
        return "fakeaws"

    # ------------------------------------------------------------- plumbing

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(out)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, headers, body, head=False, fault=None):
        if isinstance(body, str):
            body = body.encode()
        body = body or b""
        if fault == "cut" and not head:  # half the body, a Content-Length to match
            body = body[:len(body) // 2]
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        self.send_response(status)
        have = {k.lower() for k, _ in headers}
        for k, v in headers:
            self.send_header(k, v)
        if "content-length" not in have:
            self.send_header("Content-Length", str(len(body)))
        if fault in ("reset", "truncate"):
            self.send_header("Connection", "close")
        self.end_headers()
        if head or status in (204, 304) or status < 200:
            self.wfile.flush()
            return
        if fault in ("reset", "truncate"):
            half = body[:max(1, len(body) // 2)] if body else b""
            self.wfile.write(half)
            self.wfile.flush()
            self.close_connection = True
            if fault == "reset":  # SO_LINGER 0 + close = RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                try:
                    self.connection.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            return
        self.wfile.write(body)
        self.wfile.flush()

    def _json(self, obj, status=200):
        self._send(status, [("Content-Type", "application/json")],
                   json.dumps(obj, indent=1, default=str).encode())

    def do_GET(self):
        self._any()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _any(self):
        self.server.last = time.monotonic()
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        world = self.server.world
        req = Request(self.command, self.path, list(self.headers.items()), body,
                      self.server.server_address[1])
        if req.path.startswith("/__fake/"):
            try:
                self._control(world, req)
            except (ValueError, KeyError, TypeError) as e:
                self._json({"error": str(e)}, 400)
            return
        self._aws(world, req)
        self.server.last = time.monotonic()

    # ----------------------------------------------------------- AWS calls

    def _route(self, req, info):
        if info is not None:
            return info.service
        target = req.headers.get("x-amz-target", "")
        if target:
            return protocol.TARGET_PREFIX.get(target.split(".", 1)[0], "unknown")
        action = req.form.get("Action") or req.qdict.get("Action")
        if action:
            if action.startswith("AssumeRole") or action == "GetCallerIdentity":
                return "sts"
            return "cloudformation"
        return "s3"

    def _operation(self, service, req):
        proto = protocol.PROTOCOLS.get(service)
        if proto == "query":
            return req.form.get("Action") or req.qdict.get("Action") or ""
        if proto == "json":
            return req.headers.get("x-amz-target", "").partition(".")[2]
        if service == "s3":
            from . import s3
            return s3.operation_name(req)
        return ""

    def _aws(self, world, req):
        self._error_code = None
        request_id = str(uuid.uuid4())
        ctype = req.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded") and req.body:
            req.form = dict(parse_qsl(req.body.decode("utf-8", "replace"),
                                      keep_blank_values=True))
        entry = {"time": None, "service": None, "operation": None, "access_key": None,
                 "account": None, "region": None, "arn": None, "status": None,
                 "error": None, "fault": None}
        service, op, proto, fault = "unknown", "", "query", None
        status, headers, body, head = 500, [], b"", req.method == "HEAD"
        ctx = None
        try:
            with world.lock:
                entry["time"] = world.now()
                try:
                    info = sigv4.parse(req.headers, req.query)
                except sigv4.AuthFailure as f:
                    info, auth_fail = None, f
                else:
                    auth_fail = None
                service = self._route(req, info)
                proto = protocol.wire(service)
                op = self._operation(service, req)
                entry.update(service=service, operation=op)
                if auth_fail:
                    raise auth_fail
                if service not in protocol.PROTOCOLS:
                    raise AwsError("NotImplemented", f"fakeaws does not implement the "
                                   f"'{service}' service", 501)
                caller = self._authenticate(world, req, info, service, op)
                entry.update(access_key=caller.get("access_key"), account=caller.get("account"),
                             region=info.region if info else None, arn=caller.get("arn"))
                ctx = Ctx(world, req, service, op, caller, info.region if info else None,
                          request_id)
                ctx.auth = info
                if info is not None and info.form == "header" and service == "s3":
                    self._s3_payload(req, info, caller)
                rule = world.faults.match(service, op)
                fault = rule.kind if rule else None
                entry["fault"] = rule.text if rule else None
            if fault == "slow":
                time.sleep(rule.arg / 1000.0)
            if fault in ("throttle", "500", "503"):
                code, st, msg = FAULT_ERRORS[proto][fault]
                raise AwsError(code, msg, st, sender=fault == "throttle")
            if fault == "expired":
                code, st, msg = AUTH_ERRORS[proto]["expired_token"]
                raise AwsError(code, msg, st)
            if fault == "error":
                code, _, st = rule.arg.partition("/")
                raise AwsError(code, f"fault injected by fakeaws rule {rule.text}",
                               int(st or 400))
            with world.lock:
                world.advance()
                ctx.now = world.now()
                status, headers, body = self._dispatch(ctx, service, proto, op, req)
        except sigv4.AuthFailure as f:
            code, st, msg = AUTH_ERRORS[proto].get(f.kind, AUTH_ERRORS[proto]["signature"])
            err = AwsError(code, msg or f.message, st)
            if f.kind == "signature":
                if f.message:
                    err.message = (msg + " " + f.message) if proto != "rest-xml" else f.message
                elif proto == "rest-xml":
                    err.extra = {"AWSAccessKeyId": info.access_key if info else "",
                                 "StringToSign": f.detail.get("string_to_sign", ""),
                                 "SignatureProvided": f.detail.get("provided", ""),
                                 "CanonicalRequest": f.detail.get("canonical", "")}
                else:
                    err.message = (msg + "\n\nThe Canonical String for this request should "
                                   "have been\n'" + f.detail.get("canonical", "") + "'\n\nThe "
                                   "String-to-Sign should have been\n'"
                                   + f.detail.get("string_to_sign", "") + "'\n")
            status, headers, body = self._error(proto, service, err, request_id)
        except AwsError as err:
            status, headers, body = self._error(proto, service, err, request_id)
        except Exception as e:  # a bug in the fake: report it loudly as a 500
            import traceback
            traceback.print_exc(file=sys.stderr)
            err = AwsError("InternalFailure", f"fakeaws bug: {type(e).__name__}: {e}", 500,
                           sender=False)
            status, headers, body = self._error(proto, service, err, request_id)
        entry["status"] = status
        if status >= 300 and status != 304:
            entry["error"] = self._error_code
        with world.lock:
            entry["seq"] = len(world.calls) + 1
            world.calls.append(entry)
            try:
                world.save()
            except OSError as e:
                print(f"fakeaws: cannot save state: {e}", file=sys.stderr)
        if proto == "rest-xml":
            headers = headers + [("x-amz-request-id", request_id[:16].upper().replace("-", "")),
                                 ("x-amz-id-2", base64.b64encode(request_id.encode()).decode())]
        else:
            headers = headers + [("x-amzn-RequestId", request_id)]
        try:
            self._send(status, headers, body, head=head,
                       fault=fault if fault in ("reset", "truncate", "cut") else None)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    _error_code = None

    def _error(self, proto, service, err, request_id):
        self._error_code = err.code
        headers = list(err.headers.items())
        if proto == "query":
            body = protocol.query_error(service, err, request_id)
            headers.append(("Content-Type", "text/xml"))
        elif proto == "json":
            body = protocol.json_error(err)
            headers += [("Content-Type", "application/x-amz-json-1.1"),
                        ("x-amzn-ErrorType", err.code)]
        else:
            body = protocol.s3_error(err, request_id[:16], base64.b64encode(
                request_id.encode()).decode())
            headers.append(("Content-Type", "application/xml"))
        return err.status, headers, body

    def _authenticate(self, world, req, info, service, op):
        if info is None:
            if service == "sts" and op in ("AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"):
                return {}
            raise sigv4.AuthFailure("missing")
        now = world.now()
        cred = world.state["credentials"].get(info.access_key)
        if cred is None:
            raise sigv4.AuthFailure("unknown_key")
        if (cred.get("token") or None) != (info.token or None):
            raise sigv4.AuthFailure("bad_token")
        if cred.get("expiration") is not None and now >= float(cred["expiration"]):
            raise sigv4.AuthFailure("expired_token")
        signed_at = sigv4.amz_time(info.amz_date)
        if info.form == "query":
            if info.expires is not None and time.time() > signed_at + info.expires:
                raise sigv4.AuthFailure("presign_expired")
        else:
            skew = float(world.config.get("max_skew", 900))
            if skew and abs(time.time() - signed_at) > skew:
                stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                raise sigv4.AuthFailure(
                    "skew", f"Signature expired: {info.amz_date} is now earlier than "
                    f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(time.time() - skew))} "
                    f"({stamp} - {int(skew // 60)} min.)" if signed_at < time.time() else
                    f"Signature not yet current: {info.amz_date} is still later than "
                    f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(time.time() + skew))} "
                    f"({stamp} + {int(skew // 60)} min.)")
        verifier = sigv4.verify(info, cred["secret"], req.method, req.host, req.raw_url_path,
                                req.query, req.header_list, req.body)
        req.verifier = verifier
        return dict(cred, access_key=info.access_key)

    def _s3_payload(self, req, info, caller):
        mode = req.headers.get("x-amz-content-sha256")
        if mode is None:
            raise AwsError("InvalidRequest", "Missing required header for this request: "
                           "x-amz-content-sha256", 400)
        if mode == sigv4.UNSIGNED:
            return
        if mode in sigv4.STREAMING:
            payload, trailers = sigv4.decode_chunked(req.body, mode, info, req.verifier)
            req.body = payload
            req.trailers = trailers
            return
        if hashlib.sha256(req.body).hexdigest() != mode:
            code, st, msg = AUTH_ERRORS["rest-xml"]["content_sha256"]
            raise AwsError(code, msg, st, extra={
                "ClientComputedContentSHA256": mode,
                "S3ComputedContentSHA256": hashlib.sha256(req.body).hexdigest()})

    def _dispatch(self, ctx, service, proto, op, req):
        mod = _services()[service]
        if proto == "rest-xml":
            return mod.handle(ctx, req)
        handler = mod.OPS.get(op)
        op_model = protocol.operation(service, op)
        if handler is None or op_model is None:
            if proto == "query":
                raise AwsError("InvalidAction", f"The action {op} is not valid for this "
                               "web service.")
            raise AwsError("UnknownOperationException", f"fakeaws does not implement {op}")
        if proto == "query":
            params = dict(req.qdict)
            params.update(req.form)
            version = params.get("Version")
            want = protocol.model(service).metadata["apiVersion"]
            if version and version != want:
                raise AwsError("InvalidAction", f"Could not find operation {op} for "
                               f"version {version}")
            data = protocol.parse_query(op_model, params)
            protocol.validate(op_model, data, "ValidationError")
            result = handler(ctx, data)
            body = protocol.query_response(service, op_model, result, ctx.request_id)
            return 200, [("Content-Type", "text/xml")], body
        try:
            data = json.loads(req.body or b"{}")
        except ValueError:
            raise AwsError("SerializationException", "Start of structure or map found "
                           "where not expected.")
        if not isinstance(data, dict):
            raise AwsError("SerializationException", "Expected a JSON object")
        protocol.validate(op_model, data, "ValidationException")
        result = handler(ctx, data)
        body = protocol.json_response(op_model, result)
        return 200, [("Content-Type", "application/x-amz-json-1.1")], body

    # ------------------------------------------------------- control plane

    def _control(self, world, req):
        path = req.path[len("/__fake"):].rstrip("/")
        m = req.method
        if path == "/health":
            return self._json({"ok": True, "port": self.server.server_address[1],
                               "pid": os.getpid()})
        if path == "/shutdown" and m == "POST":
            self._json({"ok": True})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return
        with world.lock:
            if path == "/calls" and m == "GET":
                calls = world.calls
                q = req.qdict
                if q.get("service"):
                    calls = [c for c in calls if c["service"] == q["service"]]
                if q.get("operation"):
                    calls = [c for c in calls if c["operation"] == q["operation"]]
                if q.get("since"):
                    calls = [c for c in calls if c["seq"] > int(q["since"])]
                return self._json(calls)
            if path == "/calls/reset" and m == "POST":
                world.calls = []
                world.save()
                return self._json({"ok": True})
            if path == "/faults":
                if m == "POST":
                    text = req.body.decode()
                    try:
                        obj = json.loads(text) if text.strip().startswith("{") else {"spec": text}
                        spec, seed = obj.get("spec", ""), obj.get("seed")
                        if obj.get("chaos") is not None:
                            chaos = chaos_spec(int(obj["chaos"]), obj.get("slow_ms", 3000))
                            spec = ",".join(x for x in (chaos, spec) if x)
                            seed = int(obj["chaos"]) if seed is None else seed
                        world.faults.set(spec, seed)
                    except ValueError as e:
                        return self._json({"error": str(e)}, 400)
                    world.save()
                return self._json(world.faults.describe())
            if path == "/reset" and m == "POST":
                world.reset()
                world.save()
                return self._json({"ok": True})
            if path == "/config" and m == "POST":
                obj = json.loads(req.body or b"{}")
                for k, v in obj.items():
                    if k not in DEFAULT_CONFIG:
                        return self._json({"error": f"unknown config key {k}"}, 400)
                    if k == "page_sizes":
                        world.config["page_sizes"].update(v)
                    else:
                        world.config[k] = v
                world.save()
                return self._json(world.config)
            if path == "/config":
                return self._json(world.config)
            if path == "/credentials" and m == "POST":
                obj = json.loads(req.body or b"{}")
                for k, v in obj.items():
                    if v is None:
                        world.state["credentials"].pop(k, None)
                        continue
                    rec = dict(world.state["credentials"].get(k, {}))
                    rec.update(v)
                    if "secret" not in rec:
                        return self._json({"error": f"{k}: secret missing"}, 400)
                    rec.setdefault("account", DEFAULT_ACCOUNT)
                    rec.setdefault("arn", f"arn:aws:iam::{rec['account']}:user/{k.lower()}")
                    rec.setdefault("user_id", "AIDA" + k.upper()[:16].ljust(16, "X"))
                    world.state["credentials"][k] = rec
                world.save()
                return self._json({"ok": True, "keys": sorted(world.state["credentials"])})
            if path == "/clock" and m == "POST":
                obj = json.loads(req.body or b"{}")
                world.state["clock_offset"] = float(world.state.get("clock_offset", 0)) + \
                    float(obj.get("advance", 0))
                world.advance()
                world.save()
                return self._json({"now": world.now(), "offset": world.state["clock_offset"]})
            if path == "/seed" and m == "POST":
                obj = json.loads(req.body or b"{}")
                account = obj.get("account", DEFAULT_ACCOUNT)
                region = obj.get("region", "us-east-1")
                services = _services()
                for name in ("ssm", "ecr", "ecs", "s3"):
                    if name in obj:
                        services[name].seed(world, account, region, obj[name])
                world.save()
                return self._json({"ok": True})
            if path == "/stacks" and m == "GET":
                world.advance()
                return self._json(_stack_list(world))
            if path == "/inventory" and m == "GET":
                world.advance()
                return self._json(_inventory(world))
            if path == "/state" and m == "GET":
                world.advance()
                return self._json(world.state)
        self._json({"error": f"no control endpoint {m} {req.path}"}, 404)


def _stack_list(world):
    """Every stack ever made (deleted ones too), oldest first."""
    out = []
    for account, region, services in world.regions():
        cfn = services.get("cloudformation") or {}
        for sid, st in (cfn.get("stacks") or {}).items():
            out.append({"name": st.get("StackName"), "id": sid, "status": st.get("StackStatus"),
                        "account": account, "region": region,
                        "created": st.get("CreationTime"),
                        "termination_protection": bool(st.get("EnableTerminationProtection")),
                        "changesets": sorted(c.get("ChangeSetName") for c in
                                             (cfn.get("changesets") or {}).values()
                                             if c.get("StackId") == sid)})
    out.sort(key=lambda x: (x["created"] or 0, x["name"] or ""))
    return out


def _inventory(world):
    """What exists now: live stacks (not DELETE_COMPLETE), SSM parameters,
    S3 buckets and objects, ECR repositories, ECS clusters."""
    inv = {"stacks": [s for s in _stack_list(world) if s["status"] != "DELETE_COMPLETE"],
           "ssm": [], "buckets": {}, "ecr": [], "ecs_clusters": []}
    for account, region, services in world.regions():
        for name in sorted((services.get("ssm") or {}).get("params") or {}):
            inv["ssm"].append(name)
        for name in sorted((services.get("ecr") or {}).get("repositories") or {}):
            inv["ecr"].append(name)
        for name in sorted((services.get("ecs") or {}).get("clusters") or {}):
            inv["ecs_clusters"].append(name)
    for name, b in sorted(world.state["s3"]["buckets"].items()):
        inv["buckets"][name] = sorted((b.get("objects") or {}).keys())
    return inv


def _watchdog(server, idle, parent):
    while True:
        time.sleep(0.25)
        if os.getppid() != parent or time.monotonic() - server.last > idle:
            server.shutdown()
            return


def main(argv=None):
    ap = argparse.ArgumentParser(prog="fakeaws", description="local AWS-compatible endpoint")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--state-file")
    ap.add_argument("--faults", default="")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--chaos", type=int, default=None,
                    help="seeded random faults (faults.chaos_spec); also $FAKEAWS_CHAOS")
    ap.add_argument("--idle", type=float, default=120.0)
    ap.add_argument("--time-scale", type=float)
    ap.add_argument("--resource-ms", type=float)
    ap.add_argument("--credentials")
    ap.add_argument("--max-skew", type=float)
    args = ap.parse_args(argv)
    if args.chaos is None and os.environ.get("FAKEAWS_CHAOS", "").strip():
        try:
            args.chaos = int(os.environ["FAKEAWS_CHAOS"])
        except ValueError:
            print("fakeaws: FAKEAWS_CHAOS must be an integer seed", file=sys.stderr)
            return 2
    if args.seed is None:
        args.seed = args.chaos if args.chaos is not None else 0
    if args.chaos is not None:
        args.faults = ",".join(x for x in (chaos_spec(args.chaos), args.faults) if x)
    try:
        Faults(args.faults, args.seed)
    except ValueError as e:
        print(f"fakeaws: {e}", file=sys.stderr)
        return 2
    world = World(args)
    for key in ("time_scale", "resource_ms", "max_skew"):
        if getattr(args, key) is not None:  # explicit options beat a saved state
            world.config[key] = getattr(args, key)
    server = Server(("127.0.0.1", args.port), world)
    world.port = server.server_address[1]
    print(f"PORT {world.port}", flush=True)
    print(f"PID {os.getpid()}", flush=True)
    threading.Thread(target=_watchdog, args=(server, args.idle, os.getppid()),
                     daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        with world.lock:
            try:
                world.save()
            except OSError:
                pass
    return 0
