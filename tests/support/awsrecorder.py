#!/usr/bin/env python3
"""A scripted AWS endpoint for lumu.aws's integration spec (127.0.0.1 only).

Every request must carry a valid SigV4 signature: the server rebuilds the
expected signature with botocore.auth.SigV4Auth (S3SigV4Auth for s3) from
what it received (only the headers listed in SignedHeaders, the X-Amz-Date
timestamp, the body) and answers 403 SignatureDoesNotMatch when it differs.
Unsigned requests are accepted only for operations whose model says
authtype "none" (sts:AssumeRoleWithWebIdentity); they are logged as such.

Answers come from recorded AWS responses (RECORDED below: real response
shapes captured from the CloudFormation and STS query APIs) queued per
operation by the test:

  POST /__script   {"cloudformation.DescribeStacks": [STEP, ...], ...}
                   STEP = a RECORDED name, or {"status":, "body":, "headers":
                   {..}, "delay_ms":, "recorded": name}; a queue's last step
                   repeats once the others are used up.  Replaces queues.
  GET  /__log      [{seq, service, operation, region, access_key, token,
                     signed, signature_ok, method, path, body, headers,
                     connection}]  (Authorization omitted)
  POST /__reset    clears the queues and the log
  GET  /__stats    {"connections": n, "requests": n}
  POST /__shutdown

Operation names: the query Action, or the X-Amz-Target suffix (json), or
"METHOD /path" for rest protocols.  Unknown operations answer 400
InvalidAction.  Credentials: AKIDEXAMPLE / the botocore test secret, the temporary
key of the "assume_role" recording, and any key added with POST /__keys
{"AKID": "secret", ...}.

  python3 tests/support/awsrecorder.py [--idle SECONDS]
prints "PORT <n>" and "PID <pid>", exits after --idle seconds (default 60)
without requests or when its parent process dies.
"""
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEYS = {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
LOCK = threading.Lock()
STATE = {"queues": {}, "log": [], "connections": 0, "requests": 0, "last": time.monotonic()}

CFN_NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"


def _stack(status, name="web", reason=None):
    extra = f"<StackStatusReason>{reason}</StackStatusReason>" if reason else ""
    return (f"<member><StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/{name}/"
            f"5a6b7c80-1111-11ee-9f00-0a1b2c3d4e5f</StackId><StackName>{name}</StackName>"
            f"<Description>lumu test stack</Description><Parameters><member>"
            f"<ParameterKey>Env</ParameterKey><ParameterValue>prod</ParameterValue></member>"
            f"</Parameters><CreationTime>2023-06-20T10:15:30.123Z</CreationTime>"
            f"<StackStatus>{status}</StackStatus>{extra}<DisableRollback>false</DisableRollback>"
            f"<NotificationARNs/><Capabilities><member>CAPABILITY_IAM</member></Capabilities>"
            f"<Outputs><member><OutputKey>Url</OutputKey><OutputValue>https://example.com"
            f"</OutputValue></member></Outputs><Tags/><EnableTerminationProtection>false"
            f"</EnableTerminationProtection><DriftInformation><StackDriftStatus>NOT_CHECKED"
            f"</StackDriftStatus></DriftInformation></member>")


def _describe(status, reason=None):
    return (f'<DescribeStacksResponse xmlns="{CFN_NS}"><DescribeStacksResult><Stacks>'
            f"{_stack(status, reason=reason)}</Stacks></DescribeStacksResult><ResponseMetadata>"
            f"<RequestId>b9b4c8a2-1f0e-4d2c-9a8e-2f6f5d7e0c11</RequestId></ResponseMetadata>"
            f"</DescribeStacksResponse>")


def _summary(i):
    return (f"<member><StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/s{i}/"
            f"0000{i:04d}-2222-11ee-9f00-0a1b2c3d4e5f</StackId><StackName>s{i}</StackName>"
            f"<CreationTime>2023-06-{1 + i % 27:02d}T08:00:00Z</CreationTime>"
            f"<StackStatus>CREATE_COMPLETE</StackStatus><DriftInformation><StackDriftStatus>"
            f"NOT_CHECKED</StackDriftStatus></DriftInformation></member>")


def _list_page(first, count, token):
    nt = f"<NextToken>{token}</NextToken>" if token else ""
    items = "".join(_summary(i) for i in range(first, first + count))
    return (f'<ListStacksResponse xmlns="{CFN_NS}"><ListStacksResult><StackSummaries>{items}'
            f"</StackSummaries>{nt}</ListStacksResult><ResponseMetadata><RequestId>"
            f"d1c0ffee-0000-4000-8000-00000000000{first % 10}</RequestId></ResponseMetadata>"
            f"</ListStacksResponse>")


def _query_error(code, message, kind="Sender"):
    return (f'<ErrorResponse xmlns="{CFN_NS}"><Error><Type>{kind}</Type><Code>{code}</Code>'
            f"<Message>{message}</Message></Error><RequestId>"
            f"e7a1c3d5-9b2f-4e6a-8c0d-1f3b5d7f9a2c</RequestId></ErrorResponse>")


XML = {"Content-Type": "text/xml"}
RECORDED = {
    "stack_create_in_progress": {"status": 200, "body": _describe("CREATE_IN_PROGRESS",
                                                                    "User Initiated")},
    "stack_create_complete": {"status": 200, "body": _describe("CREATE_COMPLETE")},
    "stack_rollback_complete": {"status": 200, "body": _describe("ROLLBACK_COMPLETE",
                                                                   "The following resource(s) "
                                                                   "failed to create: [Bucket].")},
    "stack_does_not_exist": {"status": 400, "body": _query_error(
        "ValidationError", "Stack with id x does not exist")},
    "list_stacks_page1": {"status": 200, "body": _list_page(0, 3, "token-page-2")},
    "list_stacks_page2": {"status": 200, "body": _list_page(3, 3, "token-page-3")},
    "list_stacks_page3": {"status": 200, "body": _list_page(6, 2, None)},
    "throttling": {"status": 400, "body": _query_error("Throttling", "Rate exceeded")},
    "internal_failure": {"status": 500, "body": _query_error(
        "InternalFailure", "The request processing has failed because of an unknown error, "
        "exception or failure.", "Receiver")},
    "service_unavailable_html": {"status": 503, "body": "<html><body>Service Unavailable"
                                 "</body></html>", "headers": {"Content-Type": "text/html"}},
    "get_caller_identity": {"status": 200, "body": (
        '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        "<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/lumu-test</Arn>"
        "<UserId>AIDAEXAMPLEUSERID0001</UserId><Account>123456789012</Account>"
        "</GetCallerIdentityResult><ResponseMetadata><RequestId>"
        "01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>")},
}
RECORDED["assume_role"] = {"status": 200, "body": (
    '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
    "<AssumedRoleUser><AssumedRoleId>AROAEXAMPLEROLE:lumu</AssumedRoleId><Arn>"
    "arn:aws:sts::123456789012:assumed-role/deploy/lumu</Arn></AssumedRoleUser><Credentials>"
    "<AccessKeyId>ASIATEMPEXAMPLE00001</AccessKeyId><SecretAccessKey>"
    "tempSecretKeyEXAMPLE/0123456789abcdefghij</SecretAccessKey><SessionToken>"
    "FwoGZXIvYXdzEXAMPLEsessiontoken//////////</SessionToken><Expiration>"
    "2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult><ResponseMetadata>"
    "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>"
    "</AssumeRoleResponse>")}
KEYS["ASIATEMPEXAMPLE00001"] = "tempSecretKeyEXAMPLE/0123456789abcdefghij"
for _v in RECORDED.values():
    _v.setdefault("headers", dict(XML))


def touch():
    with LOCK:
        STATE["last"] = time.monotonic()


def parse_auth(value):
    """(access_key, date, region, service, signed_headers, signature) or None."""
    if not value.startswith("AWS4-HMAC-SHA256 "):
        return None
    fields = {}
    for part in value[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    try:
        ak, date, region, service, term = fields["Credential"].split("/")
    except (KeyError, ValueError):
        return None
    if term != "aws4_request" or "SignedHeaders" not in fields or "Signature" not in fields:
        return None
    return ak, date, region, service, fields["SignedHeaders"].split(";"), fields["Signature"]


def verify(method, host, raw_path, headers, body, auth):
    """True when the signature is the one botocore computes for this request."""
    ak, date, region, service, signed, signature = auth
    secret = KEYS.get(ak)
    amz_date = headers.get("x-amz-date", "")
    if secret is None or not amz_date.startswith(date) or "host" not in signed:
        return False
    creds = Credentials(ak, secret, headers.get("x-amz-security-token"))
    cls = S3SigV4Auth if service == "s3" else SigV4Auth
    signer = cls(creds, service, region)
    sig_headers = {}
    for name in signed:
        if name not in headers:
            return False
        sig_headers[name] = headers[name]
    req = AWSRequest(method=method, url=f"http://{host}{raw_path}", data=body,
                     headers=sig_headers)
    req.context["timestamp"] = amz_date
    if service == "s3" and "x-amz-content-sha256" in headers:
        req.headers["X-Amz-Content-SHA256"] = headers["x-amz-content-sha256"]
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    return expected == signature


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lumu-awsrecorder"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        hs = dict(headers or {})
        hs.setdefault("Content-Type", "text/xml")
        for k, v in hs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, doc, status=200):
        self.send(status, json.dumps(doc), {"Content-Type": "application/json"})

    def handle_any(self):
        touch()
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        path = self.path
        if path.startswith("/__"):
            return self.control(path, body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = headers.get("host", "")
        auth = parse_auth(headers.get("authorization", ""))
        service = auth[3] if auth else None
        operation = None
        ctype = headers.get("content-type", "")
        if "x-amz-target" in headers:
            operation = headers["x-amz-target"].rpartition(".")[2]
        elif ctype.startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            operation = form.get("Action")
            if service is None and operation == "AssumeRoleWithWebIdentity":
                service = "sts"
        if operation is None:
            operation = f"{self.command} {urlsplit(path).path}"
        ok = bool(auth) and verify(self.command, host, path, headers, body, auth)
        unsigned_ok = auth is None and operation == "AssumeRoleWithWebIdentity"
        with LOCK:
            STATE["requests"] += 1
            entry = {"seq": len(STATE["log"]) + 1, "service": service, "operation": operation,
                     "region": auth[2] if auth else None, "access_key": auth[0] if auth else None,
                     "token": headers.get("x-amz-security-token"), "signed": bool(auth),
                     "signature_ok": ok or unsigned_ok, "method": self.command, "path": path,
                     "body": body.decode("latin-1"), "connection": id(self.connection),
                     "headers": {k: v for k, v in headers.items() if k != "authorization"}}
            STATE["log"].append(entry)
            step = None
            q = STATE["queues"].get(f"{service}.{operation}")
            if q and (ok or unsigned_ok):
                step = q.pop(0) if len(q) > 1 else q[0]
        if not (ok or unsigned_ok):
            return self.send(403, _query_error("SignatureDoesNotMatch", "The request signature "
                                               "we calculated does not match the signature you "
                                               "provided."))
        if step is None:
            return self.send(400, _query_error("InvalidAction", f"no recorded answer for "
                                               f"{service}.{operation}"))
        if isinstance(step, str):
            step = RECORDED[step]
        elif "recorded" in step:
            step = dict(RECORDED[step["recorded"]], **{k: v for k, v in step.items()
                                                       if k != "recorded"})
        if step.get("delay_ms"):
            time.sleep(step["delay_ms"] / 1000.0)
            touch()
        hs = dict(step.get("headers") or {})
        rid = re.search(r"<RequestId>([^<]+)</RequestId>", step.get("body", ""))
        hs.setdefault("x-amzn-RequestId", rid.group(1) if rid else "4b1c7e0a-5d3f-4f8e-9b6a-0c2d4e6f8a1b")
        self.send(step.get("status", 200), step.get("body", ""), hs)

    def control(self, path, body):
        if path == "/__script" and self.command == "POST":
            doc = json.loads(body or b"{}")
            for steps in doc.values():
                for s in steps:
                    if isinstance(s, str) and s not in RECORDED:
                        return self.send_json({"error": f"unknown recording {s}"}, 400)
            with LOCK:
                STATE["queues"].update({k: list(v) for k, v in doc.items()})
            return self.send_json({"ok": True})
        if path == "/__log":
            with LOCK:
                return self.send_json(STATE["log"])
        if path == "/__reset":
            with LOCK:
                STATE["queues"].clear()
                STATE["log"].clear()
            return self.send_json({"ok": True})
        if path == "/__stats":
            with LOCK:
                return self.send_json({"connections": STATE["connections"],
                                       "requests": STATE["requests"]})
        if path == "/__keys" and self.command == "POST":
            KEYS.update(json.loads(body or b"{}"))
            return self.send_json({"ok": True})
        if path == "/__shutdown":
            self.send_json({"ok": True})
            self.wfile.flush()
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return None
        return self.send_json({"error": "unknown control path"}, 404)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def get_request(self):
        sock, addr = super().get_request()
        with LOCK:
            STATE["connections"] += 1
        return sock, addr

    def handle_error(self, request, client_address):
        pass


def watchdog(idle, parent):
    while True:
        time.sleep(0.2)
        with LOCK:
            quiet = time.monotonic() - STATE["last"]
        if quiet > idle or os.getppid() != parent:
            os._exit(0)


def main(argv):
    idle = 60.0
    if len(argv) == 3 and argv[1] == "--idle":
        idle = float(argv[2])
    elif len(argv) != 1:
        sys.stderr.write("usage: awsrecorder.py [--idle SECONDS]\n")
        return 2
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=watchdog, args=(idle, os.getppid()), daemon=True).start()
    sys.stdout.write("PORT %d\nPID %d\n" % (server.server_address[1], os.getpid()))
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.2)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
