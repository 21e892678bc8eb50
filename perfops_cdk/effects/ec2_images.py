"""Typed wrappers over an injected EC2 client for AMIs and their snapshots.

Every step is safe to re-run: images are looked up by name before they are registered
or copied (names are unique per region and owner; the emulator ignores ClientTokens),
"already gone" counts as deleted, and waiters have explicit time budgets. Tags travel
with the call that creates an AMI (``TagSpecifications``); those still missing after it
(the emulator drops them; a run killed in between) are added, never overwritten. Every
``ClientError`` becomes one ``EffectError`` line naming the region and the call.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from perfops_cdk.effects import aws
from perfops_cdk.effects.ec2_tags import (
    complete_snapshot_tags,
    missing_tags,
    tag_filters,
    tag_resources,
    tag_specifications,
)
from perfops_cdk.errors import EffectError

__all__ = [
    "ARCHITECTURES",
    "DeletedImage",
    "Image",
    "RegionCopy",
    "client_token",
    "complete_tags",
    "copy_image_to_regions",
    "delete_image",
    "delete_snapshot",
    "describe_image",
    "find_images_by_name",
    "find_images_by_tag",
    "find_images_by_tags",
    "find_snapshots_by_tag",
    "find_snapshots_by_tags",
    "register_image",
    "tag_resources",
    "wait_image_available",
    "wait_snapshot_completed",
]

ARCHITECTURES = {"x86_64-linux": "x86_64", "aarch64-linux": "arm64"}
ROOT_DEVICE = "/dev/xvda"
GIB = 1024**3
# AWS allows up to 300 concurrent copies into one region; more threads than this only
# add connections, since each copy call returns at once and the wait is server-side.
DEFAULT_COPY_WORKERS = 8
# Copies of a few-GiB image usually finish in minutes; the budget bounds a stuck one.
DEFAULT_COPY_BUDGET_S = 45 * 60
DEFAULT_SNAPSHOT_BUDGET_S = 30 * 60
_GONE = {
    "InvalidAMIID.NotFound",
    "InvalidAMIID.Unavailable",
    "InvalidSnapshot.NotFound",
    "InvalidSnapshotID.NotFound",
}

ClientFactory = Callable[[str], Any]


@attrs.frozen
class Image:
    """One AMI as EC2 describes it."""

    image_id: str
    name: str
    region: str
    state: str
    snapshot_ids: tuple[str, ...]
    tags: Mapping[str, str] = attrs.field(hash=False)

    @classmethod
    def from_description(cls, raw: Mapping[str, Any], region: str) -> Image:
        snapshots = tuple(
            m["Ebs"]["SnapshotId"]
            for m in raw.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")
        )
        return cls(
            image_id=raw["ImageId"],
            name=raw.get("Name", ""),
            region=region,
            state=raw.get("State", "unknown"),
            snapshot_ids=snapshots,
            tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
        )


@attrs.frozen
class RegionCopy:
    """The outcome of copying to one region: an image, or the one-line error."""

    region: str
    image: Image | None = None
    copied: bool = False  # False when the image was already there
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.frozen
class DeletedImage:
    """What ``delete_image`` removed; an empty result means it was already gone."""

    region: str
    image_id: str
    deregistered: bool
    snapshots_deleted: tuple[str, ...]


def client_token(*parts: str) -> str:
    """A 64-character idempotency token derived from ``parts`` (AWS allows 64)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _region(ec2: Any) -> str:
    return str(ec2.meta.region_name)


def _is_gone(exc: EffectError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in _GONE


def _paginate(ec2: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    try:
        pages = ec2.get_paginator(operation).paginate(**kwargs)
        return [item for page in pages for item in page.get(key, [])]
    except (ClientError, BotoCoreError) as exc:
        raise aws.effect_error(ec2, operation, exc) from exc


def _describe_images(ec2: Any, filters: list[dict[str, Any]]) -> list[Image]:
    raw = _paginate(ec2, "describe_images", "Images", Owners=["self"], Filters=filters)
    return [Image.from_description(image, _region(ec2)) for image in raw]


def find_images_by_name(ec2: Any, name: str) -> list[Image]:
    """This account's images named exactly ``name`` (at most one on AWS)."""
    return _describe_images(ec2, [{"Name": "name", "Values": [name]}])


def find_images_by_tags(ec2: Any, tags: Mapping[str, str | None]) -> list[Image]:
    """This account's images carrying every tag in ``tags`` (a None value: any value)."""
    return _describe_images(ec2, tag_filters(tags))


def find_images_by_tag(ec2: Any, key: str, value: str | None = None) -> list[Image]:
    """This account's images carrying tag ``key`` (with ``value``, when given)."""
    return find_images_by_tags(ec2, {key: value})


def find_snapshots_by_tags(ec2: Any, tags: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """This account's snapshots carrying every tag in ``tags`` (a None value: any value)."""
    filters = tag_filters(tags)
    return _paginate(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=filters)


def find_snapshots_by_tag(ec2: Any, key: str, value: str | None = None) -> list[dict[str, Any]]:
    """This account's snapshots tagged ``key`` (``=value`` when given), as EC2 describes them."""
    return find_snapshots_by_tags(ec2, {key: value})


def complete_tags(ec2: Any, image: Image, tags: Mapping[str, str]) -> Image:
    """Add to ``image`` and its snapshots those of ``tags`` they lack; never overwrite one."""
    tag_resources(ec2, [image.image_id], missing_tags(tags, image.tags))
    complete_snapshot_tags(ec2, image.snapshot_ids, tags)
    return attrs.evolve(image, tags={**tags, **image.tags})


def describe_image(ec2: Any, image_id: str) -> Image | None:
    """The image ``image_id``; None when it is gone."""
    try:
        raw = aws.call(ec2, "describe_images", ImageIds=[image_id])
    except EffectError as exc:
        if _is_gone(exc):
            return None
        raise
    images = raw.get("Images", [])
    return Image.from_description(images[0], _region(ec2)) if images else None


def register_image(
    ec2: Any,
    *,
    name: str,
    snapshot_id: str,
    system: str,
    boot_mode: str,
    logical_bytes: int,
    description: str = "",
    tags: Mapping[str, str] | None = None,
) -> Image:
    """Register ``snapshot_id`` as an HVM AMI called ``name``, or return the existing one.

    ``system`` is the nix system (x86_64-linux, aarch64-linux). The root is a gp3
    volume of ``logical_bytes`` rounded up to GiB; ENA, sriov and IMDSv2 are on.
    ``tags`` (none by default) are set by the register call itself; an image found by
    name gets those it lacks (the emulator ignores ``TagSpecifications`` here).
    """
    tags = tags or {}
    if system not in ARCHITECTURES:
        raise EffectError(
            f"image system {system!r} has no EC2 architecture; use one of {sorted(ARCHITECTURES)}"
        )
    existing = find_images_by_name(ec2, name)
    if existing:
        image = existing[0]
    else:
        try:
            image_id = aws.call(
                ec2,
                "register_image",
                Name=name,
                Description=description,
                Architecture=ARCHITECTURES[system],
                VirtualizationType="hvm",
                EnaSupport=True,
                SriovNetSupport="simple",
                BootMode=boot_mode,
                ImdsSupport="v2.0",
                RootDeviceName=ROOT_DEVICE,
                BlockDeviceMappings=[
                    {
                        "DeviceName": ROOT_DEVICE,
                        "Ebs": {
                            "SnapshotId": snapshot_id,
                            "VolumeSize": math.ceil(logical_bytes / GIB),
                            "VolumeType": "gp3",
                            "DeleteOnTermination": True,
                        },
                    }
                ],
                **tag_specifications(tags, "image"),
            )["ImageId"]
        except EffectError:
            # A concurrent or interrupted earlier run registered it between lookup and now.
            found = find_images_by_name(ec2, name)
            if not found:
                raise
            image_id = found[0].image_id
        image = describe_image(ec2, image_id) or Image(
            image_id, name, _region(ec2), "pending", (snapshot_id,), {}
        )
    tag_resources(ec2, [image.image_id], missing_tags(tags, image.tags))
    return attrs.evolve(image, tags={**tags, **image.tags})


def _waiter(ec2: Any, waiter: str, budget_s: float, delay_s: float, **kwargs: Any) -> None:
    attempts = max(1, math.ceil(budget_s / delay_s))
    try:
        ec2.get_waiter(waiter).wait(
            **kwargs, WaiterConfig={"Delay": delay_s, "MaxAttempts": attempts}
        )
    except WaiterError as exc:
        raise EffectError(
            f"{_region(ec2)}: {waiter} not reached within {budget_s:.0f} s for {kwargs}: {exc}"
        ) from exc


def wait_image_available(
    ec2: Any, image_id: str, *, budget_s: float = DEFAULT_COPY_BUDGET_S, delay_s: float = 15
) -> Image:
    """Wait until ``image_id`` is available (at most ``budget_s``) and return it."""
    _waiter(ec2, "image_available", budget_s, delay_s, ImageIds=[image_id])
    image = describe_image(ec2, image_id)
    if image is None:
        raise EffectError(f"{_region(ec2)}: image {image_id} vanished after becoming available")
    return image


def wait_snapshot_completed(
    ec2: Any,
    snapshot_id: str,
    *,
    budget_s: float = DEFAULT_SNAPSHOT_BUDGET_S,
    delay_s: float = 15,
) -> None:
    """Wait until ``snapshot_id`` is completed, at most ``budget_s`` seconds."""
    _waiter(ec2, "snapshot_completed", budget_s, delay_s, SnapshotIds=[snapshot_id])


def _copy_one(
    ec2: Any,
    *,
    source_region: str,
    source_image_id: str,
    name: str,
    description: str,
    tags: Mapping[str, str],
    wait_budget_s: float,
    delay_s: float,
) -> RegionCopy:
    region = _region(ec2)
    existing = find_images_by_name(ec2, name)
    copied = not existing
    if existing:
        found: Image | None = existing[0]
        image_id = existing[0].image_id
    else:
        image_id = aws.call(
            ec2,
            "copy_image",
            SourceRegion=source_region,
            SourceImageId=source_image_id,
            Name=name,
            Description=description,
            ClientToken=client_token("copy_image", source_region, source_image_id, region),
            **tag_specifications(tags, "image", "snapshot"),
        )["ImageId"]
        found = describe_image(ec2, image_id)
    # The emulator drops CopyImage's TagSpecifications, and a copy found by name may be
    # one a killed run never tagged: tag what is missing before waiting, so that an
    # interrupted run leaves a findable, attributable copy.
    tag_resources(ec2, [image_id], missing_tags(tags, found.tags if found else {}))
    image = wait_image_available(ec2, image_id, budget_s=wait_budget_s, delay_s=delay_s)
    # The copy's snapshots only exist once it is available.
    return RegionCopy(region, complete_tags(ec2, image, tags), copied)


def copy_image_to_regions(
    source_region: str,
    source_image_id: str,
    *,
    name: str,
    regions: Iterable[str],
    tags: Mapping[str, str] | None = None,
    description: str = "",
    client_for: ClientFactory | None = None,
    max_workers: int = DEFAULT_COPY_WORKERS,
    wait_budget_s: float = DEFAULT_COPY_BUDGET_S,
    delay_s: float = 15,
) -> dict[str, RegionCopy]:
    """Copy the image to every region in parallel; one result per region, never raises.

    A region that already has an image named ``name`` gets no new copy. Copies and
    their snapshots get ``tags`` (none by default). ``client_for(region)`` defaults to
    ``aws.client("ec2", region)``. A failing region's result holds its error line and
    never stops the other regions.
    """
    make = client_for or (lambda region: aws.client("ec2", region))
    targets = sorted(set(regions) - {source_region})

    def one(region: str) -> RegionCopy:
        try:
            return _copy_one(
                make(region),
                source_region=source_region,
                source_image_id=source_image_id,
                name=name,
                description=description,
                tags=tags or {},
                wait_budget_s=wait_budget_s,
                delay_s=delay_s,
            )
        except EffectError as exc:
            return RegionCopy(region, error=str(exc))
        except Exception as exc:  # one region's surprise must not cost the others their result
            return RegionCopy(region, error=f"{region}: {type(exc).__name__}: {exc}")

    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(targets)))) as pool:
        return dict(zip(targets, pool.map(one, targets), strict=True))


def delete_snapshot(ec2: Any, snapshot_id: str) -> bool:
    """Delete ``snapshot_id``; False when it was already gone (which is success)."""
    try:
        aws.call(ec2, "delete_snapshot", SnapshotId=snapshot_id)
    except EffectError as exc:
        if _is_gone(exc):
            return False
        raise
    return True


def delete_image(ec2: Any, image_id: str) -> DeletedImage:
    """Deregister ``image_id`` and delete its backing snapshots; "already gone" is success."""
    image = describe_image(ec2, image_id)
    if image is None:
        return DeletedImage(_region(ec2), image_id, False, ())
    deregistered = True
    try:
        aws.call(ec2, "deregister_image", ImageId=image_id)
    except EffectError as exc:
        if not _is_gone(exc):
            raise
        deregistered = False
    deleted = tuple(s for s in image.snapshot_ids if delete_snapshot(ec2, s))
    return DeletedImage(_region(ec2), image_id, deregistered, deleted)
