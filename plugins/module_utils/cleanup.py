# -*- coding: utf-8 -*-
# Copyright: berth.converge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry cleanup as werf does it: keep what clusters use, what Git references need and what is fresh; delete
the rest by manifest digest (docs/cleanup.md).

Tags are content digests computed from a commit, so "the image of a commit" is found by computing the digests at
that commit (no metadata in the registry is needed). A plan is made first (``Cleanup.plan``); ``Cleanup.execute``
then refuses a registry without deletes before any DELETE, re-reads the clusters and the tag lists, and deletes
only what is still unused.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ansible_collections.berth.converge.plugins.module_utils.config import Limit, KeepPolicy
from ansible_collections.berth.converge.plugins.module_utils.digest import compute_digests, image_repo
from ansible_collections.berth.converge.plugins.module_utils.errors import ConvergeError
from ansible_collections.berth.converge.plugins.module_utils.kube.apply import run_parallel
from ansible_collections.berth.converge.plugins.module_utils.kube.release import history
from ansible_collections.berth.converge.plugins.module_utils.kube.resource import Kube, KubeApiError
from ansible_collections.berth.converge.plugins.module_utils.project import load_project
from ansible_collections.berth.converge.plugins.module_utils.reference import parse_reference

# The tags berth.converge pushes: a SHA-256 content digest. Any other tag is someone else's and is kept.
CONTENT_TAG = re.compile(r"^[0-9a-f]{64}$")
WEEK = 7 * 24 * 3600


def _policy(kind, pattern, limit=None, images=Limit()):
    body = pattern[1:-1] if pattern.startswith("/") else re.escape(pattern)
    return KeepPolicy(kind=kind, pattern=pattern, regex=re.compile(f"^(?:{body})$"), limit=limit,
                      images_per_reference=images)


# werf's defaults when werf.yaml has no keepPolicies (pkg/cleaning/git_history_based_cleanup, werf v2).
DEFAULT_KEEP_POLICIES = (
    _policy("tag", "/.*/", Limit(last=10)),
    _policy("branch", "/.*/", Limit(last=10, within=WEEK), Limit(last=2, within=WEEK)),
    _policy("branch", "/^(main|master|staging|production)$/", None, Limit(last=10)),
)

# Kinds whose objects hold container images, read in every release namespace (werf reads the same kinds).
WORKLOAD_PATHS = (
    ("Pod", "/api/v1/namespaces/{}/pods"),
    ("ReplicationController", "/api/v1/namespaces/{}/replicationcontrollers"),
    ("Deployment", "/apis/apps/v1/namespaces/{}/deployments"),
    ("ReplicaSet", "/apis/apps/v1/namespaces/{}/replicasets"),
    ("StatefulSet", "/apis/apps/v1/namespaces/{}/statefulsets"),
    ("DaemonSet", "/apis/apps/v1/namespaces/{}/daemonsets"),
    ("Job", "/apis/batch/v1/namespaces/{}/jobs"),
    ("CronJob", "/apis/batch/v1/namespaces/{}/cronjobs"),
)
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
LIST_PAGE = 500
KEEP, DELETE, DELETED = "keep", "delete", "deleted"


def human_duration(seconds):
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}h{minutes:02d}m" if minutes and hours < 48 else f"{hours}h"


# ------------------------------------------------------------------------------------------------ images in use

def container_images(obj):
    """Every container image named anywhere in a Kubernetes object (pod specs at any depth, e.g. CronJob
    templates or custom resources), plus the image IDs a Pod's status reports."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in CONTAINER_LISTS and isinstance(value, list):
                    found.extend(c["image"] for c in value if isinstance(c, dict) and isinstance(c.get("image"), str))
                elif key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses") \
                        and isinstance(value, list):
                    found.extend(s["imageID"].split("://", 1)[-1] for s in value
                                 if isinstance(s, dict) and isinstance(s.get("imageID"), str) and s["imageID"])
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(obj)
    return found


def revision_images(revision):
    """Image references of a release revision: the images it records and those its manifests name."""
    refs = []
    for image in revision.payload.get("images") or []:
        ref = image.get("ref") if isinstance(image, dict) else image
        if isinstance(ref, str) and ref:
            refs.append(ref)
    for manifest in revision.manifests:
        refs.extend(container_images(manifest))
    return refs


@dataclass
class Cluster:
    """A cluster to ask which images are in use: its API client, the releases and the extra namespaces."""

    label: str
    api: object
    releases: list          # [(release, namespace)]
    namespaces: list = field(default_factory=list)


def _list_all(kube, path):
    items, token = [], None
    while True:
        query = {"limit": LIST_PAGE, **({"continue": token} if token else {})}
        answer = kube.request("GET", path, query)
        items.extend(answer.get("items") or [])
        token = (answer.get("metadata") or {}).get("continue")
        if not token:
            return items


def images_in_use(clusters, keep_revisions, concurrency=8):
    """``{image reference: [reason, ...]}`` over every cluster: the deployed and pending revisions and the last
    ``keep_revisions`` revisions of each release, and the live workloads of the release namespaces."""
    used = {}

    def note(ref, reason):
        used.setdefault(ref, []).append(reason)

    for cluster in clusters:
        kube = Kube.of(cluster.api)
        where = f" (cluster {cluster.label})" if cluster.label else ""
        for release, namespace in cluster.releases:
            revisions = history(kube, release, namespace)
            recent = {revision.version for revision in revisions[-keep_revisions:]} if keep_revisions > 0 else set()
            for revision in revisions:
                status = str(revision.status)
                if revision.version in recent or status == "deployed" or status.startswith("pending"):
                    for ref in revision_images(revision):
                        note(ref, f"release {release} revision {revision.version} ({status}) in namespace "
                                  f"{namespace}{where}")
        namespaces = list(dict.fromkeys([ns for _release, ns in cluster.releases] + list(cluster.namespaces)))
        jobs = [(kind, ns, path.format(ns)) for ns in namespaces for kind, path in WORKLOAD_PATHS]
        for (kind, ns, path), answer in run_parallel(lambda job: _list_all(kube, job[2]), jobs, concurrency):
            if isinstance(answer, KubeApiError) and answer.not_found:
                continue
            if isinstance(answer, Exception):
                raise ConvergeError(f"cannot list {kind} objects in namespace {ns}{where}: {answer}")
            for obj in answer:
                name = (obj.get("metadata") or {}).get("name")
                for ref in container_images(obj):
                    note(ref, f"{kind} {ns}/{name}{where}")
    return used


# ------------------------------------------------------------------------------------------------ Git policies

@dataclass
class GitReference:
    kind: str          # "tag" or "branch"
    name: str          # short name, without origin/
    commit: str
    time: int          # unix: tag creation (tagger date, else commit date) or the branch head's commit date


def git_references(git):
    """Tags, local branches and the origin remote's branches (werf scans origin; a local clone has only heads)."""
    out = git.git("for-each-ref", "--format=%(refname)%00%(objecttype)%00%(objectname)%00%(*objectname)%00"
                  "%(taggerdate:unix)%00%(committerdate:unix)%00%(*committerdate:unix)",
                  "refs/tags", "refs/heads", "refs/remotes/origin").decode()
    refs = []
    for line in out.splitlines():
        name, kind, oid, peeled, tagger, committed, peeled_committed = line.split("\0")
        if name.startswith("refs/tags/"):
            if kind == "tag" and not peeled_committed:
                continue  # an annotated tag of something other than a commit
            commit = peeled or oid
            when = int(tagger or peeled_committed or committed or 0)
            refs.append(GitReference("tag", name[len("refs/tags/"):], commit, when))
        elif kind == "commit":
            short = name[len("refs/heads/"):] if name.startswith("refs/heads/") else name[len("refs/remotes/origin/"):]
            if short != "HEAD":
                refs.append(GitReference("branch", short, oid, int(committed or 0)))
    return refs


def _limit_references(refs, limit, now):
    """werf's references.limit: the last N by time, those within the period, And/Or of both."""
    if limit is None:
        return refs
    by_time = sorted(refs, key=lambda ref: ref.time, reverse=True)
    by_last = by_time if limit.last is None or limit.last < 0 else by_time[:limit.last]
    by_in = by_time if limit.within is None else [ref for ref in by_time if ref.time > now - limit.within]
    if limit.operator == "Or":
        return by_last + [ref for ref in by_in if ref not in by_last]
    return [ref for ref in by_last if ref in by_in]


def references_to_scan(refs, policies, now):
    """[(GitReference, imagesPerReference Limit, policy)] as werf selects them: each policy picks references by
    name and limit; a reference several policies pick takes the imagesPerReference of the last one."""
    chosen = {}
    for policy in policies:
        matching = [ref for ref in refs if ref.kind == policy.kind and policy.regex.match(ref.name)]
        for ref in _limit_references(matching, policy.limit, now):
            chosen[(ref.kind, ref.name, ref.commit)] = (ref, policy.images_per_reference, policy)
    return sorted(chosen.values(), key=lambda item: item[0].time, reverse=True)


class CommitImages:
    """The image tags of a commit, computed as image_digest does; cached per commit and per tree."""

    def __init__(self, project_dir, config_path, env, repo, warnings):
        self.project_dir = project_dir
        self.config_path = config_path
        self.env = env
        self.repo = repo
        self.warnings = warnings
        self._by_commit = {}
        self._by_tree = {}

    def tags(self, commit, tree=None):
        """``{image name: tag}`` at ``commit``; {} when werf.yaml or a Dockerfile cannot be read there."""
        if commit in self._by_commit:
            return self._by_commit[commit]
        if tree and tree in self._by_tree:
            result = self._by_tree[tree]
        else:
            try:
                project = load_project(self.project_dir, self.config_path, revision=commit, env=self.env)
                result = {image.name: image.tag for image in compute_digests(project.git, project.config, self.repo)}
            except ConvergeError as exc:
                self.warnings.append(f"commit {commit[:12]}: no images computed ({exc}); its images count as unknown")
                result = {}
            if tree:
                self._by_tree[tree] = result
        self._by_commit[commit] = result
        return result


def _history(git, commit):
    """(commit, tree, committer time) from ``commit`` back, newest first (children before parents)."""
    proc = subprocess.Popen(["git", "-C", git.path, "log", "--date-order", "--format=%H %T %ct", commit],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            sha, tree, when = line.split()
            yield sha, tree, int(when)
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def _pick(reached, limit, now):
    """werf's imagesPerReference on ``reached`` = [(tag, commit, time)] newest first: the last N images, those
    built from commits within the period, And/Or."""
    if limit.last == 0:
        return []
    last = 1 if limit.last is None else limit.last
    by_last = reached if last < 0 else reached[:last]
    if limit.within is None:
        return by_last
    by_in = [item for item in reached if item[2] > now - limit.within]
    if limit.operator == "Or":
        return by_last + [item for item in by_in if item not in by_last]
    return [item for item in by_last if item in by_in]


def kept_by_git(git, commit_images, existing, policies, now):
    """``{(image, tag): [reason, ...]}`` for the images Git references keep under ``policies``.

    ``existing`` maps each image name to the set of its tags in the registry: as in werf, a reference's
    "last N images" count images that exist. A branch's history is walked newest first until every image has
    its N, the period is passed, or every existing tag was found.
    """
    kept = {}
    findable = sum(1 for tags in existing.values() for tag in tags if CONTENT_TAG.match(tag))
    for ref, limit, _policy_ in references_to_scan(git_references(git), policies, now):
        reached = {name: [] for name, tags in existing.items() if tags}
        seen = set()
        walk = [(ref.commit, None, ref.time)] if ref.kind == "tag" else _history(git, ref.commit)
        last = 1 if limit.last is None else limit.last
        for commit, tree, when in walk:
            for name, tag in commit_images.tags(commit, tree).items():
                if name in existing and tag in existing[name] and (name, tag) not in seen:
                    seen.add((name, tag))
                    reached[name].append((tag, commit, when))
            if len(seen) == findable:
                break  # every tag of the registry was found: older commits cannot add one
            past_period = limit.within is not None and when <= now - limit.within
            enough = last >= 0 and all(len(items) >= last for items in reached.values())
            if (enough and past_period) if limit.operator == "Or" and limit.within is not None else (
                    enough or past_period):
                break
        what = f"Git {ref.kind} {ref.name}"
        for name, items in reached.items():
            for tag, commit, _when in _pick(sorted(items, key=lambda item: item[2], reverse=True), limit, now):
                kept.setdefault((name, tag), []).append(f"{what} (commit {commit[:12]})")
    return kept


# ------------------------------------------------------------------------------------------------ the cleanup

@dataclass
class TagState:
    """One tag of one image repository and what the cleanup does with it."""

    image: str
    repository: str
    tag: str
    digest: str | None = None
    config_digest: str | None = None
    children: list = field(default_factory=list)
    created: float | None = None
    reasons: list = field(default_factory=list)
    action: str = KEEP

    @property
    def ref(self):
        return f"{self.repository}:{self.tag}"

    def as_dict(self):
        created = None if self.created is None else datetime.fromtimestamp(self.created, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        return {"image": self.image, "repository": self.repository, "tag": self.tag, "ref": self.ref,
                "manifest_digest": self.digest, "created": created, "action": self.action,
                "reasons": list(self.reasons)}


@dataclass
class Options:
    project_dir: str
    repo: str
    config_path: str = "werf.yaml"
    revision: str = "HEAD"
    env: str | None = None
    images: list = None             # only these werf.yaml images; None: all
    clusters: list = field(default_factory=list)
    keep_revisions: int = 3
    grace_seconds: float | None = None  # None: werf.yaml's keepImagesBuiltWithinLastNHours
    concurrency: int = 16


class Cleanup:
    """Plan (``plan``) then delete (``execute``) the unused images of a project's repository."""

    def __init__(self, options, registry, now=time.time):
        self.options = options
        self.registry = registry
        self.now = now
        self.warnings = []
        self.tags = []
        self.policies_used = []
        self.skipped = None
        self.kubernetes = True
        self.grace = 0

    # ---- plan

    def plan(self):
        """Decide for every tag of every image repository; returns the TagState list (nothing is written)."""
        opts = self.options
        project = load_project(opts.project_dir, opts.config_path, revision=opts.revision, env=opts.env)
        config = project.config
        cleanup = config.cleanup
        if cleanup.disable:
            self.skipped = f"{config.path}: cleanup.disable is true"
            return []
        names = list(opts.images) if opts.images else config.names
        unknown = [name for name in names if name not in config.names]
        if unknown:
            raise ConvergeError(f"images: {', '.join(unknown)} not in {config.path} (images: {', '.join(config.names)})")
        if not opts.clusters and not cleanup.disable_kubernetes_based_policy:
            raise ConvergeError("no clusters given: the images that clusters run would be deleted; list them in "
                                "'clusters' (or set cleanup.disableKubernetesBasedPolicy: true in werf.yaml)")
        self.repositories = {name: image_repo(opts.repo, name) for name in names}
        self.tags = self._read_tags(self.repositories)
        existing = {}
        for state in self.tags:
            existing.setdefault(state.image, set()).add(state.tag)
        for state in self.tags:
            if not CONTENT_TAG.match(state.tag):
                state.reasons.append("not a content tag of berth.converge")
        if not cleanup.disable_git_history_based_policy:
            policies = cleanup.keep_policies or DEFAULT_KEEP_POLICIES
            self.policies_used = policies
            commit_images = CommitImages(opts.project_dir, opts.config_path, opts.env, opts.repo, self.warnings)
            kept = kept_by_git(project.git, commit_images, existing, policies, self.now())
            for state in self.tags:
                state.reasons.extend(kept.get((state.image, state.tag), []))
        self.kubernetes = not cleanup.disable_kubernetes_based_policy
        if self.kubernetes:
            self._keep_used(self.tags, images_in_use(opts.clusters, opts.keep_revisions))
        grace = opts.grace_seconds
        if grace is None:
            grace = 0 if cleanup.disable_built_within_last_n_hours_policy \
                else cleanup.keep_images_built_within_last_n_hours * 3600
        self.grace = grace
        if grace > 0:
            self._keep_fresh([state for state in self.tags if not state.reasons], grace)
        self._keep_shared_digests(self.tags)
        for state in self.tags:
            state.action = KEEP if state.reasons else DELETE
        return self.tags

    def _read_tags(self, repositories):
        listings = run_parallel(lambda item: self.registry.list_tags(item[1]), list(repositories.items()),
                                self.options.concurrency)
        states = []
        for (name, repository), tags in listings:
            if isinstance(tags, Exception):
                raise tags
            states.extend(TagState(name, repository, tag) for tag in sorted(tags))
        self._read_manifests(states)
        return [state for state in states if state.digest]  # a tag deleted meanwhile is not ours to report

    def _read_manifests(self, states):
        for state, manifest in run_parallel(lambda s: self.registry.manifest(s.ref), states, self.options.concurrency):
            if isinstance(manifest, Exception):
                raise manifest
            if manifest is not None:
                state.digest = manifest.digest
                state.config_digest = manifest.config_digest
                state.children = manifest.children if manifest.is_index else []

    def _keep_used(self, states, used):
        by_tag, by_digest = {}, {}
        for ref, reasons in used.items():
            try:
                reference = parse_reference(ref)
            except ConvergeError:
                continue  # not an image reference we could own
            key = f"{reference.registry}/{reference.repository}"
            if reference.digest:
                by_digest.setdefault((key, reference.digest), []).extend(reasons)
            elif reference.tag:
                by_tag.setdefault((key, reference.tag), []).extend(reasons)
        for state in states:
            repository = parse_reference(state.ref)
            key = f"{repository.registry}/{repository.repository}"
            for reason in by_tag.get((key, state.tag), []) + by_digest.get((key, state.digest), []):
                if f"used by {reason}" not in state.reasons:
                    state.reasons.append(f"used by {reason}")

    def _created(self, state):
        """Build time (unix) of the image: the config's ``created``; an index's newest platform image."""
        configs = []
        if state.children:
            for child in state.children:
                manifest = self.registry.manifest(f"{state.repository}@{child}")
                if manifest is not None and manifest.config_digest:
                    configs.append(manifest.config_digest)
        elif state.config_digest:
            configs.append(state.config_digest)
        times = []
        for digest in configs:
            created = self.registry.blob_json(state.repository, digest).get("created")
            parsed = _parse_time(created)
            if parsed is None:
                return None
            times.append(parsed)
        return max(times) if times else None

    def _keep_fresh(self, candidates, grace):
        unique = {}
        for state in candidates:
            unique.setdefault((state.repository, state.digest), state)
        results = dict(run_parallel(lambda key: self._created(unique[key]), list(unique),
                                    self.options.concurrency))
        now = self.now()
        for state in candidates:
            created = results[(state.repository, state.digest)]
            if isinstance(created, Exception):
                raise created
            state.created = created
            if created is None:
                state.reasons.append("build time unknown (no 'created' in the image config)")
            elif now - created < grace:
                state.reasons.append(f"built {human_duration(now - created)} ago, within the grace period "
                                     f"({human_duration(grace)})")

    @staticmethod
    def _keep_shared_digests(states):
        """A DELETE by digest removes every tag on it: a digest that a kept tag points to stays."""
        kept = {}
        for state in states:
            if state.reasons:
                kept.setdefault((state.repository, state.digest), state.tag)
        for state in states:
            other = kept.get((state.repository, state.digest))
            if not state.reasons and other:
                state.reasons.append(f"same manifest {state.digest} as kept tag {other}")

    # ---- execute

    def deletions(self):
        """{(repository, digest): [TagState, ...]} of the planned deletes."""
        planned = {}
        for state in self.tags:
            if state.action == DELETE:
                planned.setdefault((state.repository, state.digest), []).append(state)
        return planned

    def check_deletes(self):
        """Refuse, before any DELETE, a registry that does not delete manifests in a repository to clean."""
        repositories = sorted({repository for repository, _digest in self.deletions()})
        for repository, error in run_parallel(self.registry.check_deletes, repositories, self.options.concurrency):
            if isinstance(error, Exception):
                raise error

    def recheck(self):
        """Just before deleting: the clusters again, and tags pushed since the plan (their digests stay)."""
        planned = self.deletions()
        if not planned:
            return
        opts = self.options
        if self.kubernetes:
            self._keep_used([s for states in planned.values() for s in states],
                            images_in_use(opts.clusters, opts.keep_revisions))
        known = {(state.repository, state.tag) for state in self.tags}
        fresh = []
        for repository in sorted({repository for repository, _digest in planned}):
            image = next(state.image for state in self.tags if state.repository == repository)
            fresh.extend(TagState(image, repository, tag) for tag in self.registry.list_tags(repository)
                         if (repository, tag) not in known)
        self._read_manifests(fresh)
        for state in fresh:
            if state.digest:
                state.reasons.append("pushed while the cleanup ran")
                self.tags.append(state)
        self._keep_shared_digests(self.tags)
        for state in self.tags:
            if state.action == DELETE and state.reasons:
                state.action = KEEP
                state.reasons = [f"{reason} (found by the re-check before deleting)" for reason in state.reasons]

    def execute(self):
        """Delete the planned digests after ``check_deletes`` and ``recheck``; returns the deleted TagStates."""
        if not self.deletions():
            return []
        self.check_deletes()
        self.recheck()
        planned = self.deletions()
        outcome = run_parallel(lambda key: self.registry.delete_manifest(*key), list(planned),
                               self.options.concurrency)
        deleted, errors = [], []
        for key, result in outcome:
            if isinstance(result, Exception):
                errors.append(f"{key[0]}@{key[1]}: {result}")
                continue
            for state in planned[key]:
                state.action = DELETED
                deleted.append(state)
        if errors:
            raise ConvergeError(f"{len(errors)} of {len(planned)} deletes failed ({len(deleted)} tags deleted):\n"
                                + "\n".join(errors), deleted=[state.ref for state in deleted])
        return deleted


def _parse_time(text):
    if not isinstance(text, str) or not text:
        return None
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text.strip())
    if not match:
        return None
    zone = match.group(3) or "Z"
    moment = datetime.fromisoformat(match.group(1) + ("+00:00" if zone == "Z" else zone))
    return moment.timestamp() + float(match.group(2) or 0)
