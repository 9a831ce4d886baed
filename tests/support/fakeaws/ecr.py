"""ECR: GetAuthorizationToken, DescribeRepositories, DescribeImages.

Repositories come from CloudFormation (AWS::ECR::Repository) or from
POST /__fake/seed {"ecr": {"repositories": [{"repositoryName": "app",
"images": [{"imageTag": "v1"} ...]}]}}; images get a stable sha256 digest.
"""
import base64
import hashlib

from .protocol import AwsError


def _repos(world, account, region):
    return world.store(account, region, "ecr").setdefault("repositories", {})


def make_repository(world, account, region, name, now, extra=None):
    repos = _repos(world, account, region)
    rec = repos.get(name)
    if rec is None:
        rec = {"repositoryArn": f"arn:aws:ecr:{region}:{account}:repository/{name}",
               "registryId": account, "repositoryName": name,
               "repositoryUri": f"{account}.dkr.ecr.{region}.amazonaws.com/{name}",
               "createdAt": now, "imageTagMutability": "MUTABLE",
               "imageScanningConfiguration": {"scanOnPush": False},
               "encryptionConfiguration": {"encryptionType": "AES256"}, "images": []}
        repos[name] = rec
    for k, v in (extra or {}).items():
        if k in ("imageTagMutability", "imageScanningConfiguration", "encryptionConfiguration"):
            rec[k] = v
    return rec


def delete_repository(world, account, region, name):
    _repos(world, account, region).pop(name, None)


def add_image(rec, image, now):
    tags = image.get("imageTags") or ([image["imageTag"]] if image.get("imageTag") else [])
    digest = image.get("imageDigest") or "sha256:" + hashlib.sha256(
        (rec["repositoryName"] + ":" + ",".join(tags) + ":" + str(len(rec["images"])))
        .encode()).hexdigest()
    for other in rec["images"]:  # a tag moves to the newest image
        other["imageTags"] = [t for t in other["imageTags"] if t not in tags]
    rec["images"].append({"registryId": rec["registryId"],
                          "repositoryName": rec["repositoryName"], "imageDigest": digest,
                          "imageTags": tags,
                          "imageSizeInBytes": int(image.get("imageSizeInBytes", 31457280)),
                          "imagePushedAt": float(image.get("imagePushedAt", now)),
                          "imageManifestMediaType":
                              "application/vnd.docker.distribution.manifest.v2+json",
                          "artifactMediaType": "application/vnd.docker.container.image.v1+json"})


def _registry(ctx, p):
    reg = p.get("registryId") or ctx.account
    return reg


def _not_found(name, registry):
    return AwsError("RepositoryNotFoundException", f"The repository with name '{name}' does "
                    f"not exist in the registry with id '{registry}'")


def _page(ctx, op, items, p, default):
    size = min(int(p.get("maxResults") or default), ctx.page_size(op, default))
    start = int(p.get("nextToken") or 0)
    out = items[start:start + size]
    token = str(start + size) if start + size < len(items) else None
    return out, token


def get_authorization_token(ctx, p):
    token = base64.b64encode(b"AWS:" + hashlib.sha256(
        f"{ctx.account}/{ctx.now}".encode()).hexdigest().encode()).decode()
    return {"authorizationData": [{
        "authorizationToken": token, "expiresAt": ctx.now + 12 * 3600,
        "proxyEndpoint": f"https://{ctx.account}.dkr.ecr.{ctx.region}.amazonaws.com"}]}


def _public_repo(rec):
    return {k: v for k, v in rec.items() if k != "images"}


def describe_repositories(ctx, p):
    registry = _registry(ctx, p)
    repos = _repos(ctx.world, registry, ctx.region) if registry == ctx.account else {}
    names = p.get("repositoryNames")
    if names:
        for n in names:
            if n not in repos:
                raise _not_found(n, registry)
        items = [repos[n] for n in names]
        return {"repositories": [_public_repo(r) for r in items]}
    items = [repos[n] for n in sorted(repos)]
    page, token = _page(ctx, "DescribeRepositories", items, p, 100)
    return {"repositories": [_public_repo(r) for r in page], "nextToken": token}


def describe_images(ctx, p):
    registry = _registry(ctx, p)
    repos = _repos(ctx.world, registry, ctx.region) if registry == ctx.account else {}
    name = p["repositoryName"]
    rec = repos.get(name)
    if rec is None:
        raise _not_found(name, registry)
    images = rec["images"]
    ids = p.get("imageIds")
    if ids:
        out = []
        for i in ids:
            hit = [im for im in images
                   if (i.get("imageDigest") is None or im["imageDigest"] == i["imageDigest"])
                   and (i.get("imageTag") is None or i["imageTag"] in im["imageTags"])]
            if not hit:
                raise AwsError("ImageNotFoundException", "The image with imageId {imageDigest:'"
                               f"{i.get('imageDigest', 'null')}', imageTag:'"
                               f"{i.get('imageTag', 'null')}'}} does not exist within the "
                               f"repository with name '{name}' in the registry with id "
                               f"'{registry}'")
            out.extend(h for h in hit if h not in out)
        return {"imageDetails": [_detail(im) for im in out]}
    status = (p.get("filter") or {}).get("tagStatus", "ANY")
    items = [im for im in images if status == "ANY"
             or (status == "TAGGED") == bool(im["imageTags"])]
    page, token = _page(ctx, "DescribeImages", items, p, 100)
    return {"imageDetails": [_detail(im) for im in page], "nextToken": token}


def _detail(im):
    out = dict(im)
    if not out["imageTags"]:
        del out["imageTags"]
    return out


def seed(world, account, region, data):
    for repo in data.get("repositories", []):
        rec = make_repository(world, account, region, repo["repositoryName"], world.now(), repo)
        for image in repo.get("images", []):
            add_image(rec, image, world.now())


OPS = {"GetAuthorizationToken": get_authorization_token,
       "DescribeRepositories": describe_repositories, "DescribeImages": describe_images}
