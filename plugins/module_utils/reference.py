# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references, read as Docker reads them: the one parser of the collection.

It follows ``github.com/distribution/reference``'s ``ParseNormalizedNamed`` (with go-digest's digest
checks): a first component with ``.`` or ``:``, ``localhost`` or an upper-case letter is the registry,
else the registry is ``docker.io``; ``index.docker.io`` becomes ``docker.io``; a one-component name on
Docker Hub gets ``library/``; repository paths are lower case; a 64-hex-digit string is an image id, not a
name. Where the Go library returns a name with no registry at all (a first component such as
``ex_ample.com`` that is neither a host nor on Docker Hub), we reject it. hack/conformance/reference runs
the Go library on the same inputs (test_reference_conformance.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError

DOCKER_HUB = "docker.io"
DOCKER_HUB_LEGACY = "index.docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_PATH_LENGTH = 255

# The grammar of distribution/reference's regexp.go (ASCII: Go's \w is [0-9A-Za-z_]).
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|[-]+){_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[(?:[a-fA-F0-9:]+)\])"
_DOMAIN_AND_PORT = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_REFERENCE_RE = re.compile(rf"((?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_NAME_RE = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})", re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
# go-digest's registered algorithms (Docker links sha256 and sha512): hex length of each
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. ``registry`` includes the port; Docker Hub is ``docker.io``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self):
        """``registry/repository``, the normalized name without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def target(self):
        """What the manifest is addressed by: the digest when there is one, else the tag."""
        return self.digest or self.tag

    @property
    def api_host(self):
        """Host (and port) that serves the registry API."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    def __str__(self):
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _invalid(ref, why):
    return ConvergeError(f"invalid image reference {ref!r}: {why}", image=ref)


def _split_docker_domain(name):
    first, slash, rest = name.partition("/")
    if not slash:
        return DOCKER_HUB, OFFICIAL_PREFIX + name
    if first == DOCKER_HUB_LEGACY:
        domain, remote = DOCKER_HUB, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DOCKER_HUB, name
    if domain == DOCKER_HUB and "/" not in remote:
        remote = OFFICIAL_PREFIX + remote
    return domain, remote


def _check_digest(ref, digest):
    algorithm, _colon, encoded = digest.partition(":")
    length = _DIGEST_HEX_LENGTH.get(algorithm)
    if length is None:
        raise _invalid(ref, f"unsupported digest algorithm {algorithm!r}")
    if len(encoded) != length or not re.fullmatch(r"[a-f0-9]+", encoded):
        raise _invalid(ref, f"digest {digest!r} is not {length} lower-case hexadecimal digits")


def _what_is_wrong(domain, remainder):
    """Which part of a reference the grammar refuses, for the error message."""
    name, at, digest = remainder.partition("@")
    if at and not re.fullmatch(_DIGEST, digest, re.ASCII):
        return f"bad digest {digest!r}"
    slash = name.rfind("/")
    colon = name.find(":", slash + 1)
    if colon >= 0:
        name, tag = name[:colon], name[colon + 1:]
        if not re.fullmatch(_TAG, tag, re.ASCII):
            return f"bad tag {tag!r}"
    if not re.fullmatch(_DOMAIN_AND_PORT, domain, re.ASCII):
        return f"bad registry host {domain!r}"
    return (f"repository {name!r}: path components are lower-case letters and digits joined by "
            "separators (., _, __, -)")


def parse_reference(ref, default_tag=DEFAULT_TAG):
    """Parse an image reference as Docker does (see the module docstring).

    Without tag or digest the tag is ``default_tag`` (``None`` keeps it absent). Raises ConvergeError
    naming the reference when it is invalid.
    """
    if not isinstance(ref, str) or not ref:
        raise _invalid(ref, "expected a non-empty string")
    if _IDENTIFIER_RE.fullmatch(ref):
        raise _invalid(ref, "a 64-character hexadecimal string is an image id, not a repository name")
    domain, remainder = _split_docker_domain(ref)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise _invalid(ref, f"repository {remote!r} must be lowercase")
    full = f"{domain}/{remainder}"
    match = _REFERENCE_RE.fullmatch(full)
    if match is None:
        if _REFERENCE_RE.fullmatch(full.lower()):
            raise _invalid(ref, "repository name must be lowercase")
        raise _invalid(ref, _what_is_wrong(domain, remainder))
    name, tag, digest = match.groups()
    registry, repository = _NAME_RE.fullmatch(name).groups()
    if registry is None:  # Go reads e.g. ex_ample.com/app as a path with no registry: nothing to pull from
        raise _invalid(ref, f"bad registry host {domain!r}")
    if len(repository) > MAX_PATH_LENGTH:
        raise _invalid(ref, f"repository name longer than {MAX_PATH_LENGTH} characters")
    if digest:
        _check_digest(ref, digest)
    if not tag and not digest:
        tag = default_tag
    return Reference(registry, repository, tag or None, digest or None)


def parse_repository(name):
    """A Reference without tag or digest for a repository name such as ``registry.example.com/shop/backend``."""
    reference = parse_reference(name, default_tag=None)
    if reference.tag or reference.digest:
        raise ConvergeError(f"invalid repository {name!r}: a repository has no tag or digest", image=name)
    return Reference(reference.registry, reference.repository)


def split_written(ref):
    """``(name as written, tag or "")`` of a valid reference: what precedes ``:tag`` / ``@digest``.

    For values that show the user's own spelling (werf's ``.Values.werf.repo``), where the normalized
    :attr:`Reference.name` would add ``docker.io/library/``.
    """
    parsed = parse_reference(ref, default_tag=None)
    written = ref
    if parsed.digest:
        written = written[: -len(parsed.digest) - 1]
    if parsed.tag:
        written = written[: -len(parsed.tag) - 1]
    return written, parsed.tag or ""
