"""List and remove published images: this uuid's (delete), every perf-ops one (purge), S3.

Removal is two-phase: ``find_*`` returns what would go (the CLI shows it and asks for
``--yes``), ``remove`` deletes it. "Already gone" counts as removed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
from botocore.exceptions import BotoCoreError, ClientError

from perfops_cdk.effects import aws, state_file
from perfops_cdk.effects import ec2_images as ec2
from perfops_cdk.effects.import_snapshot import bucket_tags
from perfops_cdk.errors import EffectError, PerfOpsError
from perfops_cdk.planners import ami_sync as plan

__all__ = ["Found", "check_images_bucket", "find_images", "purge_s3", "remove", "state_from_tags"]

_PENDING = frozenset({"pending", "uploading", "copying", "importing", "snapshot"})


@attrs.frozen
class Found:
    """One AMI or stray snapshot of perf-ops in one region."""

    region: str
    kind: str  # "ami" | "snapshot"
    resource_id: str
    name: str
    image: str  # the image name tag ("" when unknown)
    uuid: str
    state: str
    snapshot_ids: tuple[str, ...] = ()


def _find_region(region: str, uuid: str | None) -> list[Found]:
    client = aws.client("ec2", region)
    ours = plan.sync_tag_filter(uuid)
    images = ec2.find_images_by_tags(client, ours)
    snaps = ec2.find_snapshots_by_tags(client, ours)
    found = [
        Found(
            region=region,
            kind="ami",
            resource_id=i.image_id,
            name=i.name,
            image=i.tags.get(plan.TAG_IMAGE, ""),
            uuid=i.tags.get(plan.TAG_UUID, ""),
            state=i.state,
            snapshot_ids=i.snapshot_ids,
        )
        for i in images
    ]
    backing = {s for i in images for s in i.snapshot_ids}
    for snap in snaps:
        if snap["SnapshotId"] in backing:
            continue
        tags = {t["Key"]: t["Value"] for t in snap.get("Tags", [])}
        found.append(
            Found(
                region=region,
                kind="snapshot",
                resource_id=snap["SnapshotId"],
                name=tags.get(plan.TAG_AMI_NAME, ""),
                image=tags.get(plan.TAG_IMAGE, ""),
                uuid=tags.get(plan.TAG_UUID, ""),
                state=snap.get("State", "?"),
            )
        )
    return found


def find_images(regions: Iterable[str], uuid: str | None) -> list[Found]:
    """The AMIs and snapshots syncs made in ``regions``: this ``uuid``'s, or all (None)."""
    targets = sorted(set(regions))
    with ThreadPoolExecutor(max_workers=max(1, min(17, len(targets)))) as pool:
        return [f for found in pool.map(lambda r: _find_region(r, uuid), targets) for f in found]


def state_from_tags(found: Iterable[Found], uuid: str) -> state_file.SyncState:
    """The state a sync would have recorded, rebuilt from AMI tags (when state.json is lost)."""
    images: dict[str, state_file.ImageRecord] = {}
    for item in found:
        if item.kind != "ami" or item.uuid != uuid or not item.image:
            continue
        record = images.get(item.image) or state_file.ImageRecord(item.name, item.region, {})
        regions = {
            **record.regions,
            item.region: state_file.RegionImage(
                ami_id=item.resource_id,
                snapshot_id=item.snapshot_ids[0] if item.snapshot_ids else None,
                state=item.state,
            ),
        }
        images[item.image] = attrs.evolve(record, regions=regions)
    return state_file.SyncState(images=images)


def refuse_pending(found: Sequence[Found], state_path: Path) -> None:
    """Raise when a sync is running or anything is still pending."""
    if state_file.is_locked(state_path):
        raise PerfOpsError(f"{state_path}: an image sync is running; retry when it has finished")
    pending = [f for f in found if f.state in _PENDING]
    if pending:
        first = pending[0]
        raise PerfOpsError(
            f"{first.region}: {first.kind} {first.resource_id} is still {first.state} "
            f"({len(pending)} pending in all); retry when it is available"
        )


def remove(found: Sequence[Found], state_path: Path) -> list[str]:
    """Delete the found AMIs (with their snapshots) and stray snapshots; one line each."""
    refuse_pending(found, state_path)
    # An unreadable state could not forget what is removed: refuse before removing anything.
    state_file.load(state_path)

    def one(item: Found) -> str:
        client = aws.client("ec2", item.region)
        if item.kind == "ami":
            deleted = ec2.delete_image(client, item.resource_id)
            gone = "" if deleted.deregistered else " (already gone)"
            snaps = (
                f" and {', '.join(deleted.snapshots_deleted)}" if deleted.snapshots_deleted else ""
            )
            return f"{item.region}: deregistered {item.resource_id}{snaps}{gone}"
        existed = ec2.delete_snapshot(client, item.resource_id)
        return f"{item.region}: deleted {item.resource_id}{'' if existed else ' (already gone)'}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        lines = list(pool.map(one, found))
    removed: dict[str, set[str]] = {}
    for item in found:
        if item.kind == "ami" and item.image:
            removed.setdefault(item.image, set()).add(item.region)
    if removed and state_path.exists():
        with state_file.locked(state_path):
            recorder = state_file.Recorder(state_path, state_file.load(state_path))
            recorder.forget(removed)
    return lines


def _s3_call(s3: Any, operation: str, **kwargs: Any) -> Any:
    try:
        return getattr(s3, operation)(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404", "NoSuchKey"):
            return None
        raise EffectError(f"s3: {operation} failed: {exc}") from exc
    except BotoCoreError as exc:
        raise EffectError(f"s3: {operation} failed: {exc}") from exc


def check_images_bucket(bucket: str, region: str, uuid: str) -> None:
    """Raise unless ``bucket`` is the one a sync of ``uuid`` created (or does not exist)."""
    tags = bucket_tags(aws.client("s3", region), bucket)
    wanted = plan.images_bucket_tags(uuid)
    if tags is not None and any(tags.get(k) != v for k, v in wanted.items()):
        expected = ", ".join(f"{k}={v}" for k, v in wanted.items())
        raise PerfOpsError(
            f"s3://{bucket}: not the images bucket of {uuid} (a sync tags the bucket it "
            f"creates {expected}); add --force to empty and remove it anyway"
        )


def s3_objects(bucket: str, region: str) -> list[str]:
    """Keys in the images bucket; none when the bucket does not exist."""
    s3 = aws.client("s3", region)
    keys: list[str] = []
    token: dict[str, str] = {}
    while True:
        page = _s3_call(s3, "list_objects_v2", Bucket=bucket, **token)
        if page is None:
            return keys
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = {"ContinuationToken": page["NextContinuationToken"]}


def purge_s3(bucket: str, region: str, keys: Sequence[str]) -> list[str]:
    """Delete ``keys`` and then the bucket; an absent bucket is already purged."""
    s3 = aws.client("s3", region)
    for start in range(0, len(keys), 1000):
        chunk = [{"Key": k} for k in keys[start : start + 1000]]
        _s3_call(s3, "delete_objects", Bucket=bucket, Delete={"Objects": chunk})
    with contextlib.suppress(EffectError):
        _s3_call(s3, "delete_bucket", Bucket=bucket)
    return [f"s3://{bucket}/{k}: deleted" for k in keys] + [f"s3://{bucket}: deleted"]
