"""SigV4 verification with botocore.auth computing the expected signature.

Both forms are handled: the Authorization header and presigned URLs
(X-Amz-Credential & co in the query string), session tokens, S3's
x-amz-content-sha256 (a hash that must match the body, UNSIGNED-PAYLOAD,
or aws-chunked STREAMING-* bodies whose chunk signatures are verified too).

The canonical request is rebuilt from what the client sent: only the headers
it listed in SignedHeaders, the query string decoded and re-encoded the
canonical way, and the path encoded once (S3) or twice (other services),
exactly like AWS does.  A failure raises AuthFailure(kind, ...); the server
turns kinds into each protocol's real error code and format.
"""
import calendar
import hashlib
import hmac
import re
import time
from urllib.parse import quote, unquote

from botocore.auth import SigV4Auth
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from botocore.awsrequest import AWSRequest
from botocore.utils import normalize_url_path

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING = ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
             "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")


class AuthFailure(Exception):
    """kind: missing, incomplete, unknown_key, bad_token, expired_token,
    signature, skew, presign_expired, content_sha256."""

    def __init__(self, kind, message="", **detail):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.detail = detail


class AuthInfo:
    def __init__(self, form, access_key, date, region, service, signed, signature,
                 amz_date, token, expires=None):
        self.form = form  # "header" or "query"
        self.access_key = access_key
        self.date = date
        self.region = region
        self.service = service
        self.signed = signed
        self.signature = signature
        self.amz_date = amz_date
        self.token = token
        self.expires = expires


def _amz_date(headers):
    v = headers.get("x-amz-date")
    if v:
        return v
    d = headers.get("date")
    if d:
        import email.utils
        try:
            t = email.utils.mktime_tz(email.utils.parsedate_tz(d))
            return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))
        except Exception:
            return None
    return None


def parse(headers, query):
    """AuthInfo from the Authorization header or presigned query parameters,
    None for an anonymous request.  headers: lower-case name -> value;
    query: list of decoded (name, value) pairs."""
    auth = headers.get("authorization")
    if auth:
        if not auth.startswith("AWS4-HMAC-SHA256"):
            if auth.startswith("AWS4-ECDSA-P256-SHA256"):
                raise AuthFailure("incomplete", "SigV4a is not supported by fakeaws")
            raise AuthFailure("incomplete", "Unsupported Authorization Type")
        fields = {}
        for part in auth[len("AWS4-HMAC-SHA256"):].split(","):
            k, _, v = part.strip().partition("=")
            fields[k.strip()] = v.strip()
        for need in ("Credential", "SignedHeaders", "Signature"):
            if need not in fields:
                raise AuthFailure("incomplete", f"Authorization header requires '{need}' "
                                  f"parameter. Authorization={auth}")
        cred, signed, sig = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
        amz_date = _amz_date(headers)
        if not amz_date:
            raise AuthFailure("incomplete", "Authorization header requires existence of "
                              "either a 'X-Amz-Date' or a 'Date' header. "
                              f"Authorization={auth}")
        token = headers.get("x-amz-security-token")
        form, expires = "header", None
    else:
        q = dict(query)
        if "X-Amz-Credential" not in q and "X-Amz-Signature" not in q:
            return None
        if q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise AuthFailure("incomplete", "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
        for need in ("X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Date"):
            if need not in q:
                raise AuthFailure("incomplete", f"AWS query-string parameters must include "
                                  f"'{need}'. Re-examine the query-string parameters.")
        cred, signed, sig = q["X-Amz-Credential"], q["X-Amz-SignedHeaders"], q["X-Amz-Signature"]
        amz_date = q["X-Amz-Date"]
        token = q.get("X-Amz-Security-Token")
        form = "query"
        try:
            expires = int(q.get("X-Amz-Expires", "900"))
        except ValueError:
            raise AuthFailure("incomplete", "X-Amz-Expires should be a number")
    parts = cred.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise AuthFailure("incomplete", f"Credential should be scoped to a valid region. "
                          f"Credential={cred}")
    if not re.match(r"^\d{8}T\d{6}Z$", amz_date or ""):
        raise AuthFailure("incomplete", f"Invalid date {amz_date!r}")
    return AuthInfo(form, parts[0], parts[1], parts[2], parts[3],
                    [h.strip().lower() for h in signed.split(";") if h.strip()],
                    sig, amz_date, token, expires)


def amz_time(amz_date):
    return calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))


class _Verifier(SigV4Auth):
    """SigV4Auth whose inputs are pinned to what the client signed."""

    def __init__(self, credentials, service, region, signed, query, presigned, body):
        super().__init__(credentials, service, region)
        self._body = body
        self._signed = set(signed)
        self._query = query
        self._presigned = presigned

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name, value in request.headers.items():
            if name.lower() in self._signed:
                hm[name.lower()] = value
        return hm

    def canonical_query_string(self, request):
        pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~"))
                       for k, v in self._query
                       if not (self._presigned and k == "X-Amz-Signature"))
        return "&".join(f"{k}={v}" for k, v in pairs)

    def _normalize_url_path(self, path):
        once = quote(unquote(path), safe="/~")
        if self._service_name == "s3":
            return once
        return quote(normalize_url_path(once), safe="/~")

    def payload(self, request):
        if self._presigned and self._service_name == "s3":
            return UNSIGNED
        return hashlib.sha256(self._body or b"").hexdigest()


def verify(info, secret, method, host, raw_path, query, header_list, body):
    """Check the signature; returns the verifier (for aws-chunked bodies).
    Raises AuthFailure("signature", ...) with the canonical request and the
    string to sign the server expected."""
    req = AWSRequest(method=method, url=f"http://{host}{raw_path.split('?', 1)[0]}")
    for name, value in header_list:
        if info.form == "header" and name.lower() == "authorization":
            continue
        req.headers[name] = value
    creds = Credentials(info.access_key, secret, info.token)
    v = _Verifier(creds, info.service, info.region, info.signed, query, info.form == "query",
                  body)
    req.context["timestamp"] = info.amz_date
    if info.date != info.amz_date[:8]:
        raise AuthFailure("signature", "Date in Credential scope does not match YYYYMMDD "
                          f"from ISO-8601 version of date from HTTP: '{info.date}' != "
                          f"'{info.amz_date[:8]}', from '{info.amz_date}'.")
    if "host" not in info.signed:
        raise AuthFailure("signature", "'Host' or ':authority' must be a 'SignedHeader' in "
                          "the AWS Authorization.")
    canonical = v.canonical_request(req)
    sts = v.string_to_sign(req, canonical)
    expected = v.signature(sts, req)
    if not hmac.compare_digest(expected, info.signature):
        raise AuthFailure("signature", "", canonical=canonical, string_to_sign=sts,
                          provided=info.signature)
    v._request = req
    return v


def _chunk_sts(info, prev, data, kind="AWS4-HMAC-SHA256-PAYLOAD"):
    scope = f"{info.date}/{info.region}/{info.service}/aws4_request"
    return "\n".join([kind, info.amz_date, scope, prev, EMPTY_SHA256,
                      hashlib.sha256(data).hexdigest()])


def decode_chunked(body, mode, info, verifier):
    """Decode an aws-chunked body.  mode is the x-amz-content-sha256 value;
    for the signed modes every chunk signature is checked.  Returns
    (payload bytes, trailer dict)."""
    signed = mode.startswith("STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    out, pos, prev, trailers = [], 0, info.signature if info else "", {}
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise AuthFailure("incomplete", "malformed aws-chunked body")
        header = body[pos:eol].decode("latin-1")
        size_s, _, ext = header.partition(";")
        try:
            size = int(size_s, 16)
        except ValueError:
            raise AuthFailure("incomplete", "malformed aws-chunked chunk size")
        data = body[eol + 2:eol + 2 + size]
        if len(data) != size:
            raise AuthFailure("incomplete", "truncated aws-chunked body")
        if signed:
            sig = ext.partition("chunk-signature=")[2].strip()
            want = verifier.signature(_chunk_sts(info, prev, data), verifier._request)
            if not hmac.compare_digest(sig, want):
                raise AuthFailure("signature", "chunk signature mismatch",
                                  canonical="", string_to_sign=_chunk_sts(info, prev, data),
                                  provided=sig)
            prev = sig
        pos = eol + 2 + size
        if size == 0:
            break
        if body[pos:pos + 2] != b"\r\n":
            raise AuthFailure("incomplete", "malformed aws-chunked body")
        pos += 2
        out.append(data)
    rest = body[pos:].decode("latin-1")
    for line in rest.split("\r\n"):
        if ":" in line:
            k, _, val = line.partition(":")
            trailers[k.strip().lower()] = val.strip()
    return b"".join(out), trailers
