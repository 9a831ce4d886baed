"""S3 (rest-xml): buckets, bucket settings and objects.

Operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
GetBucketLocation, Put/Get/DeleteBucketEncryption, Put/GetBucketVersioning,
Put/Get/DeletePublicAccessBlock, Put/Get/DeleteBucketPolicy, PutObject,
GetObject (Range, If-Match/If-None-Match), HeadObject, DeleteObject,
DeleteObjects, ListObjectsV2, ListObjects.

Fidelity points: ETag is the MD5 of the body; Content-MD5 and
x-amz-checksum-{crc32,crc32c,sha1,sha256} are verified (BadDigest); a bucket
lives in one region and a request signed for another gets
AuthorizationHeaderMalformed with the right <Region> (and
x-amz-bucket-region), CreateBucket enforces LocationConstraint like AWS,
another account's bucket is AccessDenied, If-None-Match: * makes a
conditional create (412 PreconditionFailed), ListObjects* honour
encoding-type=url.  Object bodies are kept base64-encoded in the state.
"""
import base64
import hashlib
import json
import re
import struct
import zlib
import xml.etree.ElementTree as ET
from urllib.parse import quote, unquote

from . import protocol
from .protocol import AwsError, iso8601, rfc822, xml_document, xml_parse

NS = protocol.XMLNS["s3"]
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SUBRESOURCES = ("encryption", "versioning", "publicAccessBlock", "policy", "location",
                "tagging", "acl", "cors", "lifecycle", "uploads", "versions", "delete",
                "uploadId", "website", "notification", "ownershipControls", "logging")


def buckets(world):
    return world.state["s3"]["buckets"]


# ------------------------------------------------------------ routing

def _split(req):
    host = req.host.rsplit(":", 1)[0] if not req.host.startswith("[") else req.host
    bucket = None
    for suffix in (".127.0.0.1", ".localhost"):
        if host.endswith(suffix):
            bucket = host[:-len(suffix)]
    m = re.match(r"^(.+)\.s3[.-]([a-z0-9-]+\.)?amazonaws\.com$", host)
    if m and not bucket:
        bucket = m.group(1)
    if bucket:
        return bucket, req.path[1:] or None
    path = req.path[1:]
    if not path:
        return None, None
    b, sep, key = path.partition("/")
    return b, (key if sep and key else None)


def operation_name(req):
    bucket, key = _split(req)
    req.bucket, req.key = bucket, key
    q = req.qdict
    sub = next((s for s in SUBRESOURCES if s in q), None)
    m = req.method
    if bucket is None:
        return "ListBuckets" if m == "GET" else "Unknown"
    if key is None:
        names = {"encryption": "BucketEncryption", "versioning": "BucketVersioning",
                 "publicAccessBlock": "PublicAccessBlock", "policy": "BucketPolicy",
                 "tagging": "BucketTagging"}
        if m == "PUT":
            return f"Put{names[sub]}" if sub in names else ("CreateBucket" if sub is None
                                                             else f"Put-{sub}")
        if m == "GET":
            if sub in names:
                return f"Get{names[sub]}"
            if sub == "location":
                return "GetBucketLocation"
            if sub is None:
                return "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects"
            return f"Get-{sub}"
        if m == "HEAD":
            return "HeadBucket"
        if m == "DELETE":
            return f"Delete{names[sub]}" if sub in names else ("DeleteBucket" if sub is None
                                                                else f"Delete-{sub}")
        if m == "POST" and sub == "delete":
            return "DeleteObjects"
        return "Unknown"
    if "uploadId" in q or "uploads" in q or "partNumber" in q:
        return "MultipartUpload"
    if m == "PUT":
        return "CopyObject" if "x-amz-copy-source" in req.headers else (
            "PutObject" if sub is None else f"PutObject-{sub}")
    if m == "GET":
        return "GetObject" if sub is None else f"GetObject-{sub}"
    if m == "HEAD":
        return "HeadObject"
    if m == "DELETE":
        return "DeleteObject"
    return "Unknown"


# ------------------------------------------------------------ helpers

def _no_bucket(name):
    return AwsError("NoSuchBucket", "The specified bucket does not exist", 404,
                    extra={"BucketName": name})


def _bucket(ctx, req, must_exist=True):
    b = buckets(ctx.world).get(req.bucket)
    if b is None:
        if must_exist:
            raise _no_bucket(req.bucket)
        return None
    if b["account"] != ctx.account:
        raise AwsError("AccessDenied", "Access Denied", 403)
    if ctx.region != b["region"]:
        form = ctx.auth.form if ctx.auth else "header"
        code = "AuthorizationHeaderMalformed" if form == "header" else \
            "AuthorizationQueryParametersError"
        what = "authorization header is" if form == "header" else \
            "X-Amz-Credential parameter is"
        raise AwsError(code, f"The {what} malformed; the region '{ctx.region}' is wrong; "
                       f"expecting '{b['region']}'", 400, extra={"Region": b["region"]},
                       headers={"x-amz-bucket-region": b["region"]})
    return b


def _xml_body(req, tag):
    if not req.body.strip():
        raise AwsError("MalformedXML", "The XML you provided was not well-formed or did not "
                       "validate against our published schema")
    try:
        root = ET.fromstring(req.body)
    except ET.ParseError:
        raise AwsError("MalformedXML", "The XML you provided was not well-formed or did not "
                       "validate against our published schema")
    if root.tag.split("}")[-1] != tag:
        raise AwsError("MalformedXML", "The XML you provided was not well-formed or did not "
                       "validate against our published schema")
    return root


def _payload_shape(op, name):
    shape = protocol.operation("s3", op).input_shape
    return shape.members[shape.serialization["payload"]] if name is None else shape.members[name]


def _out_shape(op):
    shape = protocol.operation("s3", op).output_shape
    payload = shape.serialization.get("payload")
    return shape.members[payload] if payload else shape


def _check_md5(req):
    md5 = req.headers.get("content-md5")
    if md5 is None:
        return
    try:
        raw = base64.b64decode(md5, validate=True)
        if len(raw) != 16:
            raise ValueError
    except ValueError:
        raise AwsError("InvalidDigest", "The Content-MD5 you specified was invalid.",
                       extra={"Content-MD5": md5})
    if raw != hashlib.md5(req.body).digest():
        raise AwsError("BadDigest", "The Content-MD5 you specified did not match what we "
                       "received.", extra={"ExpectedDigest": md5,
                                           "CalculatedDigest": base64.b64encode(
                                               hashlib.md5(req.body).digest()).decode()})


_CRC32C_TABLE = []


def _crc32c(data):
    if not _CRC32C_TABLE:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _CRC32C_TABLE.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def checksum(alg, data):
    if alg == "crc32":
        return base64.b64encode(struct.pack(">I", zlib.crc32(data) & 0xFFFFFFFF)).decode()
    if alg == "crc32c":
        return base64.b64encode(struct.pack(">I", _crc32c(data))).decode()
    if alg == "sha1":
        return base64.b64encode(hashlib.sha1(data).digest()).decode()
    if alg == "sha256":
        return base64.b64encode(hashlib.sha256(data).digest()).decode()
    return None


def _checksums(req):
    found = {}
    trailers = getattr(req, "trailers", {}) or {}
    for source in (req.headers, trailers):
        for k, v in source.items():
            if k.startswith("x-amz-checksum-") and k != "x-amz-checksum-mode" \
                    and k != "x-amz-checksum-algorithm" and k != "x-amz-checksum-type":
                found[k[len("x-amz-checksum-"):]] = v
    out = {}
    for alg, value in found.items():
        want = checksum(alg, req.body)
        if want is None:
            continue  # an algorithm the fake cannot compute (crc64nvme): trust it
        if want != value:
            raise AwsError("BadDigest", f"The {alg.upper()} you specified did not match the "
                           "calculated checksum.")
        out[alg] = value
    return out


def _encode(value, url):
    return quote(value, safe="/") if url and value is not None else value


def _obj_data(obj):
    return base64.b64decode(obj["data"])


def make_bucket(world, account, region, name, now):
    """Create a bucket (used by CloudFormation's AWS::S3::Bucket)."""
    b = buckets(world).get(name)
    if b is None:
        buckets(world)[name] = {"Name": name, "account": account, "region": region,
                                "created": now, "objects": {}, "versioning": None,
                                "policy": None, "encryption": None, "pab": None, "vseq": 0}
    return buckets(world)[name]


# ------------------------------------------------------------ bucket ops

def create_bucket(ctx, req):
    name = req.bucket
    if not BUCKET_RE.match(name) or ".." in name or re.match(r"^\d+\.\d+\.\d+\.\d+$", name):
        raise AwsError("InvalidBucketName", "The specified bucket is not valid.",
                       extra={"BucketName": name})
    constraint = None
    if req.body.strip():
        root = _xml_body(req, "CreateBucketConfiguration")
        conf = xml_parse(_payload_shape("CreateBucket", None), root)
        constraint = conf.get("LocationConstraint") or None
    if constraint == "us-east-1":
        raise AwsError("InvalidLocationConstraint", "The specified location-constraint is "
                       "not valid", extra={"LocationConstraint": constraint})
    if constraint is None and ctx.region != "us-east-1":
        raise AwsError("IllegalLocationConstraintException", "The unspecified location "
                       "constraint is incompatible for the region specific endpoint this "
                       "request was sent to.")
    if constraint is not None and constraint != ctx.region:
        raise AwsError("IllegalLocationConstraintException", f"The {constraint} location "
                       "constraint is incompatible for the region specific endpoint this "
                       "request was sent to.")
    existing = buckets(ctx.world).get(name)
    if existing is not None:
        if existing["account"] != ctx.account:
            raise AwsError("BucketAlreadyExists", "The requested bucket name is not available. "
                           "The bucket namespace is shared by all users of the system. Please "
                           "select a different name and try again.", 409,
                           extra={"BucketName": name})
        if ctx.region != "us-east-1":
            raise AwsError("BucketAlreadyOwnedByYou", "Your previous request to create the "
                           "named bucket succeeded and you already own it.", 409,
                           extra={"BucketName": name})
    else:
        make_bucket(ctx.world, ctx.account, ctx.region, name, ctx.now)
    loc = f"/{name}" if ctx.region == "us-east-1" else f"http://{name}.s3.amazonaws.com/"
    return 200, [("Location", loc)], b""


def head_bucket(ctx, req):
    b = _bucket(ctx, req)
    return 200, [("x-amz-bucket-region", b["region"]),
                 ("x-amz-access-point-alias", "false")], b""


def delete_bucket(ctx, req):
    b = _bucket(ctx, req)
    if b["objects"]:
        raise AwsError("BucketNotEmpty", "The bucket you tried to delete is not empty", 409,
                       extra={"BucketName": req.bucket})
    del buckets(ctx.world)[req.bucket]
    return 204, [], b""


def get_bucket_location(ctx, req):
    b = buckets(ctx.world).get(req.bucket)
    if b is None:
        raise _no_bucket(req.bucket)
    if b["account"] != ctx.account:
        raise AwsError("AccessDenied", "Access Denied", 403)
    root = ET.Element("LocationConstraint", xmlns=NS)
    if b["region"] != "us-east-1":
        root.text = b["region"]
    return 200, [("Content-Type", "application/xml")], \
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def list_buckets(ctx, req):
    mine = [b for b in buckets(ctx.world).values() if b["account"] == ctx.account]
    value = {"Buckets": [{"Name": b["Name"], "CreationDate": b["created"]}
                         for b in sorted(mine, key=lambda b: b["Name"])],
             "Owner": {"ID": hashlib.sha256(ctx.account.encode()).hexdigest(),
                       "DisplayName": f"fakeaws-{ctx.account}"}}
    body = xml_document("ListAllMyBucketsResult", _out_shape("ListBuckets"), value)
    return 200, [("Content-Type", "application/xml")], body


DEFAULT_ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                                 "BucketKeyEnabled": False}]}
DEFAULT_PAB = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
               "RestrictPublicBuckets": True}


def put_bucket_encryption(ctx, req):
    b = _bucket(ctx, req)
    _check_md5(req)
    root = _xml_body(req, "ServerSideEncryptionConfiguration")
    conf = xml_parse(_payload_shape("PutBucketEncryption", None), root)
    for rule in conf.get("Rules", []):
        alg = (rule.get("ApplyServerSideEncryptionByDefault") or {}).get("SSEAlgorithm")
        if alg not in ("AES256", "aws:kms", "aws:kms:dsse"):
            raise AwsError("MalformedXML", "The XML you provided was not well-formed or did "
                           "not validate against our published schema")
    if not conf.get("Rules"):
        raise AwsError("MalformedXML", "The XML you provided was not well-formed or did not "
                       "validate against our published schema")
    b["encryption"] = conf
    return 200, [], b""


def get_bucket_encryption(ctx, req):
    b = _bucket(ctx, req)
    body = xml_document("ServerSideEncryptionConfiguration", _out_shape("GetBucketEncryption"),
                        b["encryption"] or DEFAULT_ENCRYPTION)
    return 200, [("Content-Type", "application/xml")], body


def delete_bucket_encryption(ctx, req):
    _bucket(ctx, req)["encryption"] = None
    return 204, [], b""


def put_bucket_versioning(ctx, req):
    b = _bucket(ctx, req)
    root = _xml_body(req, "VersioningConfiguration")
    conf = xml_parse(_payload_shape("PutBucketVersioning", None), root)
    status = conf.get("Status")
    if status not in ("Enabled", "Suspended"):
        raise AwsError("MalformedXML", "The XML you provided was not well-formed or did not "
                       "validate against our published schema")
    b["versioning"] = status
    return 200, [], b""


def get_bucket_versioning(ctx, req):
    b = _bucket(ctx, req)
    value = {"Status": b["versioning"]} if b["versioning"] else {}
    body = xml_document("VersioningConfiguration", _out_shape("GetBucketVersioning"), value)
    return 200, [("Content-Type", "application/xml")], body


def put_public_access_block(ctx, req):
    b = _bucket(ctx, req)
    root = _xml_body(req, "PublicAccessBlockConfiguration")
    b["pab"] = xml_parse(_payload_shape("PutPublicAccessBlock", None), root)
    return 200, [], b""


def get_public_access_block(ctx, req):
    b = _bucket(ctx, req)
    body = xml_document("PublicAccessBlockConfiguration", _out_shape("GetPublicAccessBlock"),
                        b["pab"] if b["pab"] is not None else DEFAULT_PAB)
    return 200, [("Content-Type", "application/xml")], body


def delete_public_access_block(ctx, req):
    _bucket(ctx, req)["pab"] = None
    return 204, [], b""


def put_bucket_policy(ctx, req):
    b = _bucket(ctx, req)
    text = req.body.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
        if not text.lstrip().startswith("{"):
            raise ValueError
    except ValueError:
        raise AwsError("MalformedPolicy", "Policies must be valid JSON and the first byte "
                       "must be '{'")
    if not doc.get("Statement"):
        raise AwsError("MalformedPolicy", "Missing required field Statement")
    b["policy"] = text
    return 204, [], b""


def get_bucket_policy(ctx, req):
    b = _bucket(ctx, req)
    if not b["policy"]:
        raise AwsError("NoSuchBucketPolicy", "The bucket policy does not exist", 404,
                       extra={"BucketName": req.bucket})
    return 200, [("Content-Type", "application/json")], b["policy"].encode()


def delete_bucket_policy(ctx, req):
    _bucket(ctx, req)["policy"] = None
    return 204, [], b""


# ------------------------------------------------------------ objects

STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding",
                  "content-language", "expires")


def put_object(ctx, req, copy_from=None):
    b = _bucket(ctx, req)
    data = req.body
    if copy_from is None:
        _check_md5(req)
        sums = _checksums(req)
    else:
        sums = {}
    old = b["objects"].get(req.key)
    inm = req.headers.get("if-none-match")
    if inm is not None and inm.strip() == "*" and old is not None:
        raise AwsError("PreconditionFailed", "At least one of the pre-conditions you "
                       "specified did not hold", 412, extra={"Condition": "If-None-Match"})
    im = req.headers.get("if-match")
    if im is not None:
        if old is None:
            raise AwsError("NoSuchKey", "The specified key does not exist.", 404,
                           extra={"Key": req.key})
        if im.strip() != old["etag"] and im.strip() != "*":
            raise AwsError("PreconditionFailed", "At least one of the pre-conditions you "
                           "specified did not hold", 412, extra={"Condition": "If-Match"})
    meta = {k[len("x-amz-meta-"):]: v for k, v in req.headers.items()
            if k.startswith("x-amz-meta-")}
    headers = {k: v for k, v in req.headers.items() if k in STORED_HEADERS}
    if "content-encoding" in headers:
        enc = [e.strip() for e in headers["content-encoding"].split(",")
               if e.strip() and e.strip() != "aws-chunked"]
        if enc:
            headers["content-encoding"] = ",".join(enc)
        else:
            del headers["content-encoding"]
    sse = req.headers.get("x-amz-server-side-encryption") or (
        (b["encryption"] or DEFAULT_ENCRYPTION)["Rules"][0]
        ["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"])
    obj = {"data": base64.b64encode(data).decode(), "size": len(data),
           "etag": '"' + hashlib.md5(data).hexdigest() + '"', "last_modified": int(ctx.now),
           "content_type": req.headers.get("content-type") or "binary/octet-stream",
           "metadata": meta, "headers": headers, "sse": sse,
           "kms_key": req.headers.get("x-amz-server-side-encryption-aws-kms-key-id"),
           "checksums": sums, "storage_class": req.headers.get("x-amz-storage-class",
                                                                "STANDARD"),
           "version_id": None}
    if copy_from is not None:
        obj.update({k: copy_from[k] for k in ("data", "size", "etag", "checksums")})
        if req.headers.get("x-amz-metadata-directive", "COPY") == "COPY":
            obj.update({k: copy_from[k] for k in ("metadata", "headers", "content_type")})
    out = [("ETag", obj["etag"]), ("x-amz-server-side-encryption", sse)]
    if obj["kms_key"]:
        out.append(("x-amz-server-side-encryption-aws-kms-key-id", obj["kms_key"]))
    if b["versioning"] == "Enabled":
        if old is not None and copy_from is None:
            b.setdefault("old_versions", {}).setdefault(req.key, []).append(old)
        b["vseq"] += 1
        obj["version_id"] = f"v{b['vseq']:06d}" + ctx.rand(26, "abcdefghijklmnopqrstuvwxyz0123456789")
        out.append(("x-amz-version-id", obj["version_id"]))
    for alg, v in sums.items():
        out.append((f"x-amz-checksum-{alg}", v))
    b["objects"][req.key] = obj
    return 200, out, b""


def copy_object(ctx, req):
    src = unquote_source(req.headers["x-amz-copy-source"])
    sb, _, sk = src.lstrip("/").partition("/")
    sk = sk.split("?versionId=")[0]
    source = buckets(ctx.world).get(sb)
    if source is None:
        raise _no_bucket(sb)
    if source["account"] != ctx.account:
        raise AwsError("AccessDenied", "Access Denied", 403)
    obj = source["objects"].get(sk)
    if obj is None:
        raise AwsError("NoSuchKey", "The specified key does not exist.", 404, extra={"Key": sk})
    status, headers, _ = put_object(ctx, req, copy_from=obj)
    value = {"ETag": obj["etag"], "LastModified": ctx.now}
    root = ET.Element("CopyObjectResult", xmlns=NS)
    ET.SubElement(root, "LastModified").text = iso8601(value["LastModified"])
    ET.SubElement(root, "ETag").text = value["ETag"]
    return status, headers + [("Content-Type", "application/xml")], \
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def unquote_source(s):
    return unquote(s)


def _object(ctx, req, b):
    obj = b["objects"].get(req.key)
    vid = req.qdict.get("versionId")
    if obj is not None and vid and obj.get("version_id") != vid:
        obj = next((o for o in b.get("old_versions", {}).get(req.key, [])
                    if o.get("version_id") == vid), None)
        if obj is None:
            raise AwsError("NoSuchVersion", "The specified version does not exist.", 404,
                           extra={"Key": req.key, "VersionId": vid})
    if obj is None:
        raise AwsError("NoSuchKey", "The specified key does not exist.", 404,
                       extra={"Key": req.key})
    return obj


def _conditions(req, obj):
    etag = obj["etag"]
    im = req.headers.get("if-match")
    if im is not None and im.strip() not in (etag, "*"):
        raise AwsError("PreconditionFailed", "At least one of the pre-conditions you "
                       "specified did not hold", 412, extra={"Condition": "If-Match"})
    inm = req.headers.get("if-none-match")
    if inm is not None and inm.strip() in (etag, "*"):
        return 304
    ims = req.headers.get("if-modified-since")
    if ims is not None and inm is None:
        t = protocol.parse_time(ims)
        if t is not None and obj["last_modified"] <= t:
            return 304
    ius = req.headers.get("if-unmodified-since")
    if ius is not None and im is None:
        t = protocol.parse_time(ius)
        if t is not None and obj["last_modified"] > t:
            raise AwsError("PreconditionFailed", "At least one of the pre-conditions you "
                           "specified did not hold", 412,
                           extra={"Condition": "If-Unmodified-Since"})
    return None


def _object_headers(req, obj, b):
    q = req.qdict
    h = [("ETag", obj["etag"]), ("Last-Modified", rfc822(obj["last_modified"])),
         ("Accept-Ranges", "bytes"),
         ("Content-Type", q.get("response-content-type") or obj["content_type"]),
         ("x-amz-server-side-encryption", obj["sse"])]
    if obj.get("kms_key"):
        h.append(("x-amz-server-side-encryption-aws-kms-key-id", obj["kms_key"]))
    if obj.get("version_id"):
        h.append(("x-amz-version-id", obj["version_id"]))
    if obj.get("storage_class", "STANDARD") != "STANDARD":
        h.append(("x-amz-storage-class", obj["storage_class"]))
    for k, v in obj["headers"].items():
        override = q.get("response-" + k)
        h.append((k, override or v))
    for k, v in obj["metadata"].items():
        h.append((f"x-amz-meta-{k}", v))
    return h


def get_object(ctx, req, head=False):
    b = _bucket(ctx, req)
    obj = _object(ctx, req, b)
    cond = _conditions(req, obj)
    headers = _object_headers(req, obj, b)
    if cond == 304:
        return 304, [h for h in headers if h[0] in ("ETag", "Last-Modified")], b""
    data = _obj_data(obj)
    rng = req.headers.get("range")
    if rng:
        m = re.match(r"^bytes=(\d*)-(\d*)$", rng.strip())
        size = len(data)
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(0, size - int(m.group(2))), size - 1
            if start >= size or start > end:
                raise AwsError("InvalidRange", "The requested range is not satisfiable", 416,
                               extra={"RangeRequested": rng, "ActualObjectSize": size})
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
            part = data[start:end + 1]
            headers.append(("Content-Length", str(len(part))))
            return 206, headers, part
    if req.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        for alg, v in obj.get("checksums", {}).items():
            headers.append((f"x-amz-checksum-{alg}", v))
            headers.append(("x-amz-checksum-type", "FULL_OBJECT"))
    headers.append(("Content-Length", str(len(data))))
    return 200, headers, data


def head_object(ctx, req):
    return get_object(ctx, req, head=True)


def delete_object(ctx, req):
    b = _bucket(ctx, req)
    out = []
    obj = b["objects"].get(req.key)
    if b["versioning"] == "Enabled":
        if obj is not None:
            b.setdefault("old_versions", {}).setdefault(req.key, []).append(obj)
            del b["objects"][req.key]
        b["vseq"] += 1
        out = [("x-amz-delete-marker", "true"),
               ("x-amz-version-id", f"v{b['vseq']:06d}" + ctx.rand(26, "abcdefghij0123456789"))]
    else:
        b["objects"].pop(req.key, None)
    return 204, out, b""


def delete_objects(ctx, req):
    b = _bucket(ctx, req)
    if "content-md5" not in req.headers and not any(
            k.startswith("x-amz-checksum-") for k in req.headers):
        raise AwsError("InvalidRequest", "Missing required header for this request: Content-MD5")
    _check_md5(req)
    root = _xml_body(req, "Delete")
    conf = xml_parse(_payload_shape("DeleteObjects", None), root)
    deleted = []
    for o in conf.get("Objects", []):
        b["objects"].pop(o["Key"], None)
        deleted.append({"Key": o["Key"]})
    value = {} if conf.get("Quiet") else {"Deleted": deleted}
    body = xml_document("DeleteResult", _out_shape("DeleteObjects"), value)
    return 200, [("Content-Type", "application/xml")], body


def _listing(ctx, req, b, after, max_keys):
    q = req.qdict
    prefix = q.get("prefix", "")
    delim = q.get("delimiter") or None
    contents, prefixes, truncated, last = [], [], False, None
    for key in sorted(b["objects"]):
        if after is not None and key <= after:
            continue
        if not key.startswith(prefix):
            continue
        if delim:
            i = key.find(delim, len(prefix))
            if i >= 0:
                cp = key[:i + len(delim)]
                if cp in prefixes or (after is not None and cp <= after):
                    continue
                if len(contents) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                prefixes.append(cp)
                last = cp
                continue
        if len(contents) + len(prefixes) >= max_keys:
            truncated = True
            break
        contents.append(key)
        last = key
    return contents, prefixes, truncated, last


def _content(key, obj, url, owner=None):
    out = {"Key": _encode(key, url), "LastModified": obj["last_modified"], "ETag": obj["etag"],
           "Size": obj["size"], "StorageClass": obj.get("storage_class", "STANDARD")}
    if owner:
        out["Owner"] = owner
    return out


def _max_keys(req):
    try:
        n = int(req.qdict.get("max-keys", 1000))
    except ValueError:
        raise AwsError("InvalidArgument", "Provided max-keys not an integer or within integer "
                       "range", extra={"ArgumentName": "max-keys",
                                       "ArgumentValue": req.qdict.get("max-keys")})
    if n < 0:
        raise AwsError("InvalidArgument", "Argument maxKeys must be an integer between 0 and "
                       "2147483647", extra={"ArgumentName": "maxKeys", "ArgumentValue": n})
    return min(n, 1000)


def list_objects_v2(ctx, req):
    b = _bucket(ctx, req)
    q = req.qdict
    url = q.get("encoding-type") == "url"
    if url is False and q.get("encoding-type") not in (None, ""):
        raise AwsError("InvalidArgument", "Invalid Encoding Method specified in Request",
                       extra={"ArgumentName": "encoding-type"})
    max_keys = _max_keys(req)
    token = q.get("continuation-token")
    after = q.get("start-after") or None
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except ValueError:
            raise AwsError("InvalidArgument", "The continuation token provided is incorrect",
                           extra={"ArgumentName": "continuation-token"})
    contents, prefixes, truncated, last = _listing(ctx, req, b, after, max_keys)
    owner = None
    if q.get("fetch-owner") == "true":
        owner = {"ID": hashlib.sha256(ctx.account.encode()).hexdigest(),
                 "DisplayName": f"fakeaws-{ctx.account}"}
    value = {"IsTruncated": truncated, "Name": req.bucket,
             "Prefix": _encode(q.get("prefix", ""), url), "MaxKeys": max_keys,
             "KeyCount": len(contents) + len(prefixes),
             "Contents": [_content(k, b["objects"][k], url, owner) for k in contents] or None,
             "CommonPrefixes": [{"Prefix": _encode(p, url)} for p in prefixes] or None,
             "Delimiter": _encode(q.get("delimiter"), url) or None,
             "EncodingType": "url" if url else None, "ContinuationToken": token,
             "StartAfter": _encode(q.get("start-after"), url) or None}
    if truncated:
        value["NextContinuationToken"] = base64.urlsafe_b64encode(last.encode()).decode()
    body = xml_document("ListBucketResult", _out_shape("ListObjectsV2"), value)
    return 200, [("Content-Type", "application/xml")], body


def list_objects(ctx, req):
    b = _bucket(ctx, req)
    q = req.qdict
    url = q.get("encoding-type") == "url"
    max_keys = _max_keys(req)
    marker = q.get("marker") or None
    contents, prefixes, truncated, last = _listing(ctx, req, b, marker, max_keys)
    value = {"IsTruncated": truncated, "Name": req.bucket, "Marker": _encode(marker or "", url),
             "Prefix": _encode(q.get("prefix", ""), url), "MaxKeys": max_keys,
             "Contents": [_content(k, b["objects"][k], url) for k in contents] or None,
             "CommonPrefixes": [{"Prefix": _encode(p, url)} for p in prefixes] or None,
             "Delimiter": _encode(q.get("delimiter"), url) or None,
             "EncodingType": "url" if url else None}
    if truncated and q.get("delimiter"):
        value["NextMarker"] = _encode(last, url)
    body = xml_document("ListBucketResult", _out_shape("ListObjects"), value)
    return 200, [("Content-Type", "application/xml")], body


OPS = {"ListBuckets": list_buckets, "CreateBucket": create_bucket, "HeadBucket": head_bucket,
       "DeleteBucket": delete_bucket, "GetBucketLocation": get_bucket_location,
       "PutBucketEncryption": put_bucket_encryption,
       "GetBucketEncryption": get_bucket_encryption,
       "DeleteBucketEncryption": delete_bucket_encryption,
       "PutBucketVersioning": put_bucket_versioning,
       "GetBucketVersioning": get_bucket_versioning,
       "PutPublicAccessBlock": put_public_access_block,
       "GetPublicAccessBlock": get_public_access_block,
       "DeletePublicAccessBlock": delete_public_access_block,
       "PutBucketPolicy": put_bucket_policy, "GetBucketPolicy": get_bucket_policy,
       "DeleteBucketPolicy": delete_bucket_policy, "PutObject": put_object,
       "CopyObject": copy_object, "GetObject": get_object, "HeadObject": head_object,
       "DeleteObject": delete_object, "DeleteObjects": delete_objects,
       "ListObjectsV2": list_objects_v2, "ListObjects": list_objects}


def handle(ctx, req):
    fn = OPS.get(ctx.op)
    if fn is None:
        raise AwsError("NotImplemented", "A header you provided implies functionality that is "
                       f"not implemented (fakeaws: {ctx.op})", 501)
    return fn(ctx, req)


def fetch(world, bucket, key):
    """Object bytes for CloudFormation's TemplateURL (None when missing)."""
    b = buckets(world).get(bucket)
    if b is None or key not in b["objects"]:
        return None
    return _obj_data(b["objects"][key])


def seed(world, account, region, data):
    for spec in data.get("buckets", []):
        b = make_bucket(world, account, spec.get("region", region), spec["name"], world.now())
        for key, text in spec.get("objects", {}).items():
            raw = text.encode() if isinstance(text, str) else bytes(text)
            b["objects"][key] = {"data": base64.b64encode(raw).decode(), "size": len(raw),
                                 "etag": '"' + hashlib.md5(raw).hexdigest() + '"',
                                 "last_modified": int(world.now()),
                                 "content_type": "binary/octet-stream", "metadata": {},
                                 "headers": {}, "sse": "AES256", "kms_key": None,
                                 "checksums": {}, "storage_class": "STANDARD",
                                 "version_id": None}
