"""Tests of tests/support/fakeaws (python3 -m unittest tests.support.fakeaws_test,
or python3 tests/support/fakeaws_test.py).

The server runs as a real subprocess on 127.0.0.1 and is driven by
botocore clients (no boto3), so every assertion about member names,
error codes and wire formats is checked by botocore's own parsers.
The server runs with FAKEAWS_STRICT=1: a result member the model does not
know becomes a 500, which these tests would notice.
"""
import base64
import hashlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import botocore
import botocore.parsers
import botocore.session
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
GOLDEN = os.path.join(ROOT, "tests", "golden", "example")
SESSION = botocore.session.get_session()


class Fake:
    """One fakeaws server process."""

    def __init__(self, *args, script=False):
        env = dict(os.environ, FAKEAWS_STRICT="1")
        for k in list(env):
            if k.startswith("AWS_") or k.endswith("_proxy") or k.endswith("_PROXY"):
                del env[k]
        cmd = [sys.executable, "-m", "tests.support.fakeaws"] if not script else \
            [sys.executable, os.path.join(HERE, "fakeaws")]
        self.proc = subprocess.Popen(cmd + ["--port", "0", "--idle", "60"] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError("fakeaws did not start: " + line + self.proc.stderr.read().decode())
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.clients = {}

    def client(self, service, region="us-east-1", key=KEY, secret=SECRET, token=None,
               retries=0, fresh=False, **cfg):
        cache_key = (service, region, key, secret, token, retries, repr(sorted(cfg.items())))
        if not fresh and cache_key in self.clients:
            return self.clients[cache_key]
        config = Config(retries={"max_attempts": retries}, connect_timeout=5,
                        read_timeout=cfg.pop("read_timeout", 10), **cfg)
        c = SESSION.create_client(service, region_name=region, endpoint_url=self.url,
                                  aws_access_key_id=key, aws_secret_access_key=secret,
                                  aws_session_token=token, config=config)
        if not fresh:
            self.clients[cache_key] = c
        return c

    def control(self, path, body=None, method=None):
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        req = urllib.request.Request(self.url + "/__fake/" + path, data=data,
                                     method=method or ("POST" if data is not None else "GET"))
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return {"status": e.code, **json.loads(e.read())}

    def stop(self):
        for c in self.clients.values():
            getattr(c, "close", lambda: None)()
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


FAKE = None


def setUpModule():
    global FAKE
    FAKE = Fake()


def tearDownModule():
    FAKE.stop()


def raw(fake, method, path, service="sts", region="us-east-1", body=b"", headers=None,
        key=KEY, secret=SECRET, token=None, amz_date=None, content_sha=None, sign=True,
        tamper=None):
    """A request signed by hand with botocore.auth pieces (so the date, the
    payload hash and the bytes on the wire can be controlled)."""
    host = f"127.0.0.1:{fake.port}"
    req = AWSRequest(method=method, url=fake.url + path, data=body, headers=dict(headers or {}))
    req.headers["Host"] = host
    if sign:
        amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        req.context["timestamp"] = amz_date
        req.headers["X-Amz-Date"] = amz_date
        if token:
            req.headers["X-Amz-Security-Token"] = token
        if content_sha:
            req.headers["X-Amz-Content-SHA256"] = content_sha
        auth = (S3SigV4Auth if service == "s3" else SigV4Auth)(Credentials(key, secret, token),
                                                                service, region)
        cr = auth.canonical_request(req)
        sig = auth.signature(auth.string_to_sign(req, cr), req)
        signed = auth.signed_headers(auth.headers_to_sign(req))
        req.headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={key}/{amz_date[:8]}/"
                                        f"{region}/{service}/aws4_request, SignedHeaders={signed}, "
                                        f"Signature={sig}")
        raw.auth, raw.req = auth, req
    if tamper:
        body = tamper(body)
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=dict(req.headers.items()))
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def err(call, *a, **kw):
    try:
        call(*a, **kw)
    except ClientError as e:
        return e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"], \
            e.response["Error"].get("Message", "")
    raise AssertionError("no error raised")


def wait_stack(cfn, name, done=None, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        st = cfn.describe_stacks(StackName=name)["Stacks"][0]
        s = st["StackStatus"]
        if (done and s in done) or (not done and not s.endswith("_IN_PROGRESS")):
            return st
        time.sleep(0.02)
    raise AssertionError(f"stack {name} still {s}")


def events(cfn, name):
    out, token = [], None
    while True:
        kw = {"StackName": name}
        if token:
            kw["NextToken"] = token
        r = cfn.describe_stack_events(**kw)
        out += r["StackEvents"]
        token = r.get("NextToken")
        if not token:
            return list(reversed(out))  # oldest first


def jwt(claims):
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return enc({"alg": "RS256"}) + "." + enc(claims) + ".c2ln"


class Base(unittest.TestCase):
    def setUp(self):
        FAKE.control("reset", {})
        FAKE.control("config", {"resource_ms": 20, "changeset_ms": 20, "ecs_stabilize_ms": 150,
                                "task_run_ms": 150, "time_scale": 1.0})
        self.fake = FAKE

    def c(self, service, **kw):
        return self.fake.client(service, **kw)


# ============================================================== STS / SigV4

class AuthTests(Base):
    def test_get_caller_identity_default_key(self):
        r = self.c("sts").get_caller_identity()
        self.assertEqual(r["Account"], "123456789012")
        self.assertEqual(r["Arn"], "arn:aws:iam::123456789012:user/fakeaws")

    def test_assume_role_keys_work_and_calls_are_attributed(self):
        r = self.c("sts").assume_role(RoleArn="arn:aws:iam::210987654321:role/deploy",
                                      RoleSessionName="lumu-test", DurationSeconds=900)
        cr = r["Credentials"]
        self.assertTrue(cr["AccessKeyId"].startswith("ASIA"))
        self.assertEqual(r["AssumedRoleUser"]["Arn"],
                         "arn:aws:sts::210987654321:assumed-role/deploy/lumu-test")
        sts2 = self.c("sts", key=cr["AccessKeyId"], secret=cr["SecretAccessKey"],
                      token=cr["SessionToken"])
        ident = sts2.get_caller_identity()
        self.assertEqual(ident["Account"], "210987654321")
        self.assertTrue(ident["UserId"].endswith(":lumu-test"))
        ssm2 = self.c("ssm", key=cr["AccessKeyId"], secret=cr["SecretAccessKey"],
                      token=cr["SessionToken"])
        ssm2.put_parameter(Name="/x", Value="1", Type="String")
        # the parameter lives in the assumed account, not the default one
        self.assertEqual(err(self.c("ssm").get_parameter, Name="/x")[0], "ParameterNotFound")
        calls = self.fake.control("calls?service=ssm&operation=PutParameter")
        self.assertEqual(calls[-1]["account"], "210987654321")
        self.assertEqual(calls[-1]["access_key"], cr["AccessKeyId"])
        first = self.fake.control("calls?operation=AssumeRole")[-1]
        self.assertEqual((first["account"], first["access_key"]), ("123456789012", KEY))

    def test_assumed_key_needs_its_session_token(self):
        cr = self.c("sts").assume_role(RoleArn="arn:aws:iam::111111111111:role/r",
                                       RoleSessionName="sess")["Credentials"]
        bad = self.c("sts", key=cr["AccessKeyId"], secret=cr["SecretAccessKey"])
        self.assertEqual(err(bad.get_caller_identity)[:2], ("InvalidClientTokenId", 403))

    def test_assumed_credentials_expire(self):
        cr = self.c("sts").assume_role(RoleArn="arn:aws:iam::111111111111:role/r",
                                       RoleSessionName="sess", DurationSeconds=900)["Credentials"]
        kw = dict(key=cr["AccessKeyId"], secret=cr["SecretAccessKey"], token=cr["SessionToken"])
        self.c("sts", **kw).get_caller_identity()
        self.fake.control("clock", {"advance": 901})
        self.assertEqual(err(self.c("sts", **kw).get_caller_identity)[:2], ("ExpiredToken", 403))
        self.assertEqual(err(self.c("ssm", **kw).get_parameter, Name="/p")[:2],
                         ("ExpiredTokenException", 400))
        self.assertEqual(err(self.c("s3", **kw).list_buckets)[:2], ("ExpiredToken", 400))

    def test_assume_role_errors(self):
        sts = self.c("sts")
        self.assertEqual(err(sts.assume_role, RoleArn="arn:aws:iam::111111111111:role/r",
                             RoleSessionName="sess", DurationSeconds=7200)[0], "ValidationError")
        self.fake.control("config", {"deny_assume": ["*:role/forbidden"]})
        code, status, msg = err(sts.assume_role, RoleArn="arn:aws:iam::111111111111:role/forbidden",
                                RoleSessionName="sess")
        self.assertEqual((code, status), ("AccessDenied", 403))
        self.assertIn("is not authorized to perform: sts:AssumeRole", msg)

    def test_assume_role_with_web_identity_is_unsigned(self):
        sts = self.c("sts", signature_version=botocore.UNSIGNED)
        r = sts.assume_role_with_web_identity(
            RoleArn="arn:aws:iam::333333333333:role/ci", RoleSessionName="gha",
            WebIdentityToken=jwt({"sub": "repo:x/y", "aud": "sts.amazonaws.com",
                                  "iss": "https://token.actions.githubusercontent.com",
                                  "exp": time.time() + 600}))
        self.assertEqual(r["SubjectFromWebIdentityToken"], "repo:x/y")
        self.assertEqual(r["Audience"], "sts.amazonaws.com")
        cr = r["Credentials"]
        ident = self.c("sts", key=cr["AccessKeyId"], secret=cr["SecretAccessKey"],
                       token=cr["SessionToken"]).get_caller_identity()
        self.assertEqual(ident["Account"], "333333333333")
        self.assertEqual(err(sts.assume_role_with_web_identity,
                             RoleArn="arn:aws:iam::333333333333:role/ci",
                             RoleSessionName="gha", WebIdentityToken="not-a-jwt")[0],
                         "InvalidIdentityToken")
        self.assertEqual(err(sts.assume_role_with_web_identity,
                             RoleArn="arn:aws:iam::333333333333:role/ci", RoleSessionName="gha",
                             WebIdentityToken=jwt({"sub": "a", "exp": 1000}))[0],
                         "ExpiredTokenException")
        # other operations may not be unsigned
        self.assertEqual(err(sts.get_caller_identity)[:2], ("MissingAuthenticationToken", 403))

    def test_wrong_secret_gives_each_protocols_error(self):
        kw = dict(secret="not-the-secret")
        code, status, msg = err(self.c("sts", **kw).get_caller_identity)
        self.assertEqual((code, status), ("SignatureDoesNotMatch", 403))
        self.assertIn("The Canonical String for this request should have been", msg)
        self.assertEqual(err(self.c("cloudformation", **kw).list_stacks)[:2],
                         ("SignatureDoesNotMatch", 403))
        self.assertEqual(err(self.c("ssm", **kw).get_parameter, Name="/a")[:2],
                         ("InvalidSignatureException", 400))
        self.assertEqual(err(self.c("ecs", **kw).describe_clusters)[:2],
                         ("InvalidSignatureException", 400))
        self.assertEqual(err(self.c("s3", **kw).list_buckets)[:2], ("SignatureDoesNotMatch", 403))

    def test_unknown_access_key(self):
        kw = dict(key="AKIDUNKNOWN000000000")
        self.assertEqual(err(self.c("sts", **kw).get_caller_identity)[:2],
                         ("InvalidClientTokenId", 403))
        self.assertEqual(err(self.c("ssm", **kw).get_parameter, Name="/a")[:2],
                         ("UnrecognizedClientException", 400))
        self.assertEqual(err(self.c("s3", **kw).list_buckets)[:2], ("InvalidAccessKeyId", 403))

    def test_tampered_body_is_rejected(self):
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        hdr = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        status, _, out = raw(self.fake, "POST", "/", body=body, headers=hdr)
        self.assertEqual(status, 200, out)
        status, _, out = raw(self.fake, "POST", "/", body=body, headers=hdr,
                             tamper=lambda b: b.replace(b"2011", b"2012"))
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>SignatureDoesNotMatch</Code>", out)
        self.assertIn(b"<Type>Sender</Type>", out)

    def test_tampered_signed_header_is_rejected(self):
        c = self.c("ssm", fresh=True)

        def change(request, **kwargs):
            request.headers["X-Amz-Target"] = "AmazonSSM.DeleteParameter"
        c.meta.events.register("before-send.ssm.GetParameter", change)
        self.assertEqual(err(c.get_parameter, Name="/a")[0], "InvalidSignatureException")

    def test_clock_skew_is_rejected(self):
        old = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 1200))
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        status, _, out = raw(self.fake, "POST", "/", body=body, amz_date=old, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 403)
        self.assertIn(b"Signature expired", out)

    def test_missing_authentication(self):
        status, _, out = raw(self.fake, "POST", "/", body=b"Action=ListStacks&Version=2010-05-15",
                             headers={"Content-Type": "application/x-www-form-urlencoded"},
                             sign=False)
        self.assertEqual(status, 403)
        self.assertIn(b"MissingAuthenticationToken", out)

    def test_presigned_url(self):
        s3 = self.c("s3", signature_version="s3v4")
        s3.create_bucket(Bucket="presign")
        s3.put_object(Bucket="presign", Key="k.txt", Body=b"secret data")
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "presign", "Key": "k.txt"},
                                        ExpiresIn=60)
        with urllib.request.urlopen(url) as r:
            self.assertEqual(r.read(), b"secret data")
        bad = url.replace("k.txt", "other.txt")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(bad)
        self.assertEqual(cm.exception.code, 403)
        self.assertIn(b"SignatureDoesNotMatch", cm.exception.read())
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "presign", "Key": "k.txt"},
                                        ExpiresIn=1)
        time.sleep(1.1)
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(url)
        self.assertIn(b"Request has expired", cm.exception.read())

    def test_presigned_sts_get_caller_identity(self):
        url = self.c("sts").generate_presigned_url("get_caller_identity", ExpiresIn=60,
                                                   HttpMethod="GET")
        with urllib.request.urlopen(url) as r:
            self.assertIn(b"<Account>123456789012</Account>", r.read())

    def test_s3_unsigned_payload_and_hash_mismatch(self):
        s3 = self.c("s3", s3={"payload_signing_enabled": False})
        self.c("s3").create_bucket(Bucket="unsigned")
        s3.put_object(Bucket="unsigned", Key="a", Body=b"abc")
        calls = self.fake.control("calls?operation=PutObject")
        self.assertEqual(calls[-1]["status"], 200)
        self.assertEqual(self.c("s3").get_object(Bucket="unsigned", Key="a")["Body"].read(), b"abc")
        # a signed hash that does not match the body
        status, _, out = raw(self.fake, "PUT", "/unsigned/b", service="s3", body=b"hello",
                             content_sha=hashlib.sha256(b"other").hexdigest())
        self.assertEqual(status, 400)
        self.assertIn(b"XAmzContentSHA256Mismatch", out)

    def test_s3_aws_chunked_signed_upload(self):
        self.c("s3").create_bucket(Bucket="chunked")
        data = [b"a" * 70000, b"tail"]
        mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        hdr = {"Content-Encoding": "aws-chunked",
               "x-amz-decoded-content-length": str(sum(map(len, data)))}
        # sign the headers first (seed signature), then the chunks
        raw_body = []

        def body_with(seed, auth, req):
            prev, out = seed, b""
            scope = auth.credential_scope(req)
            for chunk in data + [b""]:
                sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", req.context["timestamp"], scope, prev,
                                 hashlib.sha256(b"").hexdigest(),
                                 hashlib.sha256(chunk).hexdigest()])
                sig = auth.signature(sts, req)
                out += f"{len(chunk):x};chunk-signature={sig}\r\n".encode() + chunk + b"\r\n"
                prev = sig
            return out

        def tamper(_):
            seed = raw.req.headers["Authorization"].rsplit("Signature=", 1)[1]
            raw_body.append(body_with(seed, raw.auth, raw.req))
            return raw_body[-1]
        status, _, out = raw(self.fake, "PUT", "/chunked/obj", service="s3", body=b"",
                             content_sha=mode, headers=hdr, tamper=tamper)
        self.assertEqual(status, 200, out)
        self.assertEqual(self.c("s3").get_object(Bucket="chunked", Key="obj")["Body"].read(),
                         b"".join(data))
        bad = lambda _: tamper(_).replace(b"tail", b"TAIL")
        status, _, out = raw(self.fake, "PUT", "/chunked/obj2", service="s3", body=b"",
                             content_sha=mode, headers=hdr, tamper=bad)
        self.assertEqual(status, 403)
        self.assertIn(b"SignatureDoesNotMatch", out)


# ============================================================== CloudFormation

FIVE = {
    "Parameters": {"Env": {"Type": "String", "AllowedValues": ["dev", "prod"]},
                   "Secret": {"Type": "String", "NoEcho": True, "Default": "hunter2"}},
    "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
    "Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.1.0.0/16"}},
        "Subnet": {"Type": "AWS::EC2::Subnet",
                   "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": {
                       "Fn::Select": [0, {"Fn::Cidr": ["10.1.0.0/16", 4, 8]}]},
                       "AvailabilityZone": {"Fn::Select": [1, {"Fn::GetAZs": ""}]}}},
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Group": {"Type": "AWS::EC2::SecurityGroup",
                  "Properties": {"GroupDescription": "g", "VpcId": {"Fn::GetAtt": ["Vpc", "VpcId"]}}},
        "Param": {"Type": "AWS::SSM::Parameter", "DependsOn": ["Group"],
                  "Properties": {"Type": "String", "Value": {
                      "Fn::Sub": "${Bucket}/${Subnet}/${Bucket.Arn}"}}},
        "ProdOnly": {"Type": "AWS::SNS::Topic", "Condition": "IsProd"},
    },
    "Outputs": {
        "BucketArn": {"Value": {"Fn::GetAtt": ["Bucket", "Arn"]},
                      "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-BucketArn"}}},
        "Joined": {"Value": {"Fn::Join": [",", [{"Ref": "Subnet"}, {"Ref": "AWS::Region"}]]}},
        "Az": {"Value": {"Fn::GetAtt": ["Subnet", "AvailabilityZone"]}},
        "Mode": {"Value": {"Fn::If": ["IsProd", "production", "development"]}},
        "Topic": {"Condition": "IsProd", "Value": {"Ref": "ProdOnly"}},
    },
}


def bucket_tpl(**props):
    t = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": props}},
         "Outputs": {"Name": {"Value": {"Ref": "Bucket"}}}}
    return json.dumps(t)


class StackTests(Base):
    def setUp(self):
        super().setUp()
        self.cfn = self.c("cloudformation")

    def create(self, name, tpl, **kw):
        body = tpl if isinstance(tpl, str) else json.dumps(tpl)
        self.cfn.create_stack(StackName=name, TemplateBody=body, **kw)
        return wait_stack(self.cfn, name)

    def test_five_resources_complete_in_dependency_order(self):
        st = self.create("five", FIVE, Parameters=[{"ParameterKey": "Env", "ParameterValue": "dev"}],
                         Tags=[{"Key": "team", "Value": "lumu"}])
        self.assertEqual(st["StackStatus"], "CREATE_COMPLETE")
        evs = events(self.cfn, "five")
        self.assertEqual((evs[0]["ResourceStatus"], evs[0]["ResourceStatusReason"]),
                         ("CREATE_IN_PROGRESS", "User Initiated"))
        self.assertEqual(evs[-1]["ResourceStatus"], "CREATE_COMPLETE")
        self.assertEqual(evs[-1]["LogicalResourceId"], "five")
        done = [e["LogicalResourceId"] for e in evs if e["ResourceStatus"] == "CREATE_COMPLETE"
                and e["ResourceType"] != "AWS::CloudFormation::Stack"]
        self.assertEqual(sorted(done), ["Bucket", "Group", "Param", "Subnet", "Vpc"])
        start = {e["LogicalResourceId"]: i for i, e in enumerate(evs)
                 if e["ResourceStatus"] == "CREATE_IN_PROGRESS"}
        end = {e["LogicalResourceId"]: i for i, e in enumerate(evs)
               if e["ResourceStatus"] == "CREATE_COMPLETE"}
        for a, b in (("Vpc", "Subnet"), ("Vpc", "Group"), ("Group", "Param"),
                     ("Bucket", "Param"), ("Subnet", "Param")):
            self.assertLess(end[a], start[b], f"{b} started before {a} completed")
        self.assertLess(start["Bucket"], end["Vpc"], "independent resources run in parallel")
        outs = {o["OutputKey"]: o for o in st["Outputs"]}
        res = {r["LogicalResourceId"]: r for r in
               self.cfn.describe_stack_resources(StackName="five")["StackResources"]}
        bucket = res["Bucket"]["PhysicalResourceId"]
        self.assertEqual(outs["BucketArn"]["OutputValue"], f"arn:aws:s3:::{bucket}")
        self.assertEqual(outs["BucketArn"]["ExportName"], "five-BucketArn")
        self.assertEqual(outs["Joined"]["OutputValue"],
                         res["Subnet"]["PhysicalResourceId"] + ",us-east-1")
        self.assertEqual(outs["Az"]["OutputValue"], "us-east-1b")
        self.assertEqual(outs["Mode"]["OutputValue"], "development")
        self.assertNotIn("Topic", outs)
        self.assertNotIn("ProdOnly", res)
        self.assertTrue(res["Vpc"]["PhysicalResourceId"].startswith("vpc-"))
        params = {p["ParameterKey"]: p["ParameterValue"] for p in st["Parameters"]}
        self.assertEqual(params, {"Env": "dev", "Secret": "****"})
        self.assertEqual(st["Tags"], [{"Key": "team", "Value": "lumu"}])
        self.assertFalse(st["EnableTerminationProtection"])
        # the SSM parameter resource exists in the fake SSM with the Sub value
        value = self.c("ssm").get_parameter(Name=res["Param"]["PhysicalResourceId"])
        self.assertEqual(value["Parameter"]["Value"],
                         f"{bucket}/{res['Subnet']['PhysicalResourceId']}/arn:aws:s3:::{bucket}")
        exports = self.cfn.list_exports()["Exports"]
        self.assertEqual([(e["Name"], e["Value"]) for e in exports],
                         [("five-BucketArn", f"arn:aws:s3:::{bucket}")])
        self.c("s3").head_bucket(Bucket=bucket)

    def test_get_template_validate_and_resource_listing(self):
        body = json.dumps(FIVE, indent=2)
        self.create("gt", body, Parameters=[{"ParameterKey": "Env", "ParameterValue": "prod"}])
        tb = self.cfn.get_template(StackName="gt")["TemplateBody"]
        self.assertEqual(tb if isinstance(tb, str) else json.dumps(tb, indent=2), body)
        v = self.cfn.validate_template(TemplateBody=body)
        self.assertEqual({p["ParameterKey"]: p.get("DefaultValue") for p in v["Parameters"]},
                         {"Env": None, "Secret": "hunter2"})
        self.assertTrue([p for p in v["Parameters"] if p["ParameterKey"] == "Secret"][0]["NoEcho"])
        rs = self.cfn.list_stack_resources(StackName="gt")["StackResourceSummaries"]
        self.assertIn("ProdOnly", [r["LogicalResourceId"] for r in rs])
        d = self.cfn.describe_stack_resource(StackName="gt", LogicalResourceId="Bucket")
        self.assertEqual(d["StackResourceDetail"]["ResourceStatus"], "CREATE_COMPLETE")
        outs = {o["OutputKey"]: o["OutputValue"] for o in
                self.cfn.describe_stacks(StackName="gt")["Stacks"][0]["Outputs"]}
        self.assertEqual(outs["Mode"], "production")
        self.assertTrue(outs["Topic"].startswith("arn:aws:sns:us-east-1:123456789012:"))

    def test_create_failure_rolls_back(self):
        tpl = {"Resources": {
            "Good": {"Type": "AWS::S3::Bucket"},
            "Bad": {"Type": "AWS::SNS::Topic", "DependsOn": "Good",
                    "Metadata": {"fake:fail": "Topic limit exceeded"}},
            "Never": {"Type": "AWS::SQS::Queue", "DependsOn": "Bad"}}}
        st = self.create("fails", tpl)
        self.assertEqual(st["StackStatus"], "ROLLBACK_COMPLETE")
        self.assertEqual(st["StackStatusReason"] if "StackStatusReason" in st else None, None)
        evs = events(self.cfn, "fails")
        failed = [e for e in evs if e["ResourceStatus"] == "CREATE_FAILED"]
        self.assertEqual([(e["LogicalResourceId"], e["ResourceStatusReason"]) for e in failed],
                         [("Bad", "Topic limit exceeded")])
        rb = [e for e in evs if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS"][0]
        self.assertEqual(rb["ResourceStatusReason"],
                         "The following resource(s) failed to create: [Bad]. Rollback requested "
                         "by user.")
        deleted = [e["LogicalResourceId"] for e in evs if e["ResourceStatus"] == "DELETE_COMPLETE"]
        self.assertEqual(sorted(deleted), ["Bad", "Good"])
        self.assertNotIn("Never", [e["LogicalResourceId"] for e in evs])
        self.assertEqual(self.cfn.describe_stack_resources(StackName="fails")["StackResources"], [])
        self.assertEqual(self.c("s3").list_buckets()["Buckets"], [])
        code, _, msg = err(self.cfn.update_stack, StackName="fails", TemplateBody=json.dumps(tpl))
        self.assertEqual(code, "ValidationError")
        self.assertRegex(msg, r"^Stack:arn:aws:cloudformation:us-east-1:123456789012:stack/fails/"
                              r"[0-9a-f-]+ is in ROLLBACK_COMPLETE state and can not be updated\.$")

    def test_on_failure_modes(self):
        tpl = {"Resources": {"FakeFailQueue": {"Type": "AWS::SQS::Queue"}}}
        st = self.create("keep", tpl, OnFailure="DO_NOTHING")
        self.assertEqual(st["StackStatus"], "CREATE_FAILED")
        self.assertEqual(st["StackStatusReason"],
                         "The following resource(s) failed to create: [FakeFailQueue]. ")
        self.cfn.create_stack(StackName="gone", TemplateBody=json.dumps(tpl), OnFailure="DELETE")
        self.fake.control("clock", {"advance": 5})
        code, _, msg = err(self.cfn.describe_stacks, StackName="gone")
        self.assertEqual((code, msg), ("ValidationError", "Stack with id gone does not exist"))
        deleted = self.cfn.list_stacks(StackStatusFilter=["DELETE_COMPLETE"])["StackSummaries"]
        self.assertEqual([s["StackName"] for s in deleted], ["gone"])

    def test_update_modify_add_remove(self):
        v1 = {"Resources": {"Keep": {"Type": "AWS::SNS::Topic"},
                            "Change": {"Type": "AWS::SQS::Queue",
                                       "Properties": {"VisibilityTimeout": 30}},
                            "Drop": {"Type": "AWS::S3::Bucket"}},
              "Outputs": {"Q": {"Value": {"Fn::GetAtt": ["Change", "Arn"]}}}}
        self.create("upd", v1)
        before = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in
                  self.cfn.describe_stack_resources(StackName="upd")["StackResources"]}
        v2 = json.loads(json.dumps(v1))
        del v2["Resources"]["Drop"]
        v2["Resources"]["Change"]["Properties"]["VisibilityTimeout"] = 60
        v2["Resources"]["New"] = {"Type": "AWS::Logs::LogGroup"}
        v2["Outputs"]["L"] = {"Value": {"Ref": "New"}}
        self.cfn.update_stack(StackName="upd", TemplateBody=json.dumps(v2))
        st = wait_stack(self.cfn, "upd")
        self.assertEqual(st["StackStatus"], "UPDATE_COMPLETE")
        self.assertIn("LastUpdatedTime", st)
        evs = events(self.cfn, "upd")
        kinds = [(e["LogicalResourceId"], e["ResourceStatus"]) for e in evs]
        self.assertIn(("Change", "UPDATE_COMPLETE"), kinds)
        self.assertIn(("New", "CREATE_COMPLETE"), kinds)
        cleanup = kinds.index(("upd", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"))
        self.assertGreater(kinds.index(("Drop", "DELETE_COMPLETE")), cleanup)
        self.assertNotIn(("Keep", "UPDATE_IN_PROGRESS"), kinds)
        after = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in
                 self.cfn.describe_stack_resources(StackName="upd")["StackResources"]}
        self.assertEqual(set(after), {"Keep", "Change", "New"})
        self.assertEqual(after["Change"], before["Change"])
        self.assertEqual({o["OutputKey"] for o in st["Outputs"]}, {"Q", "L"})
        code, _, msg = err(self.cfn.update_stack, StackName="upd", TemplateBody=json.dumps(v2))
        self.assertEqual((code, msg), ("ValidationError", "No updates are to be performed."))

    def test_update_failure_rolls_back(self):
        v1 = {"Resources": {"A": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 1}},
                            "B": {"Type": "AWS::SNS::Topic"}},
              "Outputs": {"D": {"Value": "one"}}}
        self.create("urb", v1)
        v2 = {"Resources": {"A": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 2}},
                            "B": {"Type": "AWS::SNS::Topic", "DependsOn": "A",
                                  "Metadata": {"fake:fail": "Invalid parameter: DisplayName"}},
                            "C": {"Type": "AWS::S3::Bucket"}},
              "Outputs": {"D": {"Value": "two"}}}
        self.cfn.update_stack(StackName="urb", TemplateBody=json.dumps(v2))
        st = wait_stack(self.cfn, "urb")
        self.assertEqual(st["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
        self.assertEqual(st["Outputs"][0]["OutputValue"], "one")
        evs = events(self.cfn, "urb")
        rb = [e for e in evs if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS"][0]
        self.assertEqual(rb["ResourceStatusReason"],
                         "The following resource(s) failed to update: [B]. ")
        self.assertIn(("urb", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"),
                      [(e["LogicalResourceId"], e["ResourceStatus"]) for e in evs])
        self.assertIn(("C", "DELETE_COMPLETE"),
                      [(e["LogicalResourceId"], e["ResourceStatus"]) for e in evs])
        tpl = self.cfn.get_template(StackName="urb")["TemplateBody"]
        tpl = tpl if isinstance(tpl, dict) else json.loads(tpl)
        self.assertEqual(tpl, v1)
        res = {r["LogicalResourceId"] for r in
               self.cfn.describe_stack_resources(StackName="urb")["StackResources"]}
        self.assertEqual(res, {"A", "B"})
        # the stack can be updated again after UPDATE_ROLLBACK_COMPLETE
        v2["Resources"]["B"].pop("Metadata")
        self.cfn.update_stack(StackName="urb", TemplateBody=json.dumps(v2))
        self.assertEqual(wait_stack(self.cfn, "urb")["StackStatus"], "UPDATE_COMPLETE")

    def test_update_rollback_failed_and_continue(self):
        v1 = {"Resources": {"A": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 1}}}}
        self.create("urf", v1)
        v2 = {"Resources": {"A": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 5},
                                  "Metadata": {"fake:fail": "boom",
                                               "fake:fail-rollback": "rollback boom"}}}}
        self.cfn.update_stack(StackName="urf", TemplateBody=json.dumps(v2))
        st = wait_stack(self.cfn, "urf")
        self.assertEqual(st["StackStatus"], "UPDATE_ROLLBACK_FAILED")
        self.assertEqual(st["StackStatusReason"], "The following resource(s) failed to update: [A]. ")
        reasons = [e.get("ResourceStatusReason") for e in events(self.cfn, "urf")
                   if e["ResourceStatus"] == "UPDATE_FAILED"]
        self.assertEqual(reasons, ["boom", "rollback boom"])
        self.assertEqual(err(self.cfn.update_stack, StackName="urf",
                             TemplateBody=json.dumps(v1))[0], "ValidationError")
        self.cfn.continue_update_rollback(StackName="urf")
        st = wait_stack(self.cfn, "urf")
        self.assertEqual(st["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
        self.assertEqual(err(self.cfn.continue_update_rollback, StackName="urf")[2],
                         "ContinueUpdateRollback cannot be called from current stack status")

    def test_cancel_update(self):
        v1 = {"Resources": {"A": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 1}}}}
        self.create("cancel", v1)
        v2 = {"Resources": {"A": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 2},
                                  "Metadata": {"fake:duration-ms": 60000}}}}
        self.cfn.update_stack(StackName="cancel", TemplateBody=json.dumps(v2))
        time.sleep(0.05)
        self.assertEqual(self.cfn.describe_stacks(StackName="cancel")["Stacks"][0]["StackStatus"],
                         "UPDATE_IN_PROGRESS")
        self.cfn.cancel_update_stack(StackName="cancel")
        st = wait_stack(self.cfn, "cancel")
        self.assertEqual(st["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
        evs = events(self.cfn, "cancel")
        self.assertIn(("A", "UPDATE_FAILED", "Resource update cancelled"),
                      [(e["LogicalResourceId"], e["ResourceStatus"],
                        e.get("ResourceStatusReason")) for e in evs])
        self.assertEqual(err(self.cfn.cancel_update_stack, StackName="cancel")[2],
                         "CancelUpdateStack cannot be called from current stack status")

    def test_termination_protection(self):
        self.create("protected", bucket_tpl(), EnableTerminationProtection=True)
        self.assertTrue(self.cfn.describe_stacks(StackName="protected")["Stacks"][0][
            "EnableTerminationProtection"])
        self.assertEqual(err(self.cfn.delete_stack, StackName="protected")[2],
                         "Stack [protected] cannot be deleted while TerminationProtection is "
                         "enabled")
        self.cfn.update_termination_protection(StackName="protected",
                                               EnableTerminationProtection=False)
        self.cfn.delete_stack(StackName="protected")
        self.fake.control("clock", {"advance": 5})
        self.assertEqual(err(self.cfn.describe_stacks, StackName="protected")[0], "ValidationError")
        # deleting a stack that does not exist is not an error
        self.cfn.delete_stack(StackName="protected")

    def test_exports_imports_and_export_in_use(self):
        prod = {"Resources": {"Vpc": {"Type": "AWS::EC2::VPC",
                                      "Properties": {"CidrBlock": "10.0.0.0/16"}}},
                "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}, "Export": {"Name": "shared-vpc"}}}}
        st = self.create("producer", prod)
        vpc = st["Outputs"][0]["OutputValue"]
        cons = {"Resources": {"Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "x", "VpcId": {"Fn::ImportValue": "shared-vpc"}}}},
            "Outputs": {"Vpc": {"Value": {"Fn::ImportValue": "shared-vpc"}}}}
        st = self.create("consumer", cons)
        self.assertEqual(st["Outputs"][0]["OutputValue"], vpc)
        self.assertEqual(self.cfn.list_imports(ExportName="shared-vpc")["Imports"], ["consumer"])
        self.cfn.delete_stack(StackName="producer")
        st = wait_stack(self.cfn, "producer")
        self.assertEqual(st["StackStatus"], "CREATE_COMPLETE")
        self.assertEqual(st["StackStatusReason"],
                         "Export shared-vpc cannot be deleted as it is in use by consumer")
        prod2 = json.loads(json.dumps(prod))
        prod2["Outputs"]["VpcId"]["Export"]["Name"] = "renamed"
        self.cfn.update_stack(StackName="producer", TemplateBody=json.dumps(prod2))
        st = wait_stack(self.cfn, "producer")
        self.assertEqual(st["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
        rb = [e for e in events(self.cfn, "producer")
              if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS"][0]
        self.assertEqual(rb["ResourceStatusReason"],
                         "Export shared-vpc cannot be deleted as it is in use by consumer")
        self.cfn.delete_stack(StackName="consumer")
        wait_stack(self.cfn, "producer")
        self.fake.control("clock", {"advance": 5})
        self.assertEqual(err(self.cfn.list_imports, ExportName="shared-vpc")[2],
                         "Export 'shared-vpc' is not imported by any stack.")
        self.cfn.delete_stack(StackName="producer")
        self.fake.control("clock", {"advance": 5})
        self.assertEqual(self.cfn.list_exports()["Exports"], [])

    def test_missing_import_fails_the_stack(self):
        tpl = {"Resources": {"T": {"Type": "AWS::SNS::Topic", "Properties": {
            "TopicName": {"Fn::ImportValue": "nowhere"}}}}}
        st = self.create("noimport", tpl)
        self.assertEqual(st["StackStatus"], "ROLLBACK_COMPLETE")
        rb = [e for e in events(self.cfn, "noimport")
              if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS"][0]
        self.assertEqual(rb["ResourceStatusReason"],
                         "No export named nowhere found. Rollback requested by user.")

    def test_pagination_of_stacks_and_events(self):
        self.fake.control("config", {"page_sizes": {"ListStacks": 2, "DescribeStackEvents": 3,
                                                    "DescribeStacks": 2}})
        for i in range(5):
            self.cfn.create_stack(StackName=f"p{i}", TemplateBody=bucket_tpl())
        names, token, pages = [], None, 0
        while True:
            r = self.cfn.list_stacks(**({"NextToken": token} if token else {}))
            pages += 1
            self.assertLessEqual(len(r["StackSummaries"]), 2)
            names += [s["StackName"] for s in r["StackSummaries"]]
            token = r.get("NextToken")
            if not token:
                break
        self.assertEqual((pages, names), (3, ["p4", "p3", "p2", "p1", "p0"]))
        wait_stack(self.cfn, "p4")
        self.cfn.delete_stack(StackName="p0")
        self.fake.control("clock", {"advance": 5})
        r = self.cfn.list_stacks(StackStatusFilter=["DELETE_COMPLETE"])
        self.assertEqual([s["StackName"] for s in r["StackSummaries"]], ["p0"])
        self.assertIn("DeletionTime", r["StackSummaries"][0])
        paginator = self.cfn.get_paginator("describe_stacks")
        self.assertEqual(sum(len(p["Stacks"]) for p in paginator.paginate()), 4)
        evs = events(self.cfn, "p1")
        self.assertEqual(len(evs), 5)
        first = self.cfn.describe_stack_events(StackName="p1")
        self.assertEqual(len(first["StackEvents"]), 3)
        self.assertEqual(first["StackEvents"][0]["ResourceStatus"], "CREATE_COMPLETE")
        self.assertEqual(first["StackEvents"][0]["LogicalResourceId"], "p1")
        ts = [e["Timestamp"] for e in reversed(evs)]
        self.assertEqual(ts, sorted(ts, reverse=True))

    def test_template_url_and_size_limits(self):
        s3 = self.c("s3")
        s3.create_bucket(Bucket="templates")
        s3.put_object(Bucket="templates", Key="dir/big.json", Body=bucket_tpl().encode())
        for url in ("https://templates.s3.amazonaws.com/dir/big.json",
                    "https://s3.us-east-1.amazonaws.com/templates/dir/big.json",
                    f"{self.fake.url}/templates/dir/big.json"):
            name = "url" + hashlib.md5(url.encode()).hexdigest()[:6]
            self.cfn.create_stack(StackName=name, TemplateURL=url)
            self.assertEqual(wait_stack(self.cfn, name)["StackStatus"], "CREATE_COMPLETE")
        self.assertEqual(err(self.cfn.create_stack, StackName="x",
                             TemplateURL="https://templates.s3.amazonaws.com/missing.json")[2],
                         "TemplateURL must reference a valid S3 object to which you have access.")
        self.assertEqual(err(self.cfn.create_stack, StackName="x",
                             TemplateURL="https://example.com/t.json")[2],
                         "TemplateURL must be a supported URL.")
        big = json.loads(bucket_tpl())
        big["Description"] = "x" * 52000
        code, _, msg = err(self.cfn.create_stack, StackName="x", TemplateBody=json.dumps(big))
        self.assertIn("Member must have length less than or equal to 51200", msg)

    def test_template_errors(self):
        cyc = {"Resources": {"A": {"Type": "AWS::SNS::Topic", "DependsOn": "B"},
                             "B": {"Type": "AWS::SNS::Topic", "Properties": {
                                 "DisplayName": {"Fn::GetAtt": ["A", "TopicName"]}}}}}
        self.assertRegex(err(self.cfn.create_stack, StackName="c", TemplateBody=json.dumps(cyc))[2],
                         r"^Circular dependency between resources: \[(A, B|B, A)\]$")
        unres = {"Resources": {"A": {"Type": "AWS::SNS::Topic",
                                     "Properties": {"DisplayName": {"Ref": "Nope"}}}}}
        self.assertEqual(err(self.cfn.create_stack, StackName="c", TemplateBody=json.dumps(unres))[2],
                         "Template format error: Unresolved resource dependencies [Nope] in the "
                         "Resources block of the template")
        self.assertEqual(err(self.cfn.validate_template, TemplateBody='{"Resources": {')[2],
                         "Template format error: JSON not well-formed. (line 1, column 16)")
        self.assertEqual(err(self.cfn.validate_template, TemplateBody='{"Resources": {}}')[2],
                         "Template format error: At least one Resources member must be defined.")
        self.assertEqual(err(self.cfn.validate_template, TemplateBody=json.dumps(
            {"Resources": {"A": {"Type": "Not::A::Type::At::All"}}}))[2],
            "Template format error: Unrecognized resource types: [Not::A::Type::At::All]")
        self.assertEqual(err(self.cfn.create_stack, StackName="bad_name",
                             TemplateBody=bucket_tpl())[0], "ValidationError")

    def test_yaml_template_with_short_tags(self):
        body = """
AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  Name: {Type: String, Default: demo}
Resources:
  Log:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub '/app/${Name}'
  Repo:
    Type: AWS::ECR::Repository
    Properties:
      RepositoryName: !Join ['-', [!Ref Name, repo]]
Outputs:
  Uri:
    Value: !GetAtt Repo.RepositoryUri
  Log:
    Value: !Ref Log
"""
        st = self.create("yaml", body)
        outs = {o["OutputKey"]: o["OutputValue"] for o in st["Outputs"]}
        self.assertEqual(outs, {"Uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/demo-repo",
                                "Log": "/app/demo"})
        repos = self.c("ecr").describe_repositories()["repositories"]
        self.assertEqual([r["repositoryName"] for r in repos], ["demo-repo"])

    def test_parameters_validation_and_ssm_types(self):
        tpl = {"Parameters": {"Env": {"Type": "String", "AllowedValues": ["a", "b"]},
                              "Ami": {"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                                      "Default": "/aws/service/ami-amazon-linux-latest/x"},
                              "Size": {"Type": "Number", "MinValue": 1, "Default": "2"},
                              "Mine": {"Type": "AWS::SSM::Parameter::Value<String>",
                                       "Default": "/app/setting"}},
               "Resources": {"T": {"Type": "AWS::SNS::Topic", "Properties": {
                   "DisplayName": {"Ref": "Mine"}}}}}
        body = json.dumps(tpl)
        self.assertEqual(err(self.cfn.create_stack, StackName="pv", TemplateBody=body)[2],
                         "Parameters: [Env] must have values")
        self.assertEqual(err(self.cfn.create_stack, StackName="pv", TemplateBody=body,
                             Parameters=[{"ParameterKey": "Env", "ParameterValue": "c"}])[2],
                         "Parameter 'Env' must be one of AllowedValues")
        self.assertEqual(err(self.cfn.create_stack, StackName="pv", TemplateBody=body,
                             Parameters=[{"ParameterKey": "Env", "ParameterValue": "a"},
                                         {"ParameterKey": "Size", "ParameterValue": "0"}])[2],
                         "Parameter 'Size' must be a number not less than 1")
        self.assertEqual(err(self.cfn.create_stack, StackName="pv", TemplateBody=body,
                             Parameters=[{"ParameterKey": "Extra", "ParameterValue": "a"}])[2],
                         "Parameters: [Extra] do not exist in the template")
        self.c("ssm").put_parameter(Name="/app/setting", Value="from-ssm", Type="String")
        st = self.create("pv", body, Parameters=[{"ParameterKey": "Env", "ParameterValue": "a"}])
        params = {p["ParameterKey"]: p for p in st["Parameters"]}
        self.assertEqual(params["Mine"]["ResolvedValue"], "from-ssm")
        self.assertTrue(params["Ami"]["ResolvedValue"].startswith("ami-"))
        # UsePreviousValue keeps the old value
        self.cfn.update_stack(StackName="pv", TemplateBody=body, Parameters=[
            {"ParameterKey": "Env", "UsePreviousValue": True},
            {"ParameterKey": "Size", "ParameterValue": "3"}])
        st = wait_stack(self.cfn, "pv")
        self.assertEqual({p["ParameterKey"]: p["ParameterValue"] for p in st["Parameters"]}["Env"],
                         "a")

    def test_capabilities(self):
        role = {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {}}}}}
        code, _, msg = err(self.cfn.create_stack, StackName="iam", TemplateBody=json.dumps(role))
        self.assertEqual((code, msg), ("InsufficientCapabilitiesException",
                                       "Requires capabilities : [CAPABILITY_IAM]"))
        role["Resources"]["R"]["Properties"]["RoleName"] = "named"
        self.assertEqual(err(self.cfn.create_stack, StackName="iam", TemplateBody=json.dumps(role),
                             Capabilities=["CAPABILITY_IAM"])[2],
                         "Requires capabilities : [CAPABILITY_NAMED_IAM]")
        st = self.create("iam", role, Capabilities=["CAPABILITY_NAMED_IAM"])
        self.assertEqual(st["Capabilities"], ["CAPABILITY_NAMED_IAM"])
        v = self.cfn.validate_template(TemplateBody=json.dumps(role))
        self.assertEqual(v["Capabilities"], ["CAPABILITY_NAMED_IAM"])
        self.assertIn("AWS::IAM::Role", v["CapabilitiesReason"])

    def test_custom_named_replacement_fails(self):
        tpl = {"Resources": {"Q": {"Type": "AWS::SQS::Queue",
                                   "Properties": {"QueueName": "jobs", "FifoQueue": False}}}}
        self.create("named", tpl)
        tpl["Resources"]["Q"]["Properties"]["FifoQueue"] = True
        self.cfn.update_stack(StackName="named", TemplateBody=json.dumps(tpl))
        st = wait_stack(self.cfn, "named")
        self.assertEqual(st["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
        reason = [e for e in events(self.cfn, "named") if e["ResourceStatus"] == "UPDATE_FAILED"][0]
        self.assertEqual(reason["ResourceStatusReason"],
                         "CloudFormation cannot update a stack when a custom-named resource "
                         "requires replacing. Rename https://sqs.us-east-1.amazonaws.com/"
                         "123456789012/jobs and update the stack again.")

    def test_replacement_gets_new_physical_id_and_cleans_up_old(self):
        self.create("repl", bucket_tpl(BucketName="first-name"))
        self.cfn.update_stack(StackName="repl", TemplateBody=bucket_tpl(BucketName="second-name"))
        st = wait_stack(self.cfn, "repl")
        self.assertEqual(st["StackStatus"], "UPDATE_COMPLETE")
        self.assertEqual(st["Outputs"][0]["OutputValue"], "second-name")
        names = [b["Name"] for b in self.c("s3").list_buckets()["Buckets"]]
        self.assertEqual(names, ["second-name"])
        evs = [(e["ResourceStatus"], e["PhysicalResourceId"]) for e in events(self.cfn, "repl")
               if e["LogicalResourceId"] == "Bucket"]
        self.assertIn(("DELETE_COMPLETE", "first-name"), evs)

    def test_stack_policy_denies_update(self):
        self.create("pol", bucket_tpl(), StackPolicyBody=json.dumps({"Statement": [
            {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "Update:Replace", "Principal": "*",
             "Resource": "LogicalResourceId/Bucket"}]}))
        self.assertIn("Update:Replace", self.cfn.get_stack_policy(StackName="pol")["StackPolicyBody"])
        self.cfn.update_stack(StackName="pol", TemplateBody=bucket_tpl(BucketName="renamed"))
        self.assertEqual(wait_stack(self.cfn, "pol")["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
        reason = [e for e in events(self.cfn, "pol") if e["ResourceStatus"] == "UPDATE_FAILED"][0]
        self.assertEqual(reason["ResourceStatusReason"],
                         "Action denied by stack policy: Statement [#2] has a Deny effect")
        self.cfn.set_stack_policy(StackName="pol", StackPolicyBody=json.dumps({"Statement": [
            {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"}]}))
        self.cfn.update_stack(StackName="pol", TemplateBody=bucket_tpl(BucketName="renamed"))
        self.assertEqual(wait_stack(self.cfn, "pol")["StackStatus"], "UPDATE_COMPLETE")

    def test_delete_non_empty_bucket_fails_then_retain(self):
        self.create("bkt", bucket_tpl(BucketName="data-bucket"))
        self.c("s3").put_object(Bucket="data-bucket", Key="k", Body=b"x")
        self.cfn.delete_stack(StackName="bkt")
        st = wait_stack(self.cfn, "bkt")
        self.assertEqual(st["StackStatus"], "DELETE_FAILED")
        self.assertEqual(st["StackStatusReason"],
                         "The following resource(s) failed to delete: [Bucket]. ")
        failed = [e for e in events(self.cfn, "bkt") if e["ResourceStatus"] == "DELETE_FAILED"][0]
        self.assertIn("The bucket you tried to delete is not empty", failed["ResourceStatusReason"])
        self.cfn.delete_stack(StackName="bkt", RetainResources=["Bucket"])
        self.fake.control("clock", {"advance": 5})
        self.assertEqual(err(self.cfn.describe_stacks, StackName="bkt")[0], "ValidationError")
        self.c("s3").head_bucket(Bucket="data-bucket")  # retained

    def test_client_request_token_makes_create_idempotent(self):
        r1 = self.cfn.create_stack(StackName="idem", TemplateBody=bucket_tpl(),
                                   ClientRequestToken="tok-1")
        r2 = self.cfn.create_stack(StackName="idem", TemplateBody=bucket_tpl(),
                                   ClientRequestToken="tok-1")
        self.assertEqual(r1["StackId"], r2["StackId"])
        code, _, msg = err(self.cfn.create_stack, StackName="idem", TemplateBody=bucket_tpl())
        self.assertEqual((code, msg), ("AlreadyExistsException", "Stack [idem] already exists"))
        wait_stack(self.cfn, "idem")
        self.assertTrue(all(e.get("ClientRequestToken") == "tok-1" for e in events(self.cfn, "idem")))

    def test_resource_fault_rule(self):
        self.fake.control("faults", {"spec": "resource:AWS::S3::Bucket:fail=Quota@1"})
        st = self.create("rf1", bucket_tpl())
        self.assertEqual(st["StackStatus"], "ROLLBACK_COMPLETE")
        self.assertIn(("Bucket", "Quota"), [(e["LogicalResourceId"], e.get("ResourceStatusReason"))
                                            for e in events(self.cfn, "rf1")])
        self.assertEqual(self.create("rf2", bucket_tpl())["StackStatus"], "CREATE_COMPLETE")

    def test_clock_advance_finishes_long_operations(self):
        tpl = {"Resources": {"Slow": {"Type": "AWS::SNS::Topic",
                                      "Metadata": {"fake:duration-ms": 3600000}}}}
        self.cfn.create_stack(StackName="slow", TemplateBody=json.dumps(tpl))
        time.sleep(0.05)
        self.assertEqual(self.cfn.describe_stacks(StackName="slow")["Stacks"][0]["StackStatus"],
                         "CREATE_IN_PROGRESS")
        self.fake.control("clock", {"advance": 3601})
        self.assertEqual(self.cfn.describe_stacks(StackName="slow")["Stacks"][0]["StackStatus"],
                         "CREATE_COMPLETE")
        # time_scale stretches every simulated duration (20 ms -> 20 s here)
        self.fake.control("config", {"time_scale": 1000})
        self.cfn.create_stack(StackName="scaled", TemplateBody=bucket_tpl())
        self.fake.control("clock", {"advance": 19})
        self.assertEqual(self.cfn.describe_stacks(StackName="scaled")["Stacks"][0]["StackStatus"],
                         "CREATE_IN_PROGRESS")
        self.fake.control("clock", {"advance": 2})
        self.assertEqual(self.cfn.describe_stacks(StackName="scaled")["Stacks"][0]["StackStatus"],
                         "CREATE_COMPLETE")


class ChangeSetTests(Base):
    def setUp(self):
        super().setUp()
        self.cfn = self.c("cloudformation")

    def wait_cs(self, name, stack):
        end = time.time() + 5
        while time.time() < end:
            cs = self.cfn.describe_change_set(ChangeSetName=name, StackName=stack)
            if cs["Status"] not in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
                return cs
            time.sleep(0.02)
        raise AssertionError("change set not ready")

    def test_create_type_change_set(self):
        r = self.cfn.create_change_set(StackName="cs-new", ChangeSetName="first",
                                       ChangeSetType="CREATE", TemplateBody=json.dumps(FIVE),
                                       Parameters=[{"ParameterKey": "Env", "ParameterValue": "dev"}])
        self.assertTrue(r["Id"].startswith("arn:aws:cloudformation:us-east-1:123456789012:"
                                           "changeSet/first/"))
        st = self.cfn.describe_stacks(StackName="cs-new")["Stacks"][0]
        self.assertEqual(st["StackStatus"], "REVIEW_IN_PROGRESS")
        cs = self.wait_cs("first", "cs-new")
        self.assertEqual((cs["Status"], cs["ExecutionStatus"]), ("CREATE_COMPLETE", "AVAILABLE"))
        self.assertEqual(sorted((c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
                                for c in cs["Changes"]),
                         [("Add", "Bucket"), ("Add", "Group"), ("Add", "Param"), ("Add", "Subnet"),
                          ("Add", "Vpc")])
        self.cfn.execute_change_set(ChangeSetName=r["Id"])
        st = wait_stack(self.cfn, "cs-new")
        self.assertEqual(st["StackStatus"], "CREATE_COMPLETE")
        self.assertEqual(st["ChangeSetId"], r["Id"])
        cs = self.cfn.describe_change_set(ChangeSetName=r["Id"])
        self.assertEqual(cs["ExecutionStatus"], "EXECUTE_COMPLETE")

    def test_update_change_set_add_modify_remove(self):
        v1 = {"Parameters": {"Retention": {"Type": "Number", "Default": "7"}},
              "Resources": {
                  "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "one",
                             "Tags": [{"Key": "a", "Value": "1"}]}},
                  "Queue": {"Type": "AWS::SQS::Queue", "Properties": {
                      "VisibilityTimeout": 30, "RedrivePolicy": {"maxReceiveCount": 3}}},
                  "Log": {"Type": "AWS::Logs::LogGroup", "Properties": {
                      "RetentionInDays": {"Ref": "Retention"}}},
                  "Param": {"Type": "AWS::SSM::Parameter", "Properties": {
                      "Type": "String", "Value": {"Ref": "Bucket"}}},
                  "Old": {"Type": "AWS::SNS::Topic"},
                  "Db": {"Type": "AWS::RDS::DBInstance", "Properties": {"AllocatedStorage": "20"}}}}
        self.cfn.create_stack(StackName="csu", TemplateBody=json.dumps(v1))
        wait_stack(self.cfn, "csu")
        v2 = json.loads(json.dumps(v1))
        v2["Resources"]["Bucket"]["Properties"]["BucketName"] = "two"
        v2["Resources"]["Queue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] = 5
        v2["Resources"]["Db"]["Properties"]["AllocatedStorage"] = "30"
        del v2["Resources"]["Old"]
        v2["Resources"]["New"] = {"Type": "AWS::SNS::Topic"}
        self.cfn.create_change_set(StackName="csu", ChangeSetName="c2", TemplateBody=json.dumps(v2),
                                   Parameters=[{"ParameterKey": "Retention",
                                                "ParameterValue": "14"}])
        cs = self.wait_cs("c2", "csu")
        ch = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in cs["Changes"]}
        self.assertEqual({k: v["Action"] for k, v in ch.items()},
                         {"Bucket": "Modify", "Queue": "Modify", "Log": "Modify", "Param": "Modify",
                          "Db": "Modify", "New": "Add", "Old": "Remove"})
        self.assertEqual(ch["Bucket"]["Replacement"], "True")
        self.assertEqual(ch["Bucket"]["PhysicalResourceId"], "one")
        d = ch["Bucket"]["Details"][0]
        self.assertEqual((d["Target"]["Attribute"], d["Target"]["Name"],
                          d["Target"]["RequiresRecreation"], d["Evaluation"], d["ChangeSource"]),
                         ("Properties", "BucketName", "Always", "Static", "DirectModification"))
        self.assertEqual(ch["Queue"]["Replacement"], "False")
        self.assertEqual(ch["Queue"]["Scope"], ["Properties"])
        if "Path" in d["Target"]:  # newer botocore models know Target.Path
            self.assertEqual(ch["Queue"]["Details"][0]["Target"]["Path"],
                             "/Properties/RedrivePolicy/maxReceiveCount")
        self.assertEqual(ch["Db"]["Replacement"], "Conditional")
        self.assertEqual((ch["Log"]["Details"][0]["ChangeSource"],
                          ch["Log"]["Details"][0].get("CausingEntity")),
                         ("ParameterReference", "Retention"))
        pd = ch["Param"]["Details"][0]
        self.assertEqual((pd["Evaluation"], pd["ChangeSource"], pd.get("CausingEntity")),
                         ("Dynamic", "ResourceReference", "Bucket"))
        self.assertEqual(ch["Param"]["Replacement"], "False")
        self.assertEqual(ch["Old"]["ResourceType"], "AWS::SNS::Topic")
        # pagination of Changes
        self.fake.control("config", {"page_sizes": {"DescribeChangeSet": 3}})
        got, token = [], None
        while True:
            page = self.cfn.describe_change_set(ChangeSetName="c2", StackName="csu",
                                                **({"NextToken": token} if token else {}))
            self.assertLessEqual(len(page["Changes"]), 3)
            got += page["Changes"]
            token = page.get("NextToken")
            if not token:
                break
        self.assertEqual(len(got), 7)
        self.cfn.execute_change_set(ChangeSetName="c2", StackName="csu")
        self.assertEqual(wait_stack(self.cfn, "csu")["StackStatus"], "UPDATE_COMPLETE")

    def test_no_changes_change_set(self):
        self.cfn.create_stack(StackName="same", TemplateBody=bucket_tpl())
        wait_stack(self.cfn, "same")
        self.cfn.create_change_set(StackName="same", ChangeSetName="noop",
                                   TemplateBody=bucket_tpl())
        cs = self.wait_cs("noop", "same")
        self.assertEqual((cs["Status"], cs["ExecutionStatus"]), ("FAILED", "UNAVAILABLE"))
        self.assertEqual(cs["StatusReason"], "The submitted information didn't contain changes. "
                                             "Submit different information to create a change set.")
        code, status, msg = err(self.cfn.execute_change_set, ChangeSetName="noop", StackName="same")
        self.assertEqual((code, status), ("InvalidChangeSetStatus", 400))
        self.assertIn("cannot be executed in its current status of [FAILED]", msg)

    def test_list_delete_and_superseded_change_sets(self):
        self.cfn.create_stack(StackName="many", TemplateBody=bucket_tpl())
        wait_stack(self.cfn, "many")
        for i in range(3):
            self.cfn.create_change_set(StackName="many", ChangeSetName=f"c{i}",
                                       TemplateBody=bucket_tpl(BucketName=f"name-{i}"))
        self.assertEqual(err(self.cfn.create_change_set, StackName="many", ChangeSetName="c0",
                             TemplateBody=bucket_tpl())[0], "AlreadyExistsException")
        names = [s["ChangeSetName"] for s in self.cfn.list_change_sets(StackName="many")["Summaries"]]
        self.assertEqual(names, ["c0", "c1", "c2"])
        self.cfn.delete_change_set(ChangeSetName="c0", StackName="many")
        code, status, msg = err(self.cfn.describe_change_set, ChangeSetName="c0", StackName="many")
        self.assertEqual((code, status, msg), ("ChangeSetNotFound", 404, "ChangeSet [c0] does not exist"))
        self.wait_cs("c1", "many")
        self.cfn.execute_change_set(ChangeSetName="c1", StackName="many")
        wait_stack(self.cfn, "many")
        names = [s["ChangeSetName"] for s in self.cfn.list_change_sets(StackName="many")["Summaries"]]
        self.assertEqual(names, ["c1"])
        self.assertEqual(self.c("s3").list_buckets()["Buckets"][0]["Name"], "name-1")

    def test_review_in_progress_stack_can_be_deleted(self):
        self.cfn.create_change_set(StackName="review", ChangeSetName="x", ChangeSetType="CREATE",
                                   TemplateBody=bucket_tpl())
        self.wait_cs("x", "review")
        self.assertEqual(err(self.cfn.create_change_set, StackName="review", ChangeSetName="y",
                             TemplateBody=bucket_tpl())[2],
                         "Stack:" + self.cfn.describe_stacks(StackName="review")["Stacks"][0][
                             "StackId"] + " is in REVIEW_IN_PROGRESS state and can not be updated.")
        self.cfn.delete_stack(StackName="review")
        self.assertEqual(err(self.cfn.describe_stacks, StackName="review")[0], "ValidationError")
        self.assertEqual(self.cfn.list_stacks(StackStatusFilter=["DELETE_COMPLETE"])[
            "StackSummaries"][0]["StackName"], "review")

    def test_change_set_for_missing_stack_and_missing_import(self):
        self.assertEqual(err(self.cfn.create_change_set, StackName="nostack", ChangeSetName="x",
                             TemplateBody=bucket_tpl())[2], "Stack [nostack] does not exist")
        tpl = {"Resources": {"T": {"Type": "AWS::SNS::Topic", "Properties": {
            "TopicName": {"Fn::ImportValue": "missing-export"}}}}}
        self.cfn.create_change_set(StackName="imp", ChangeSetName="x", ChangeSetType="CREATE",
                                   TemplateBody=json.dumps(tpl))
        cs = self.wait_cs("x", "imp")
        self.assertEqual((cs["Status"], cs["StatusReason"]),
                         ("FAILED", "No export named missing-export found."))


# ============================================================== S3

class S3Tests(Base):
    def setUp(self):
        super().setUp()
        self.s3 = self.c("s3")

    def test_bucket_settings(self):
        s3 = self.s3
        s3.create_bucket(Bucket="settings")
        s3.head_bucket(Bucket="settings")
        default = s3.get_bucket_encryption(Bucket="settings")
        self.assertEqual(default["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256")
        s3.put_bucket_encryption(Bucket="settings", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                    "KMSMasterKeyID": "alias/x"},
             "BucketKeyEnabled": True}]})
        rule = s3.get_bucket_encryption(Bucket="settings")["ServerSideEncryptionConfiguration"][
            "Rules"][0]
        self.assertEqual((rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"],
                          rule["BucketKeyEnabled"]), ("alias/x", True))
        s3.put_bucket_versioning(Bucket="settings", VersioningConfiguration={"Status": "Enabled"})
        self.assertEqual(s3.get_bucket_versioning(Bucket="settings")["Status"], "Enabled")
        s3.put_public_access_block(Bucket="settings", PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": False})
        pab = s3.get_public_access_block(Bucket="settings")["PublicAccessBlockConfiguration"]
        self.assertEqual((pab["IgnorePublicAcls"], pab["BlockPublicPolicy"]), (False, True))
        self.assertEqual(err(s3.get_bucket_policy, Bucket="settings")[:2], ("NoSuchBucketPolicy", 404))
        policy = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
        s3.put_bucket_policy(Bucket="settings", Policy=policy)
        self.assertEqual(s3.get_bucket_policy(Bucket="settings")["Policy"], policy)
        self.assertEqual(err(s3.put_bucket_policy, Bucket="settings", Policy="nope")[0],
                         "MalformedPolicy")
        r = s3.put_object(Bucket="settings", Key="v", Body=b"1")
        self.assertTrue(r["VersionId"])
        self.assertEqual(err(s3.head_bucket, Bucket="missing")[:2], ("404", 404))

    def test_create_bucket_region_rules(self):
        eu = self.c("s3", region="eu-west-1")
        code, _, msg = err(eu.create_bucket, Bucket="euro")
        self.assertEqual(code, "IllegalLocationConstraintException")
        eu.create_bucket(Bucket="euro", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        self.assertEqual(eu.get_bucket_location(Bucket="euro")["LocationConstraint"], "eu-west-1")
        self.assertEqual(err(eu.create_bucket, Bucket="euro", CreateBucketConfiguration={
            "LocationConstraint": "eu-west-1"})[:2], ("BucketAlreadyOwnedByYou", 409))
        self.assertEqual(err(self.s3.create_bucket, Bucket="xyz",
                             CreateBucketConfiguration={"LocationConstraint": "us-east-1"})[0],
                         "InvalidLocationConstraint")
        self.assertEqual(err(self.s3.create_bucket, Bucket="Bad_Name")[0], "InvalidBucketName")
        cr = self.c("sts").assume_role(RoleArn="arn:aws:iam::999999999999:role/other",
                                       RoleSessionName="other")["Credentials"]
        other = self.c("s3", key=cr["AccessKeyId"], secret=cr["SecretAccessKey"],
                       token=cr["SessionToken"])
        self.s3.create_bucket(Bucket="mine")
        self.assertEqual(err(other.create_bucket, Bucket="mine")[:2], ("BucketAlreadyExists", 409))
        self.assertEqual(err(other.get_object, Bucket="mine", Key="k")[:2], ("AccessDenied", 403))
        status, headers, out = raw(self.fake, "GET", "/euro?list-type=2", service="s3",
                                   region="us-east-1",
                                   content_sha=hashlib.sha256(b"").hexdigest())
        self.assertEqual(status, 400)
        self.assertIn(b"<Region>eu-west-1</Region>", out)
        self.assertEqual(headers["x-amz-bucket-region"], "eu-west-1")

    def test_objects(self):
        s3 = self.s3
        s3.create_bucket(Bucket="objs")
        body = b"0123456789" * 10
        r = s3.put_object(Bucket="objs", Key="dir/file.bin", Body=body, ContentType="text/plain",
                          Metadata={"owner": "lumu"}, CacheControl="no-cache")
        self.assertEqual(r["ETag"], '"' + hashlib.md5(body).hexdigest() + '"')
        h = s3.head_object(Bucket="objs", Key="dir/file.bin")
        self.assertEqual((h["ContentLength"], h["ContentType"], h["Metadata"], h["CacheControl"],
                          h["ServerSideEncryption"]),
                         (100, "text/plain", {"owner": "lumu"}, "no-cache", "AES256"))
        g = s3.get_object(Bucket="objs", Key="dir/file.bin", Range="bytes=10-19")
        self.assertEqual((g["Body"].read(), g["ContentRange"]), (b"0123456789", "bytes 10-19/100"))
        self.assertEqual(err(s3.get_object, Bucket="objs", Key="nope")[:2], ("NoSuchKey", 404))
        self.assertEqual(err(s3.head_object, Bucket="objs", Key="nope")[:2], ("404", 404))
        status, _, out = raw(self.fake, "PUT", "/objs/dir/file.bin", service="s3", body=b"x",
                             headers={"If-None-Match": "*"},
                             content_sha=hashlib.sha256(b"x").hexdigest())
        self.assertEqual(status, 412)
        self.assertIn(b"<Condition>If-None-Match</Condition>", out)
        raw(self.fake, "PUT", "/objs/new-key", service="s3", body=b"x",
            headers={"If-None-Match": "*"}, content_sha=hashlib.sha256(b"x").hexdigest())
        self.assertEqual(s3.get_object(Bucket="objs", Key="new-key")["Body"].read(), b"x")
        s3.delete_object(Bucket="objs", Key="new-key")
        md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        self.assertEqual(err(s3.put_object, Bucket="objs", Key="m", Body=b"x", ContentMD5=md5)[0],
                         "BadDigest")
        s3.put_object(Bucket="objs", Key="sum", Body=b"check me", ChecksumAlgorithm="CRC32")
        g = s3.get_object(Bucket="objs", Key="sum", ChecksumMode="ENABLED")
        self.assertEqual(g["ChecksumCRC32"], base64.b64encode(
            (__import__("zlib").crc32(b"check me") & 0xffffffff).to_bytes(4, "big")).decode())
        self.assertEqual(err(s3.delete_bucket, Bucket="objs")[:2], ("BucketNotEmpty", 409))
        for k in ("dir/file.bin", "sum"):
            s3.delete_object(Bucket="objs", Key=k)
        s3.delete_objects(Bucket="objs", Delete={"Objects": [{"Key": "m"}]})
        s3.delete_bucket(Bucket="objs")
        self.assertEqual(err(s3.head_bucket, Bucket="objs")[1], 404)

    def test_list_objects_v2_pagination_and_delimiter(self):
        s3 = self.s3
        s3.create_bucket(Bucket="list")
        keys = ["a/1", "a/2", "a/b/3", "b/4", "c 5+6", "d"]
        for k in keys:
            s3.put_object(Bucket="list", Key=k, Body=k.encode())
        got, token, pages = [], None, 0
        while True:
            r = s3.list_objects_v2(Bucket="list", MaxKeys=2,
                                   **({"ContinuationToken": token} if token else {}))
            pages += 1
            self.assertEqual(r["KeyCount"], len(r.get("Contents", [])))
            got += [c["Key"] for c in r.get("Contents", [])]
            token = r.get("NextContinuationToken")
            if not r["IsTruncated"]:
                break
        self.assertEqual((got, pages), (sorted(keys), 3))
        r = s3.list_objects_v2(Bucket="list", Delimiter="/")
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]], ["a/", "b/"])
        self.assertEqual([c["Key"] for c in r["Contents"]], ["c 5+6", "d"])
        r = s3.list_objects_v2(Bucket="list", Prefix="a/", Delimiter="/")
        self.assertEqual(([c["Key"] for c in r["Contents"]], [p["Prefix"] for p in r["CommonPrefixes"]]),
                         (["a/1", "a/2"], ["a/b/"]))
        r = s3.list_objects(Bucket="list", Marker="b/4")
        self.assertEqual([c["Key"] for c in r["Contents"]], ["c 5+6", "d"])
        self.assertEqual(s3.get_object(Bucket="list", Key="c 5+6")["Body"].read(), b"c 5+6")


# ============================================================== SSM / ECR / ECS

class SsmTests(Base):
    def test_put_get_versions_and_errors(self):
        ssm = self.c("ssm")
        self.assertEqual(ssm.put_parameter(Name="/app/db", Value="pw1", Type="SecureString")["Version"], 1)
        code, _, msg = err(ssm.put_parameter, Name="/app/db", Value="pw2", Type="SecureString")
        self.assertEqual((code, msg), ("ParameterAlreadyExists", "The parameter already exists. To "
                                       "overwrite this value, set the overwrite option in the "
                                       "request to true."))
        self.assertEqual(ssm.put_parameter(Name="/app/db", Value="pw2", Overwrite=True)["Version"], 2)
        enc = ssm.get_parameter(Name="/app/db")["Parameter"]
        self.assertEqual(enc["Type"], "SecureString")
        self.assertNotIn("pw2", enc["Value"])
        dec = ssm.get_parameter(Name="/app/db", WithDecryption=True)["Parameter"]
        self.assertEqual((dec["Value"], dec["Version"]), ("pw2", 2))
        self.assertEqual(ssm.get_parameter(Name="/app/db:1", WithDecryption=True)["Parameter"]["Value"],
                         "pw1")
        self.assertEqual(err(ssm.get_parameter, Name="/app/db:9")[0], "ParameterVersionNotFound")
        self.assertEqual(err(ssm.put_parameter, Name="/app/t", Value="v", Type="String",
                             Overwrite=True, Tags=[{"Key": "k", "Value": "v"}])[0],
                         "ValidationException")
        self.assertEqual(err(ssm.put_parameter, Name="/app/new", Value="v")[2],
                         "A parameter type is required when you create a parameter.")
        ssm.put_parameter(Name="/app/x", Value="1", Type="String")
        ssm.put_parameter(Name="/app/sub/y", Value="2", Type="StringList")
        r = ssm.get_parameters(Names=["/app/x", "/nope"])
        self.assertEqual(([p["Name"] for p in r["Parameters"]], r["InvalidParameters"]),
                         (["/app/x"], ["/nope"]))
        names = [p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(
            Path="/app", Recursive=True, PaginationConfig={"PageSize": 1}) for p in page["Parameters"]]
        self.assertEqual(names, ["/app/db", "/app/sub/y", "/app/x"])
        flat = ssm.get_parameters_by_path(Path="/app")["Parameters"]
        self.assertEqual([p["Name"] for p in flat], ["/app/db", "/app/x"])
        ssm.delete_parameter(Name="/app/x")
        self.assertEqual(err(ssm.delete_parameter, Name="/app/x")[:2], ("ParameterNotFound", 400))
        self.assertEqual(err(ssm.put_parameter, Name="/aws/reserved", Value="v", Type="String")[0],
                         "ValidationException")
        pub = ssm.get_parameter(Name="/aws/service/ecs/optimized-ami/amazon-linux-2/recommended/image_id")
        self.assertTrue(pub["Parameter"]["Value"].startswith("ami-0"))


class EcrEcsTests(Base):
    def seed(self):
        self.fake.control("config", {"ecs_stabilize_ms": 2000})
        self.fake.control("seed", {"ecr": {"repositories": [
            {"repositoryName": "app", "images": [{"imageTag": "v1"}, {"imageTag": "v2"},
                                                 {"imageTags": []}]},
            {"repositoryName": "worker"}]},
            "ecs": {"clusters": ["prod"], "taskDefinitions": [
                {"family": "migrate", "containerDefinitions": [{"name": "db", "image": "m"}]}],
                "services": [{"cluster": "prod", "serviceName": "web", "desiredCount": 2},
                             {"cluster": "prod", "serviceName": "stuck", "desiredCount": 1,
                              "flags": {"never_stable": True}}]}})

    def test_ecr(self):
        self.seed()
        ecr = self.c("ecr")
        tok = ecr.get_authorization_token()["authorizationData"][0]
        self.assertTrue(base64.b64decode(tok["authorizationToken"]).startswith(b"AWS:"))
        self.assertEqual(tok["proxyEndpoint"], "https://123456789012.dkr.ecr.us-east-1.amazonaws.com")
        repos = ecr.describe_repositories()["repositories"]
        self.assertEqual([r["repositoryName"] for r in repos], ["app", "worker"])
        self.assertEqual(repos[0]["repositoryUri"], "123456789012.dkr.ecr.us-east-1.amazonaws.com/app")
        code, _, msg = err(ecr.describe_repositories, repositoryNames=["nope"])
        self.assertEqual((code, msg), ("RepositoryNotFoundException", "The repository with name "
                                       "'nope' does not exist in the registry with id "
                                       "'123456789012'"))
        imgs = ecr.describe_images(repositoryName="app")["imageDetails"]
        self.assertEqual(len(imgs), 3)
        self.assertTrue(all(i["imageDigest"].startswith("sha256:") for i in imgs))
        v1 = ecr.describe_images(repositoryName="app", imageIds=[{"imageTag": "v1"}])["imageDetails"]
        self.assertEqual(v1[0]["imageTags"], ["v1"])
        self.assertEqual(err(ecr.describe_images, repositoryName="app",
                             imageIds=[{"imageTag": "v9"}])[0], "ImageNotFoundException")
        tagged = ecr.describe_images(repositoryName="app", filter={"tagStatus": "TAGGED"})
        self.assertEqual(len(tagged["imageDetails"]), 2)
        pages = list(ecr.get_paginator("describe_images").paginate(
            repositoryName="app", PaginationConfig={"PageSize": 2}))
        self.assertEqual([len(p["imageDetails"]) for p in pages], [2, 1])

    def test_ecs_service_rollout_and_hung_service(self):
        self.seed()
        ecs = self.c("ecs")
        cl = ecs.describe_clusters(clusters=["prod", "missing"])
        self.assertEqual(cl["clusters"][0]["clusterName"], "prod")
        self.assertEqual(cl["failures"][0]["reason"], "MISSING")
        svc = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
        dep = svc["deployments"][0]
        self.assertEqual((dep["status"], dep["rolloutState"], svc["runningCount"],
                          svc["pendingCount"]), ("PRIMARY", "IN_PROGRESS", 0, 2))
        self.fake.control("clock", {"advance": 3})
        r = ecs.describe_services(cluster="prod", services=["web", "stuck", "nope"])
        web, stuck = r["services"]
        self.assertEqual(r["failures"][0]["arn"],
                         "arn:aws:ecs:us-east-1:123456789012:service/prod/nope")
        self.assertEqual((web["runningCount"], web["deployments"][0]["rolloutState"]), (2, "COMPLETED"))
        self.assertEqual(web["events"][0]["message"], "(service web) has reached a steady state.")
        self.assertEqual((stuck["runningCount"], stuck["pendingCount"],
                          stuck["deployments"][0]["rolloutState"]), (0, 1, "IN_PROGRESS"))
        self.assertIn("was unable to place a task", stuck["events"][0]["message"])
        arns = ecs.list_tasks(cluster="prod", serviceName="web")["taskArns"]
        self.assertEqual(len(arns), 2)
        tasks = ecs.describe_tasks(cluster="prod", tasks=arns + ["0" * 32])
        self.assertEqual([t["lastStatus"] for t in tasks["tasks"]], ["RUNNING", "RUNNING"])
        self.assertEqual(tasks["failures"][0]["reason"], "MISSING")
        self.assertEqual(err(ecs.describe_services, cluster="nocluster", services=["x"])[0],
                         "ClusterNotFoundException")

    def test_run_task_and_stop_task(self):
        self.seed()
        ecs = self.c("ecs")
        r = ecs.run_task(cluster="prod", taskDefinition="migrate", overrides={"containerOverrides": [
            {"name": "db", "environment": [{"name": "FAKEAWS_EXIT_CODE", "value": "3"}]}]})
        task = r["tasks"][0]
        self.assertEqual((task["lastStatus"], task["desiredStatus"]), ("PROVISIONING", "RUNNING"))
        self.fake.control("clock", {"advance": 5})
        t = ecs.describe_tasks(cluster="prod", tasks=[task["taskArn"]])["tasks"][0]
        self.assertEqual((t["lastStatus"], t["containers"][0]["exitCode"], t["stopCode"]),
                         ("STOPPED", 3, "EssentialContainerExited"))
        r = ecs.run_task(cluster="prod", taskDefinition="migrate:1", overrides={"containerOverrides": [
            {"name": "db", "environment": [{"name": "FAKEAWS_RUN_MS", "value": "never"}]}]})
        arn = r["tasks"][0]["taskArn"]
        self.fake.control("clock", {"advance": 5})
        self.assertIn(arn, ecs.list_tasks(cluster="prod", family="migrate")["taskArns"])
        stopped = ecs.stop_task(cluster="prod", task=arn, reason="test over")["task"]
        self.assertEqual((stopped["stopCode"], stopped["stoppedReason"]), ("UserInitiated", "test over"))
        self.assertNotIn(arn, ecs.list_tasks(cluster="prod", family="migrate")["taskArns"])
        self.assertEqual(err(ecs.run_task, cluster="prod", taskDefinition="nope")[:2],
                         ("ClientException", 400))

    def test_ecs_resources_from_cloudformation(self):
        cfn = self.c("cloudformation")
        tpl = {"Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "apps"}},
            "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
                "Family": "web", "ContainerDefinitions": [{"Name": "web", "Image": "nginx"}]}},
            "Service": {"Type": "AWS::ECS::Service", "Properties": {
                "Cluster": {"Ref": "Cluster"}, "ServiceName": "web", "DesiredCount": 1,
                "TaskDefinition": {"Ref": "Task"}}}},
            "Outputs": {"Td": {"Value": {"Ref": "Task"}}}}
        cfn.create_stack(StackName="svc", TemplateBody=json.dumps(tpl))
        st = wait_stack(cfn, "svc")
        self.assertEqual(st["StackStatus"], "CREATE_COMPLETE")
        self.assertEqual(st["Outputs"][0]["OutputValue"],
                         "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1")
        svc = self.c("ecs").describe_services(cluster="apps", services=["web"])["services"][0]
        self.assertEqual(svc["taskDefinition"], st["Outputs"][0]["OutputValue"])
        tpl["Resources"]["Task"]["Properties"]["ContainerDefinitions"][0]["Image"] = "nginx:2"
        tpl["Resources"]["Service"]["Metadata"] = {"fake:ecs": {"never_stable": True}}
        cfn.update_stack(StackName="svc", TemplateBody=json.dumps(tpl))
        self.fake.control("clock", {"advance": 5})
        self.assertEqual(cfn.describe_stacks(StackName="svc")["Stacks"][0]["StackStatus"],
                         "UPDATE_IN_PROGRESS")
        svc = self.c("ecs").describe_services(cluster="apps", services=["web"])["services"][0]
        self.assertEqual([d["status"] for d in svc["deployments"]], ["PRIMARY", "ACTIVE"])
        self.assertTrue(svc["deployments"][0]["taskDefinition"].endswith("web:2"))
        cfn.cancel_update_stack(StackName="svc")
        self.assertEqual(wait_stack(cfn, "svc")["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
        self.fake.control("clock", {"advance": 5})
        svc = self.c("ecs").describe_services(cluster="apps", services=["web"])["services"][0]
        self.assertEqual((svc["deployments"][0]["taskDefinition"].rsplit(":", 1)[1],
                          svc["deployments"][0]["rolloutState"], len(svc["deployments"])),
                         ("1", "COMPLETED", 1))
        cfn.delete_stack(StackName="svc")
        self.fake.control("clock", {"advance": 5})
        self.assertEqual(self.c("ecs").describe_clusters(clusters=["apps"])["clusters"][0]["status"],
                         "INACTIVE")


# ============================================================== faults

class FaultTests(Base):
    def test_throttle_nth_calls_per_protocol(self):
        self.fake.control("faults", {"spec": "cloudformation:DescribeStacks:throttle@1-3,"
                                             "ssm:*:throttle@2,s3:ListBuckets:throttle"})
        cfn = self.c("cloudformation")
        for _ in range(3):
            self.assertEqual(err(cfn.describe_stacks)[:3], ("Throttling", 400, "Rate exceeded"))
        cfn.describe_stacks()
        cfn.list_stacks()  # other operations are not affected
        ssm = self.c("ssm")
        self.assertEqual(err(ssm.get_parameter, Name="/a")[0], "ParameterNotFound")
        self.assertEqual(err(ssm.get_parameter, Name="/a")[:2], ("ThrottlingException", 400))
        self.assertEqual(err(self.c("s3").list_buckets)[:2], ("SlowDown", 503))
        calls = self.fake.control("calls?operation=DescribeStacks")
        self.assertEqual([c["status"] for c in calls], [400, 400, 400, 200])
        self.assertEqual(calls[0]["error"], "Throttling")
        rules = self.fake.control("faults")["rules"]
        self.assertEqual([(r["calls"], r["fired"]) for r in rules], [(4, 3), (2, 1), (1, 1)])

    def test_server_errors_and_custom_errors(self):
        self.fake.control("faults", {"spec": "sts:*:500@1,sts:*:503@2,ecr:*:error=LimitExceededException/429@1"})
        sts = self.c("sts")
        self.assertEqual(err(sts.get_caller_identity)[:2], ("InternalFailure", 500))
        self.assertEqual(err(sts.get_caller_identity)[:2], ("ServiceUnavailable", 503))
        sts.get_caller_identity()
        self.assertEqual(err(self.c("ecr").describe_repositories)[:2], ("LimitExceededException", 429))

    def test_botocore_retries_through_a_throttle(self):
        self.fake.control("faults", {"spec": "sts:GetCallerIdentity:throttle@1"})
        r = self.c("sts", retries=3).get_caller_identity()
        self.assertEqual(r["ResponseMetadata"]["RetryAttempts"], 1)
        self.assertEqual([c["status"] for c in self.fake.control("calls")], [400, 200])

    def test_expired_fault(self):
        self.fake.control("faults", {"spec": "cloudformation:*:expired@1,ecs:*:expired@1"})
        self.assertEqual(err(self.c("cloudformation").list_stacks)[0], "ExpiredToken")
        self.assertEqual(err(self.c("ecs").describe_clusters)[0], "ExpiredTokenException")

    def test_connection_reset_and_truncated_body(self):
        self.fake.control("faults", {"spec": "sts:*:reset@1,sts:*:truncate@2"})
        sts = self.c("sts")
        with self.assertRaises((botocore.exceptions.BotoCoreError,
                                botocore.parsers.ResponseParserError)):
            sts.get_caller_identity()
        self.assertEqual(self.fake.control("calls")[-1]["fault"], "sts:*:reset@1")
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        with self.assertRaises(http.client.IncompleteRead) as cm:
            raw(self.fake, "POST", "/", body=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertGreater(cm.exception.expected, 0)
        sts.get_caller_identity()

    def test_slow_response(self):
        self.fake.control("faults", {"spec": "sts:*:slow=400@1-2"})
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        t0 = time.time()
        status, _, _ = raw(self.fake, "POST", "/", body=body,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.time() - t0, 0.4)
        with self.assertRaises(botocore.exceptions.ReadTimeoutError):
            self.c("sts", read_timeout=0.1).get_caller_identity()
        self.c("sts").get_caller_identity()
        time.sleep(0.4)  # let the abandoned slow call finish before the log is read
        self.assertEqual([c["fault"] for c in self.fake.control("calls")],
                         ["sts:*:slow=400@1-2", None, "sts:*:slow=400@1-2"])

    def test_bad_spec_rejected(self):
        r = self.fake.control("faults", {"spec": "sts:*:explode"})
        self.assertEqual(r["status"], 400)
        self.assertIn("unknown kind", r["error"])
        p = subprocess.run([sys.executable, "-m", "tests.support.fakeaws", "--faults", "x:y:z@q"],
                           cwd=ROOT, capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"bad fault rule", p.stderr)


def _pattern(fake, n=24):
    sts = fake.client("sts")
    out = []
    for _ in range(n):
        try:
            sts.get_caller_identity()
            out.append(".")
        except ClientError:
            out.append("x")
    return "".join(out)


class SeedTests(unittest.TestCase):
    def test_probability_faults_follow_the_seed(self):
        spec = "sts:*:throttle@p=0.5"
        f = Fake("--faults", spec, "--seed", "7")
        try:
            from_cli = _pattern(f)
        finally:
            f.stop()
        pats = []
        for seed in (7, 8, 7):
            FAKE.control("reset", {})
            FAKE.control("faults", {"spec": spec, "seed": seed})
            pats.append(_pattern(FAKE))
        FAKE.control("reset", {})
        self.assertEqual(from_cli, pats[0])
        self.assertEqual(pats[0], pats[2])
        self.assertNotEqual(pats[0], pats[1])
        self.assertIn("x", pats[0])
        self.assertIn(".", pats[0])


class YamlTests(unittest.TestCase):
    def test_yaml_reader(self):
        sys.path.insert(0, HERE)
        try:
            from fakeaws import yamlish
        finally:
            sys.path.remove(HERE)
        doc = yamlish.loads("""
# comment
A: !If [Cond, {Ref: X}, !Ref "AWS::NoValue"]
B: |
  line 1
    line 2
C: >-
  folded
  text
D:
- - nested
  - list
- k: v
  k2: 'it''s'
E: [a,
    b]
F: "tab\\tx"
G: !GetAtt Res.Attr.Sub
H: 012
""")
        self.assertEqual(doc["A"], {"Fn::If": ["Cond", {"Ref": "X"}, {"Ref": "AWS::NoValue"}]})
        self.assertEqual(doc["B"], "line 1\n  line 2\n")
        self.assertEqual(doc["C"], "folded text")
        self.assertEqual(doc["D"], [["nested", "list"], {"k": "v", "k2": "it's"}])
        self.assertEqual(doc["E"], ["a", "b"])
        self.assertEqual(doc["F"], "tab\tx")  # YAML's \t escape
        self.assertEqual(doc["G"], {"Fn::GetAtt": ["Res", "Attr.Sub"]})
        with self.assertRaises(yamlish.YamlError) as cm:
            yamlish.loads("a: 1\n  b: 2\n")
        self.assertEqual(cm.exception.line, 2)
        with self.assertRaises(yamlish.YamlError):
            yamlish.loads("a: [1, 2\n")
        with self.assertRaises(yamlish.YamlError):
            yamlish.loads("a: &anchor 1\n")


# ============================================================== lifecycle

class LifecycleTests(unittest.TestCase):
    def test_state_file_survives_restart(self):
        with tempfile.TemporaryDirectory() as d:
            state = os.path.join(d, "state.json")
            f = Fake("--state-file", state, "--resource-ms", "5000")
            try:
                cfn = f.client("cloudformation")
                cfn.create_stack(StackName="resume", TemplateBody=json.dumps(
                    {"Resources": {"A": {"Type": "AWS::SNS::Topic"},
                                   "B": {"Type": "AWS::SNS::Topic", "DependsOn": "A"}}}))
                f.client("ssm").put_parameter(Name="/kept", Value="yes", Type="String")
                self.assertEqual(cfn.describe_stacks(StackName="resume")["Stacks"][0]["StackStatus"],
                                 "CREATE_IN_PROGRESS")
            finally:
                f.stop()
            self.assertTrue(os.path.exists(state))
            g = Fake("--state-file", state)
            try:
                cfn = g.client("cloudformation")
                st = cfn.describe_stacks(StackName="resume")["Stacks"][0]
                self.assertEqual(st["StackStatus"], "CREATE_IN_PROGRESS")
                g.control("clock", {"advance": 11})
                st = wait_stack(cfn, "resume")
                self.assertEqual(st["StackStatus"], "CREATE_COMPLETE")
                self.assertEqual(len(cfn.describe_stack_resources(StackName="resume")["StackResources"]), 2)
                self.assertEqual(g.client("ssm").get_parameter(Name="/kept")["Parameter"]["Value"], "yes")
                self.assertEqual(g.control("calls?operation=PutParameter")[0]["status"], 200)
            finally:
                g.stop()

    def test_shutdown_idle_and_parent_exit(self):
        f = Fake()
        self.assertEqual(f.control("health")["port"], f.port)
        f.control("shutdown", {})
        self.assertEqual(f.proc.wait(5), 0)
        f.stop()
        p = subprocess.Popen([sys.executable, "-m", "tests.support.fakeaws", "--idle", "0.3"],
                             cwd=ROOT, stdout=subprocess.PIPE)
        self.assertTrue(p.stdout.readline().startswith(b"PORT "))
        self.assertEqual(p.wait(5), 0)
        p.stdout.close()
        # the parent (a shell that exits at once) dies: the server follows
        code = ("import subprocess,sys; p=subprocess.Popen([sys.executable,'-m',"
                "'tests.support.fakeaws'],stdout=subprocess.PIPE); "
                "print(p.stdout.readline().decode().split()[1], p.pid, flush=True)")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             timeout=20).stdout.decode().split()
        pid = int(out[1])
        end = time.time() + 5
        while time.time() < end and os.path.exists(f"/proc/{pid}"):
            try:
                if open(f"/proc/{pid}/stat").read().split()[2] == "Z":
                    break
            except OSError:
                break
            time.sleep(0.05)
        alive = os.path.exists(f"/proc/{pid}") and \
            open(f"/proc/{pid}/stat").read().split()[2] != "Z"
        self.assertFalse(alive, "server outlived its parent")

    def test_script_path_start_and_loopback_only(self):
        f = Fake(script=True)
        try:
            self.assertEqual(f.client("sts").get_caller_identity()["Account"], "123456789012")
            listen = [l.split() for l in open(f"/proc/{f.proc.pid}/net/tcp").read().splitlines()[1:]]
            mine = [l[1] for l in listen if l[3] == "0A" and int(l[1].split(":")[1], 16) == f.port]
            self.assertEqual(mine, ["0100007F:%04X" % f.port])
        finally:
            f.stop()

    def test_control_endpoints(self):
        f = FAKE
        f.control("reset", {})
        f.client("sts").get_caller_identity()
        f.client("ssm").put_parameter(Name="/c", Value="1", Type="String")
        calls = f.control("calls")
        self.assertEqual([c["operation"] for c in calls], ["GetCallerIdentity", "PutParameter"])
        self.assertEqual(f.control(f"calls?since={calls[0]['seq']}")[0]["operation"], "PutParameter")
        self.assertIn("/c", json.dumps(f.control("state")))
        f.control("calls/reset", {})
        self.assertEqual(f.control("calls"), [])
        f.control("credentials", {"AKIDSECOND": {"secret": "s2", "account": "444444444444"}})
        ident = f.client("sts", key="AKIDSECOND", secret="s2").get_caller_identity()
        self.assertEqual(ident["Account"], "444444444444")
        f.control("credentials", {"AKIDSECOND": None})
        self.assertEqual(err(f.client("sts", key="AKIDSECOND", secret="s2").get_caller_identity)[0],
                         "InvalidClientTokenId")
        self.assertEqual(f.control("nope")["status"], 404)
        f.control("reset", {})
        self.assertEqual(err(f.client("ssm").get_parameter, Name="/c")[0], "ParameterNotFound")


# ============================================================== golden example

@unittest.skipUnless(os.path.isfile(os.path.join(GOLDEN, "README.txt")), "no golden example")
class GoldenExampleTests(Base):
    def test_example_stacks_deploy_in_readme_order(self):
        self.fake.control("config", {"resource_ms": 1, "ecs_stabilize_ms": 5})
        import re
        order = re.findall(r"^\s+\d+\. (\S+) ", open(os.path.join(GOLDEN, "README.txt")).read(),
                           re.M)
        self.assertGreater(len(order), 3)
        cfn = self.c("cloudformation")
        for name in order:
            body = open(os.path.join(GOLDEN, name + ".template.json")).read()
            params = json.load(open(os.path.join(GOLDEN, name + ".parameters.json")))
            tags = json.load(open(os.path.join(GOLDEN, name + ".tags.json")))
            kw = {"TemplateBody": body} if len(body) <= 51200 else {}
            if not kw:
                self.c("s3").create_bucket(Bucket="golden") if not self.c("s3").list_buckets()[
                    "Buckets"] else None
                self.c("s3").put_object(Bucket="golden", Key=name, Body=body.encode())
                kw = {"TemplateURL": f"https://golden.s3.amazonaws.com/{name}"}
            cfn.create_stack(StackName=name, Parameters=params, Tags=tags,
                             Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"], **kw)
            st = wait_stack(cfn, name, timeout=20)
            reasons = [e.get("ResourceStatusReason") for e in events(cfn, name)
                       if e["ResourceStatus"].endswith("FAILED")]
            self.assertEqual(st["StackStatus"], "CREATE_COMPLETE", f"{name}: {reasons}")


if __name__ == "__main__":
    unittest.main()
