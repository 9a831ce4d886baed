#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses: seed.py OUTDIR [SHARED].

OUTDIR/<harness>/ gets one file per seed, taken from the repository's test
data (tests/, scripts/), from SHARED (default ../shared: SigV4 vectors,
protocol test suites, mu examples, a sample of the CloudFormation schemas)
and from the small hand-written cases below.  Nothing from SHARED is ever
committed: the corpora live in the build directory.  Seeds are named by a
hash of their content, so re-running is idempotent; files over MAX bytes
are skipped (libFuzzer's -max_len is derived from the seeds).
"""
import glob
import hashlib
import json
import os
import sys

MAX = 32 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def put(out, harness, data, counts):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX:
        return
    d = os.path.join(out, harness)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    path = os.path.join(d, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
        counts[harness] = counts.get(harness, 0) + 1


def files(*patterns):
    seen = set()
    for p in patterns:
        for f in sorted(glob.glob(p, recursive=True)):
            if os.path.isfile(f) and f not in seen:
                seen.add(f)
                yield f


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------- hand-written

JSON_CASES = [
    "null", "true", "0", "-0.0", "1e308", "9223372036854775807", "-9223372036854775808",
    "0.1", "[]", "{}", '""', '"\\u0000\\ud83d\\ude00"', '{"a":[1,{"b":null}],"a":2}',
    "[" * 50 + "]" * 50, '{"Resources":{"X":{"Type":"AWS::S3::Bucket"}}}',
]

YAML_CASES = [
    "", "~", "a: 1\nb: [1, 2]\n", "- &a {x: 1}\n- *a\n- <<: *a\n  y: 2\n",
    "k: !Ref Foo\nj: !GetAtt A.B.C\ns: !Sub '${X}'\n", "--- 1\n--- 2\n",
    "x: .inf\ny: -.Inf\nz: .nan\nw: 0x1F\nv: 0o17\nu: 0123\n", "? [a]\n: b\n",
    "namespace: fuzz\nenvironments:\n  - name: dev\n    provider: ecs-fargate\n"
    "service:\n  name: web\n  port: 8080\n  pathPatterns: ['/*']\n",
]

XML_CASES = [
    "<a/>", '<?xml version="1.0" encoding="UTF-8"?><a x="1">t<b>&amp;&#x41;</b><![CDATA[c]]></a>',
    '<?xml version="1.0" encoding="ISO-8859-1"?><a>\xe9</a>',
    "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
    '<Error><Code>Throttling</Code><Message>slow down</Message></Error>',
]

CONFIG_CASES = [
    "[default]\nregion = us-east-1\noutput=json\n",
    "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = default\n"
    "s3 =\n  addressing_style = path\n  max_concurrent_requests=4\n",
    "\ufeff[DEFAULT]\nregion: eu-west-1\n[sso-session s]\nsso_start_url = https://x\n"
    "[services 'my svc']\ndynamodb =\n  endpoint_url = http://localhost:8000\n",
    "[default]\naws_access_key_id = AKID\naws_secret_access_key = secret\n"
    "aws_session_token = tok\n  continued\n\n  more\n# comment\n; other\n",
    "[profile \"quoted name\"]\nx=1\r\n[ a ]\r\ny = 2 # not a comment\r",
]

CLI_CASES = [
    [], ["--help"], ["--version"], ["version"], ["help", "synth"], ["-e", "print(1)"], ["-v"],
    ["synth", "-c", "lumu.lua", "-o", "out"], ["synth", "--output=out", "--", "-x"],
    ["validate", "--config-only"], ["nag", "--format", "sarif", "t.json"],
    ["aws", "cloudformation", "describe-stacks", "--json-args", "{}"],
    ["env", "up", "dev", "--dryrun"], ["svc", "deploy", "dev", "-t", "v1"],
    ["-n", "ns", "env", "list"], ["--namespace=ns", "svc", "show"], ["db", "up", "-A"],
    ["pipeline", "up", "--token", "x"], ["catalog", "up"], ["diff", "-e", "dev"],
    ["up", "--yes"], ["purge", "--yes"], ["init", "--mu", "-P", "80"], ["completion", "bash"],
    ["metrics", "--days", "30"], ["test", "spec"], ["synth", "--bogus"], ["sinth"],
    ["env", "upp"], ["run", "x.lua"], ["-"], ["--debug", "version"], ["--no-color", "help"],
]

SIGV4_FLAGS = [0, 1, 2, 4, 8, 16 | 4, 32, 1 | 2 | 8]


# ---------------------------------------------------------------- per harness

def seed_json(out, shared, c):
    for s in JSON_CASES:
        put(out, "json", s, c)
    for f in files(ROOT + "/tests/**/*.json", ROOT + "/scripts/**/*.json"):
        put(out, "json", read(f), c)
    schemas = sorted(glob.glob(shared + "/cfn/schemas/*.json"))
    for f in schemas[:: max(1, len(schemas) // 60)]:  # a spread of ~60 schemas
        put(out, "json", read(f), c)


def seed_yaml(out, shared, c):
    for s in YAML_CASES:
        put(out, "yaml", s, c)
    for f in files(ROOT + "/scripts/**/*.yml", ROOT + "/tests/**/*.yml", ROOT + "/tests/**/*.yaml",
                   shared + "/corpus/**/*.yml", shared + "/corpus/**/*.yaml"):
        put(out, "yaml", read(f), c)


def seed_xml(out, shared, c):
    for s in XML_CASES:
        put(out, "xml", s.encode("latin-1") if "ISO-8859-1" in s else s, c)
    for f in files(ROOT + "/tests/**/*.xml"):
        put(out, "xml", read(f), c)
    for proto in ("query", "ec2", "rest-xml"):
        for body, _ in vector_responses(shared, proto):
            if body.lstrip().startswith("<"):
                put(out, "xml", body, c)


def seed_nag(out, shared, c):
    for f in files(ROOT + "/tests/fixtures/nag/**/*", ROOT + "/tests/fixtures/cfn/*.json",
                   ROOT + "/tests/fixtures/cfn/*.yaml", ROOT + "/tests/golden/**/*.json",
                   ROOT + "/tests/golden/**/*.yaml", ROOT + "/tests/golden/**/*.yml"):
        data = read(f)
        if b"Resources" in data:
            put(out, "nag", data, c)


def seed_cli(out, shared, c):
    for args in CLI_CASES:
        put(out, "cli", "\0".join(args), c)


def seed_awsconfig(out, shared, c):
    for s in CONFIG_CASES:
        put(out, "awsconfig", s, c)
    for f in files(ROOT + "/tests/fixtures/**/config", ROOT + "/tests/fixtures/**/credentials",
                   ROOT + "/tests/fixtures/**/*.ini"):
        put(out, "awsconfig", read(f), c)


def vector_responses(shared, proto):
    """(body, headers) of the response cases of a botocore protocol suite."""
    path = os.path.join(shared, "vectors/protocols/output", proto + ".json")
    if not os.path.exists(path):
        return
    for suite in json.load(open(path)):
        for case in suite.get("cases", []):
            r = case.get("response") or {}
            body = r.get("body")
            if isinstance(body, str):
                yield body, r.get("headers") or {}


# fuzz_codec's operation table: index -> protocol family (keep in step with
# s_ops in fuzz_codec.c)
CODEC_OPS = ["query"] * 5 + ["ec2"] * 2 + ["json"] * 6 + ["rest-json"] * 4 + ["rest-xml"] * 7
CODEC_FAMILY = {"query": ("query",), "ec2": ("ec2",), "json": ("json", "json_1_0"),
                "rest-json": ("rest-json",), "rest-xml": ("rest-xml",)}
STATUS_200, STATUS_400, STATUS_500 = 0, 8, 14  # indexes into s_status


def codec_input(op, status, headers, body):
    head = "".join("%s: %s\n" % (k, v) for k, v in headers.items())
    data = bytes([op, status]) + (head + "\n" if head else "").encode() + body.encode()
    return data


def seed_codec(out, shared, c):
    seed_codec_models(out, c)
    fixture = os.path.join(ROOT, "tests/fixtures/xml/describe_stacks.xml")
    if os.path.exists(fixture):
        put(out, "codec", bytes([0, STATUS_200]) + read(fixture), c)
    errors = {
        "xml": '<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code>'
               '<Message>Stack x does not exist</Message></Error><RequestId>r-1</RequestId>'
               '</ErrorResponse>',
        "json": '{"__type":"com.amazonaws#ResourceNotFoundException","message":"no"}',
    }
    for op, fam in enumerate(CODEC_OPS):
        kind = "json" if "json" in fam else "xml"
        put(out, "codec", codec_input(op, STATUS_400, {"x-amzn-RequestId": "r-1"}, errors[kind]), c)
        put(out, "codec", codec_input(op, STATUS_500, {}, ""), c)
        n = 0
        for proto in CODEC_FAMILY[fam]:
            for body, headers in vector_responses(shared, proto):
                put(out, "codec", codec_input(op, STATUS_200, headers, body), c)
                n += 1
                if n >= 40:
                    break


# ---------------------------------------------------------------- codec: model-driven

def botocore_dir():
    d = os.environ.get("LUMU_BOTOCORE_DATA")
    if d:
        return d
    d = "/usr/lib/python3/dist-packages/botocore/data"
    if os.path.isdir(d):
        return d
    try:
        import botocore  # noqa: the same fallback as CMakeLists.txt
        return os.path.join(os.path.dirname(botocore.__file__), "data")
    except ImportError:
        return None


def load_model(bc, service):
    import gzip
    paths = sorted(glob.glob(os.path.join(bc, service, "*", "service-2.json*")))
    if not paths:
        return None
    p = paths[-1]
    with (gzip.open(p) if p.endswith(".gz") else open(p, "rb")) as f:
        return json.load(f)


def codec_ops():
    """(service, operation) pairs of s_ops in fuzz_codec.c, in order."""
    import re
    src = read(os.path.join(ROOT, "tests/fuzz/fuzz_codec.c")).decode()
    table = src[src.index("s_ops[] = {"):src.index("};", src.index("s_ops[] = {"))]
    return re.findall(r'\{"([\w-]+)", "(\w+)"\}', table)


TS = 1398796238  # 2014-04-29T18:30:38Z
TS_ISO = "2014-04-29T18:30:38Z"
TS_RFC822 = "Tue, 29 Apr 2014 18:30:38 GMT"
LOCATED = ("header", "headers", "statusCode", "uri", "querystring")


class Gen:
    """A response with every member set, for one operation of a model."""

    def __init__(self, model, words):
        self.m = model
        self.shapes = model["shapes"]
        self.proto = model["metadata"]["protocol"]
        self.words = words  # names for the libFuzzer dictionary

    def shape(self, ref):
        return self.shapes[ref["shape"]]

    def scalar(self, ref, where):
        s = self.shape(ref)
        t = s["type"]
        if t in ("string", "character"):
            if s.get("enum"):
                self.words.update(s["enum"][:20])
                return s["enum"][0]
            return "value"
        if t in ("integer", "long", "short", "byte"):
            return 7
        if t in ("float", "double"):
            return 1.5
        if t == "boolean":
            return True
        if t == "timestamp":
            fmt = ref.get("timestampFormat") or s.get("timestampFormat")
            if not fmt:
                fmt = {"header": "rfc822", "json": "unixTimestamp"}.get(where, "iso8601")
            return {"iso8601": TS_ISO, "rfc822": TS_RFC822, "unixTimestamp": TS}[fmt]
        if t == "blob":
            import base64
            return base64.b64encode(b"hello blob").decode()
        return "x"

    # -- JSON
    def to_json(self, ref, depth=0):
        s = self.shape(ref)
        t = s["type"]
        if t == "structure":
            if depth > 5:
                return None
            out = {}
            for name, mref in s.get("members", {}).items():
                if mref.get("location") in LOCATED:
                    continue
                key = mref.get("locationName", name)
                self.words.add(key)
                v = self.to_json(mref, depth + 1)
                if v is not None:
                    out[key] = v
                if s.get("union"):
                    break
            return out
        if t == "list":
            v = self.to_json(s["member"], depth + 1)
            return [] if v is None else [v, v]
        if t == "map":
            v = self.to_json(s["value"], depth + 1)
            return {} if v is None else {"k1": v, "k2": v}
        if s.get("document"):
            return {"any": [1, "two", None]}
        return self.scalar(ref, "json")

    # -- XML
    def to_xml(self, ref, name, depth=0):
        s = self.shape(ref)
        t = s["type"]
        self.words.add(name)
        if t == "structure":
            if depth > 5:
                return ""
            inner = "".join(self.members_xml(s, depth))
            return "<%s>%s</%s>" % (name, inner, name)
        if t == "list":
            m = s["member"]
            flat = ref.get("flattened") or s.get("flattened")
            if flat:
                item = m.get("locationName", name)
                return self.to_xml(m, item, depth + 1) * 2
            item = m.get("locationName", "member")
            return "<%s>%s</%s>" % (name, self.to_xml(m, item, depth + 1) * 2, name)
        if t == "map":
            k = s["key"].get("locationName", "key")
            v = s["value"].get("locationName", "value")
            pair = "<%s>k1</%s>%s" % (k, k, self.to_xml(s["value"], v, depth + 1))
            if ref.get("flattened") or s.get("flattened"):
                return "<%s>%s</%s>" % (name, pair, name)
            return "<%s><entry>%s</entry></%s>" % (name, pair, name)
        v = self.scalar(ref, "xml")
        if v is True:
            v = "true"
        return "<%s>%s</%s>" % (name, v, name)

    def members_xml(self, s, depth):
        for name, mref in s.get("members", {}).items():
            if mref.get("location") in LOCATED or mref.get("xmlAttribute"):
                continue
            yield self.to_xml(mref, mref.get("locationName", name), depth + 1)

    # -- headers of rest protocols
    def headers(self, out_shape):
        h = {}
        for name, mref in out_shape.get("members", {}).items():
            loc = mref.get("location")
            if loc == "header":
                v = self.scalar(mref, "header")
                if mref.get("jsonvalue"):
                    import base64
                    v = base64.b64encode(b'{"a":[1,2]}').decode()
                h[mref.get("locationName", name)] = "true" if v is True else v
                self.words.add(mref.get("locationName", name))
            elif loc == "headers":
                h[mref.get("locationName", "") + "k1"] = "v1"
        return h

    def success(self, op):
        """(headers, body) of a successful response."""
        ref = op.get("output")
        name = op["name"]
        if not ref:
            return {}, ""
        s = self.shape(ref)
        if self.proto in ("json", "rest-json"):
            hdrs = self.headers(s) if self.proto == "rest-json" else {}
            pname = s.get("payload")
            if pname:
                pref = s["members"][pname]
                ps = self.shape(pref)
                if ps["type"] != "structure":
                    return hdrs, "raw payload bytes"
                return hdrs, json.dumps(self.to_json(pref))
            return hdrs, json.dumps(self.to_json(ref))
        if self.proto == "query":
            wrapper = ref.get("resultWrapper", name + "Result")
            inner = "".join(self.members_xml(s, 0))
            return {}, ('<%sResponse xmlns="https://example.com/doc/"><%s>%s</%s><ResponseMetadata>'
                        '<RequestId>req-1</RequestId></ResponseMetadata></%sResponse>'
                        % (name, wrapper, inner, wrapper, name))
        if self.proto == "ec2":
            inner = "".join(self.members_xml(s, 0))
            return {}, ('<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                        '<requestId>req-1</requestId>%s</%sResponse>' % (name, inner, name))
        # rest-xml
        hdrs = self.headers(s)
        pname = s.get("payload")
        if pname:
            pref = s["members"][pname]
            ps = self.shape(pref)
            if ps.get("eventstream"):
                return hdrs, None  # see eventstream()
            if ps["type"] != "structure":
                return hdrs, "raw payload bytes"
            root = pref.get("locationName") or ps.get("locationName") or pref["shape"]
            return hdrs, self.to_xml(pref, root)
        root = s.get("locationName") or ref["shape"]
        return hdrs, self.to_xml(ref, root)

    def error(self, eref):
        """(status index, headers, body) of a modeled error."""
        es = self.shape(eref)
        code = es.get("error", {}).get("code") or eref["shape"]
        status = es.get("error", {}).get("httpStatusCode", 400)
        sidx = STATUS_500 if status >= 500 else STATUS_400
        self.words.add(code)
        if self.proto in ("json", "rest-json"):
            body = self.to_json(eref)
            body["message"] = "it failed"
            if self.proto == "json":
                body["__type"] = "com.amazonaws.svc#" + code
                return sidx, {}, json.dumps(body)
            return sidx, {"x-amzn-ErrorType": code + ":http://internal/"}, json.dumps(body)
        inner = "".join(self.members_xml(es, 0))
        if self.proto == "ec2":
            return sidx, {}, ("<Response><Errors><Error><Code>%s</Code><Message>it failed</Message>%s"
                              "</Error></Errors><RequestID>req-1</RequestID></Response>" % (code, inner))
        if self.proto == "query":
            return sidx, {}, ("<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>it failed"
                              "</Message>%s</Error><RequestId>req-1</RequestId></ErrorResponse>"
                              % (code, inner))
        return sidx, {"x-amz-request-id": "req-1"}, ("<Error><Code>%s</Code><Message>it failed</Message>%s"
                                                    "<RequestId>req-1</RequestId></Error>" % (code, inner))


def eventstream_frame(headers, payload):
    """One application/vnd.amazon.eventstream message."""
    import struct
    import zlib
    hb = b""
    for k, v in headers:
        kb, vb = k.encode(), v.encode()
        hb += bytes([len(kb)]) + kb + bytes([7]) + struct.pack(">H", len(vb)) + vb
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xffffffff)
    msg = prelude + hb + payload
    return msg + struct.pack(">I", zlib.crc32(msg) & 0xffffffff)


def eventstream_bodies():
    """An S3 SelectObjectContent stream, and the same ending in an exception."""
    def ev(t, ct, p):
        return eventstream_frame([(":message-type", "event"), (":event-type", t), (":content-type", ct)], p)
    events = (ev("Records", "application/octet-stream", b"a,b\n1,2\n")
              + ev("Stats", "text/xml", b"<Stats><BytesScanned>10</BytesScanned>"
                   b"<BytesProcessed>10</BytesProcessed><BytesReturned>8</BytesReturned></Stats>")
              + ev("Progress", "text/xml", b"<Progress><BytesScanned>5</BytesScanned></Progress>")
              + ev("Cont", "", b"") + ev("End", "", b""))
    exc = eventstream_frame([(":message-type", "exception"), (":exception-type", "InternalError"),
                             (":content-type", "text/xml")], b"<Message>boom</Message>")
    return [events, events + exc]


def seed_codec_models(out, c):
    bc = botocore_dir()
    if not bc:
        print("seed: codec: no botocore data; model-driven seeds skipped", file=sys.stderr)
        return
    words = set()
    models = {}
    for i, (svc, opname) in enumerate(codec_ops()):
        if svc not in models:
            models[svc] = load_model(bc, svc)
        m = models[svc]
        if not m or opname not in m["operations"]:
            continue
        g = Gen(m, words)
        op = m["operations"][opname]
        hdrs, body = g.success(op)
        if body is None:
            for b in eventstream_bodies():
                put(out, "codec", bytes([i, STATUS_200]) + b, c)
        else:
            put(out, "codec", codec_input(i, STATUS_200, hdrs, body), c)
            put(out, "codec", codec_input(i, STATUS_200, {}, body), c)
        for eref in op.get("errors", [])[:3]:
            sidx, eh, eb = g.error(eref)
            put(out, "codec", codec_input(i, sidx, eh, eb), c)
    # a libFuzzer dictionary: member and element names, codes, enum values
    with open(os.path.join(out, "codec.dict"), "w") as f:
        for w in sorted(words):
            if w and len(w) < 64:
                esc = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "\\x%02x" % ord(ch)
                              for ch in w)
                f.write('"%s"\n' % esc)
                f.write('"<%s>"\n' % esc)
                f.write('"\\"%s\\":"\n' % esc)


def parse_request_txt(text):
    """(method, path, query, [(name, value)], body) of a vector's request.txt."""
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    first = lines[0]
    method, _, rest = first.partition(" ")
    target = rest.rsplit(" ", 1)[0] if rest.endswith("HTTP/1.1") else rest
    path, _, query = target.partition("?")
    headers = []
    for line in lines[1:]:
        if ":" in line and not line.startswith((" ", "\t")):
            k, _, v = line.partition(":")
            headers.append((k, v))
        elif headers:  # folded (multi-line) value
            headers[-1] = (headers[-1][0], headers[-1][1] + "\n" + line)
    return method, path, query, headers, body


def seed_sigv4(out, shared, c):
    reqs = list(files(shared + "/vectors/sigv4/*/*.req", shared + "/vectors/sigv4-crt/v4/*/request.txt"))
    for i, f in enumerate(reqs):
        method, path, query, headers, body = parse_request_txt(read(f).decode("utf-8", "replace"))
        # header values keep their newlines only through the ":" split: one line each
        hl = "".join("%s:%s\n" % (k, v.replace("\n", " ")) for k, v in headers)
        text = "%s\n%s\n%s\n%s\n%s" % (method, path, query, hl, body)
        put(out, "sigv4", bytes([SIGV4_FLAGS[i % len(SIGV4_FLAGS)]]) + text.encode(), c)
    put(out, "sigv4", bytes([0xc0]) + b"GET\n/\n\nHost:example.amazonaws.com\n\n", c)


SEEDERS = {"json": seed_json, "yaml": seed_yaml, "xml": seed_xml, "nag": seed_nag,
           "cli": seed_cli, "awsconfig": seed_awsconfig, "codec": seed_codec,
           "sigv4": seed_sigv4}


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: seed.py OUTDIR [SHARED] [harness...]")
    out = sys.argv[1]
    shared = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else os.path.join(ROOT, "..", "shared")
    which = sys.argv[3:] or sorted(SEEDERS)
    counts = {}
    for h in which:
        SEEDERS[h](out, shared, counts)
        n = len(os.listdir(os.path.join(out, h))) if os.path.isdir(os.path.join(out, h)) else 0
        print("seed: %-10s %4d files (%d new)" % (h, n, counts.get(h, 0)))


if __name__ == "__main__":
    main()
