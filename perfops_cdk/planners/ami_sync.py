"""Which images a sync touches, and what each region needs: pure functions, no I/O.

The AMI name is content-addressed (``<name>-<nix store hash>``), so "is this image
already there?" is a lookup by name; the plan turns lookups into one action per region.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs

from perfops_cdk.errors import PerfOpsError
from perfops_cdk.props.regions import check_region

__all__ = [
    "ACTIONS",
    "SYNC_TAG_KEYS",
    "ImagePlan",
    "ImageTarget",
    "RegionLookup",
    "RegionStep",
    "Requirement",
    "Selection",
    "ami_name_for",
    "images_bucket_tags",
    "plan_image",
    "select",
    "sync_tag_filter",
    "sync_tags",
]

# ready: nothing to do; wait: exists, not yet available; upload: snapshot + register in
# home; register: a finished snapshot exists, register it; resume-import: wait on the
# recorded import task, then register; copy: copy from home; replace: remove, then redo.
ACTIONS = ("ready", "wait", "upload", "register", "resume-import", "copy", "replace")
_BROKEN_STATES = frozenset({"failed", "error", "invalid", "deregistered"})
# Tags on every AMI and snapshot a sync makes (keys; values per image).
TAG_UUID = "perf-ops"
TAG_IMAGE = "perf-ops:image"
TAG_AMI_NAME = "perf-ops:ami-name"
TAG_SOURCE_REGION = "perf-ops:source-region"
TAG_SNAPSHOT = "perf-ops:source-snapshot"
TAG_MANAGED_BY = "managed-by"
# Set on a snapshot once every block is in: only such a snapshot is registered by a rerun.
TAG_UPLOADED = "perf-ops:uploaded"
MANAGED_BY = "perfops_cdk"  # the value of every perfops resource's managed-by tag
# On the S3 bucket a --method import sync creates: purge-s3 empties no other bucket.
TAG_IMAGES_BUCKET = "perf-ops:images-bucket"


def images_bucket_tags(uuid: str) -> dict[str, str]:
    """The tags of the bucket a sync of ``uuid`` creates for ``--method import``."""
    return {TAG_UUID: uuid, TAG_IMAGES_BUCKET: "true", TAG_MANAGED_BY: MANAGED_BY}


def sync_tag_filter(uuid: str | None) -> dict[str, str | None]:
    """Tags (None: any value) that select the AMIs and snapshots a sync made, for ``uuid``
    or (None) any uuid. The uuid alone is not enough: hosts' volumes, their snapshots and
    AMIs made from them carry it too, and they are never the sync's to remove."""
    return {TAG_UUID: uuid, TAG_AMI_NAME: None}


def ami_name_for(image_name: str, store_hash: str) -> str:
    """The AMI name of an image whose nix output (or raw content) hashes to ``store_hash``."""
    return f"{image_name}-{store_hash}"


class Requirement(Protocol):
    """An image the app declares (``perfops_cdk.app.ImageRequirement``)."""

    @property
    def name(self) -> str: ...
    @property
    def regions(self) -> tuple[str, ...]: ...
    @property
    def home_region(self) -> str: ...
    @property
    def uuid(self) -> str: ...
    @property
    def prebuilt(self) -> bool: ...
    @property
    def nix_file(self) -> str | None: ...
    @property
    def attr(self) -> str | None: ...
    @property
    def args(self) -> Mapping[str, str]: ...
    @property
    def project_dir(self) -> str: ...


@attrs.frozen
class Selection:
    """One image a sync publishes: its source, home and target regions.

    The source is a nix expression (``nix_file``, ``attr``, ``args``) or, for
    ``upload-raw``, a raw disk image at ``raw_path``.
    """

    name: str
    home_region: str
    regions: tuple[str, ...]
    uuid: str
    project_dir: str
    nix_file: str | None = None
    attr: str | None = None
    args: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    raw_path: str | None = None


def split_list(values: Sequence[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``; None stays None (option not given)."""
    if values is None:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def select(
    requirements: Iterable[Requirement],
    *,
    names: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    home: str | None = None,
) -> list[Selection]:
    """The images and regions to sync.

    Default: images that deployments use, in the regions those deployments use.
    ``names``: ``all`` (every image nix builds) or image names (comma lists allowed).
    ``regions``: these regions instead of each image's (``all``: the default ones).
    ``home``: register there instead of the stack's home region. Bad input raises.
    """
    reqs = [r for r in requirements if not r.prebuilt]
    declared = {r.name: r for r in reqs}
    wanted = split_list(names)
    if wanted is None:
        chosen = [r for r in reqs if r.regions]
    elif wanted == ["all"]:
        chosen = reqs
    else:
        chosen = []
        for name in wanted:
            if name not in declared:
                close = difflib.get_close_matches(name, sorted(declared), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"declared: {sorted(declared)}"
                raise PerfOpsError(f"--names: no nix-built image {name!r}; {hint}")
            chosen.append(declared[name])
    region_list = split_list(regions)
    if region_list is not None and region_list != ["all"]:
        region_list = [check_region(r, "--regions") for r in region_list]
    if home is not None:
        home = check_region(home, "--home")
    selections = []
    for r in chosen:
        home_region = home or r.home_region
        targets = r.regions if region_list is None or region_list == ["all"] else region_list
        selections.append(
            Selection(
                name=r.name,
                home_region=home_region,
                regions=tuple(sorted({home_region, *targets})),
                uuid=r.uuid,
                project_dir=r.project_dir,
                nix_file=r.nix_file,
                attr=r.attr,
                args=dict(r.args),
            )
        )
    return selections


@attrs.frozen
class ImageTarget:
    """An image with its identity: what must exist, named how, where."""

    name: str
    ami_name: str
    home_region: str
    regions: tuple[str, ...]
    uuid: str


def sync_tags(target: ImageTarget, source_snapshot: str) -> dict[str, str]:
    """The tags a sync puts on each AMI and snapshot of ``target``; ``source_snapshot`` is
    the uploaded snapshot the home AMI was registered from ("" until it exists)."""
    return {
        "Name": target.ami_name,
        TAG_UUID: target.uuid,
        TAG_IMAGE: target.name,
        TAG_AMI_NAME: target.ami_name,
        TAG_SOURCE_REGION: target.home_region,
        TAG_SNAPSHOT: source_snapshot,
        TAG_MANAGED_BY: MANAGED_BY,
    }


# Derived, so that the keys a repair checks are always the keys a sync sets.
SYNC_TAG_KEYS = frozenset(sync_tags(ImageTarget("", "", "", (), ""), ""))


@attrs.frozen
class RegionLookup:
    """What exists in one region under the target's AMI name (and, in home, snapshots)."""

    region: str
    ami_id: str | None = None
    ami_state: str | None = None
    ami_uuid: str | None = None
    ami_snapshot_id: str | None = None  # the snapshot behind the AMI found
    ami_tags: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    # (snapshot id, state) tagged with the AMI name; only looked up in the home region.
    snapshots: tuple[tuple[str, str], ...] = ()
    import_task_id: str | None = None  # recorded by an interrupted import


@attrs.frozen
class RegionStep:
    region: str
    action: str = attrs.field(validator=attrs.validators.in_(ACTIONS))
    ami_id: str | None = None
    snapshot_id: str | None = None
    # Unfinished snapshots an interrupted upload left; deleted before a new upload.
    stale_snapshots: tuple[str, ...] = ()
    import_task_id: str | None = None
    # An AMI found by name that lacks some of the sync's tags (a run killed between
    # creating and tagging it): they are added, or delete, purge and list never see it.
    repair_tags: bool = False


@attrs.frozen
class ImagePlan:
    target: ImageTarget
    steps: tuple[RegionStep, ...]

    @property
    def home(self) -> RegionStep:
        return next(s for s in self.steps if s.region == self.target.home_region)

    @property
    def needs_disk(self) -> bool:
        """True when the disk image (or, to register, its image-info) must be at hand."""
        return self.home.action in ("upload", "register", "resume-import", "replace")

    @property
    def unchanged(self) -> bool:
        return all(s.action == "ready" and not s.repair_tags for s in self.steps)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step.action] = counts.get(step.action, 0) + 1
        return counts


def _home_step(found: RegionLookup, force: bool, uuid: str) -> RegionStep:
    region = found.region
    if found.ami_id is not None:
        broken = found.ami_state in _BROKEN_STATES
        if broken or (force and found.ami_uuid == uuid):
            return RegionStep(region, "replace", ami_id=found.ami_id)
        return _existing_step(found)
    completed = [s for s, state in found.snapshots if state == "completed"]
    stale = tuple(s for s, state in found.snapshots if state != "completed")
    if completed and not force:
        return RegionStep(region, "register", snapshot_id=completed[0], stale_snapshots=stale)
    if found.import_task_id and not force:
        return RegionStep(region, "resume-import", import_task_id=found.import_task_id)
    return RegionStep(region, "upload", stale_snapshots=stale + tuple(completed))


def _copy_step(found: RegionLookup, force: bool, uuid: str) -> RegionStep:
    if found.ami_id is None:
        return RegionStep(found.region, "copy")
    if found.ami_state in _BROKEN_STATES or (force and found.ami_uuid == uuid):
        return RegionStep(found.region, "replace", ami_id=found.ami_id)
    return _existing_step(found)


def _existing_step(found: RegionLookup) -> RegionStep:
    return RegionStep(
        found.region,
        "ready" if found.ami_state == "available" else "wait",
        ami_id=found.ami_id,
        snapshot_id=found.ami_snapshot_id,
        repair_tags=bool(SYNC_TAG_KEYS - found.ami_tags.keys()),
    )


def plan_image(
    target: ImageTarget, found: Mapping[str, RegionLookup], *, force: bool = False
) -> ImagePlan:
    """One step per target region from what exists there.

    ``force`` replaces this uuid's existing AMIs (never another deployer's); by default
    whatever exists under the content-addressed name is used as it is.
    """
    steps = []
    for region in target.regions:
        lookup = found.get(region, RegionLookup(region))
        if region == target.home_region:
            steps.append(_home_step(lookup, force, target.uuid))
        else:
            steps.append(_copy_step(lookup, force, target.uuid))
    return ImagePlan(target, tuple(steps))


def describe(plan: ImagePlan, *, built: bool | None = None) -> list[str]:
    """The plan as lines for ``--dry-run``."""
    target = plan.target
    head = f"{target.name}: {target.ami_name} (home {target.home_region})"
    if plan.unchanged:
        return [f"{head}: up to date in {len(plan.steps)} region(s); nothing to do"]
    lines = [head]
    if plan.needs_disk and built is not None:
        lines.append(f"  build: {'no, already in the nix store' if built else 'nix-build'}")
    for step in plan.steps:
        what = {
            "ready": f"nothing ({step.ami_id})",
            "wait": f"wait for {step.ami_id}",
            "upload": "upload snapshot, register AMI",
            "register": f"register AMI from {step.snapshot_id}",
            "resume-import": f"wait on import {step.import_task_id}, register AMI",
            "copy": f"copy from {target.home_region}",
            "replace": f"remove {step.ami_id}, then make it again",
        }[step.action]
        if step.stale_snapshots:
            what += f"; delete unfinished {', '.join(step.stale_snapshots)}"
        if step.repair_tags:
            what += "; add the sync's missing tags"
        lines.append(f"  {step.region}: {what}")
    return lines
