"""An image's identity (its content-addressed AMI name) and what exists under it.

Reads nix and AWS, writes nothing: ``--dry-run`` stops here.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from perfops_cdk.effects import aws, nix, state_file
from perfops_cdk.effects import ec2_images as ec2
from perfops_cdk.effects.ebs_snapshot import BLOCK_SIZE, data_block_indexes
from perfops_cdk.errors import EffectError, PerfOpsError
from perfops_cdk.planners import ami_sync as plan
from perfops_cdk.planners.ami_sync import ImagePlan, ImageTarget, RegionLookup, Selection

__all__ = [
    "Identity",
    "ec2_client",
    "forget_clients",
    "identify",
    "lookup",
    "plan_all",
    "raw_identity",
    "state_path",
]


@functools.lru_cache(maxsize=64)
def _cached_ec2(region: str, endpoint: str | None) -> Any:
    return aws.client("ec2", region, endpoint=endpoint)


def forget_clients() -> None:
    """Drop cached clients (after the endpoint's server was restarted or in tests)."""
    _cached_ec2.cache_clear()


def ec2_client(region: str) -> Any:
    """One EC2 client per region and endpoint: boto3 clients are thread-safe, slow to make."""
    return _cached_ec2(region, aws.endpoint_url())


@attrs.frozen
class Identity:
    """An image's content address and where its disk comes from."""

    target: ImageTarget
    selection: Selection
    out_path: Path | None  # nix output; None for raw images
    disk: Path | None  # raw image file; for nix known once built

    @property
    def built(self) -> bool:
        return self.out_path is None or self.out_path.exists()


def raw_identity(path: Path) -> str:
    """A 32-character content hash of a raw disk: its size and its non-zero blocks."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise EffectError(f"{path}: cannot read disk image: {exc.strerror}") from exc
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise EffectError(f"{path}: disk image is empty")
        # BLAKE2b: a content address, not a checksum AWS verifies, and twice SHA-256's speed.
        digest = hashlib.blake2b(f"raw:{size}".encode(), digest_size=16)
        zero = bytes(BLOCK_SIZE)
        for index in data_block_indexes(fd, size):
            block = os.pread(fd, BLOCK_SIZE, index * BLOCK_SIZE)
            if block != zero and block.ljust(BLOCK_SIZE, b"\0") != zero:
                digest.update(index.to_bytes(8, "big"))
                digest.update(block)
    except OSError as exc:
        raise EffectError(f"{path}: cannot read disk image: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return digest.hexdigest()


def identify(selection: Selection) -> Identity:
    """The AMI name of ``selection``, from its nix output path without building it."""
    if selection.raw_path is not None:
        disk = Path(selection.raw_path)
        store_hash, out = raw_identity(disk), None
    else:
        if selection.nix_file is None:
            raise PerfOpsError(f"{selection.name}: has no nix expression to build")
        out = nix.instantiate(Path(selection.nix_file), selection.attr, args=selection.args)
        store_hash, disk = out.name.split("-", 1)[0], None
    target = ImageTarget(
        name=selection.name,
        ami_name=plan.ami_name_for(selection.name, store_hash),
        home_region=selection.home_region,
        regions=selection.regions,
        uuid=selection.uuid,
    )
    return Identity(target, selection, out, disk)


def _lookup_region(target: ImageTarget, region: str, task_id: str | None) -> RegionLookup:
    client = ec2_client(region)
    found = ec2.find_images_by_name(client, target.ami_name)
    image = found[0] if found else None
    home = region == target.home_region
    snapshots: tuple[tuple[str, str], ...] = ()
    # An untagged home AMI (a run killed before tagging it) does not say which upload it
    # was registered from; the uploaded snapshot's own tags do.
    if home and (image is None or plan.TAG_SNAPSHOT not in image.tags):
        # moto ignores start_snapshot's ClientToken, so earlier uploads are found by tag.
        raw = ec2.find_snapshots_by_tag(client, plan.TAG_AMI_NAME, target.ami_name)
        snapshots = tuple((s["SnapshotId"], _snapshot_state(s)) for s in raw)
    return RegionLookup(
        region=region,
        ami_id=image.image_id if image else None,
        ami_state=image.state if image else None,
        ami_uuid=image.tags.get(plan.TAG_UUID) if image else None,
        ami_snapshot_id=_source_snapshot(image, home, snapshots),
        ami_tags=dict(image.tags) if image else {},
        snapshots=snapshots,
        import_task_id=task_id if home else None,
    )


def _source_snapshot(
    image: ec2.Image | None, home: bool, snapshots: tuple[tuple[str, str], ...]
) -> str | None:
    """The home AMI's snapshot is the uploaded one (its tag, else the finished upload
    under its name); a copy's is its own."""
    if image is None:
        return None
    if home:
        finished = (s for s, state in snapshots if state == "completed")
        uploaded = image.tags.get(plan.TAG_SNAPSHOT) or next(finished, None)
        if uploaded:
            return uploaded
    return image.snapshot_ids[0] if image.snapshot_ids else None


def _snapshot_state(snapshot: dict[str, Any]) -> str:
    """ "completed" only for snapshots this tool finished filling: the emulator reports
    EBS direct snapshots completed from the start, so a torn upload would look done."""
    tags = {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}
    state = str(snapshot.get("State", "?"))
    if state == "completed" and tags.get(plan.TAG_UPLOADED) != "true":
        return "incomplete"
    return state


def lookup(target: ImageTarget, recorded: state_file.SyncState) -> dict[str, RegionLookup]:
    """What exists under ``target``'s AMI name in each of its regions (in parallel)."""
    record = recorded.images.get(target.name)
    task_id = None
    if record is not None and record.ami_name == target.ami_name:
        home = record.regions.get(target.home_region)
        task_id = home.import_task_id if home else None
    with ThreadPoolExecutor(max_workers=min(16, len(target.regions))) as pool:
        found = pool.map(lambda r: _lookup_region(target, r, task_id), target.regions)
        return {f.region: f for f in found}


def state_path(selection: Selection) -> Path:
    return Path(selection.project_dir) / state_file.DEFAULT_STATE_FILE


def plan_all(
    selections: Sequence[Selection], *, force: bool = False
) -> list[tuple[Identity, ImagePlan]]:
    """Identity and plan of every selected image; reads nix and AWS, writes nothing."""
    plans = []
    for selection in selections:
        identity = identify(selection)
        recorded = state_file.load(state_path(selection))
        plans.append(
            (
                identity,
                plan.plan_image(identity.target, lookup(identity.target, recorded), force=force),
            )
        )
    return plans
