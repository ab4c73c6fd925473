"""Small synthetic images pushed through the OCI distribution API (no Docker build): one shared layer, a config
with the given ``created`` time, a manifest under a tag. Used by the cleanup tests and bench."""
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone

import requests

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER = b"berth.converge cleanup test layer"


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def iso(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(**delta):
    return datetime.now(timezone.utc) - timedelta(**delta)


def _base(session, registry):
    """https for a session set up for TLS (``session.verify`` a CA file), else http."""
    return f"{'https' if isinstance(session.verify, str) else 'http'}://{registry}"


def upload_blob(session, registry, repository, data):
    digest = _digest(data)
    base = f"{_base(session, registry)}/v2/{repository}/blobs"
    if session.head(f"{base}/{digest}", timeout=30).status_code == 200:
        return digest
    start = session.post(f"{base}/uploads/", timeout=30)
    start.raise_for_status()
    location = start.headers["Location"]
    if location.startswith("/"):
        location = f"{_base(session, registry)}{location}"
    put = session.put(location + ("&" if "?" in location else "?") + f"digest={digest}", data=data,
                      headers={"Content-Type": "application/octet-stream"}, timeout=30)
    put.raise_for_status()
    return digest


def image_manifest(session, registry, repository, created, nonce=None):
    """Upload the blobs of a synthetic image; return the manifest bytes (not pushed yet)."""
    layer = upload_blob(session, registry, repository, LAYER)
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": iso(created),
                         "config": {"Labels": {"nonce": nonce or os.urandom(8).hex()}},
                         "rootfs": {"type": "layers", "diff_ids": [_digest(LAYER)]}}, sort_keys=True).encode()
    config_digest = upload_blob(session, registry, repository, config)
    return json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                       "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config)},
                       "layers": [{"mediaType": LAYER_TYPE, "digest": layer, "size": len(LAYER)}]},
                      sort_keys=True).encode()


def put_manifest(session, registry, repository, tag, manifest):
    """Push manifest bytes under ``tag``; return the manifest digest."""
    response = session.put(f"{_base(session, registry)}/v2/{repository}/manifests/{tag}", data=manifest,
                           headers={"Content-Type": MANIFEST_TYPE}, timeout=30)
    response.raise_for_status()
    return response.headers.get("Docker-Content-Digest") or _digest(manifest)


def push_image(registry, repository, tag, created=None, session=None):
    """Push a unique synthetic image as ``repository:tag``; return its manifest digest."""
    session = session or requests.Session()
    manifest = image_manifest(session, registry, repository, created or ago(days=3))
    return put_manifest(session, registry, repository, tag, manifest)


def tags_of(registry, repository, session=None):
    """The repository's tags now (sorted), straight from the registry."""
    session = session or requests.Session()
    response = session.get(f"{_base(session, registry)}/v2/{repository}/tags/list", timeout=30)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return sorted(response.json().get("tags") or [])
