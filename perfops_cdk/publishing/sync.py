"""The image sync: identity, lookup, plan, then build, upload, register and copy.

Every step looks up before it creates and records its result in ``state.json``
straight away, so a sync killed at any point reruns to convergence: a finished
snapshot is registered rather than uploaded again, an AMI found by its
content-addressed name is never registered or copied twice.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from perfops_cdk.effects import aws, nix, state_file
from perfops_cdk.effects import ec2_images as ec2
from perfops_cdk.effects.ebs_snapshot import BLOCK_SIZE, data_block_indexes, upload_snapshot
from perfops_cdk.effects.import_snapshot import (
    Boto3Importer,
    ensure_bucket,
    import_snapshot,
    upload_to_s3,
)
from perfops_cdk.errors import EffectError, PerfOpsError
from perfops_cdk.planners import ami_sync as plan
from perfops_cdk.planners.ami_sync import ImagePlan, Selection
from perfops_cdk.publishing.identity import (
    Identity,
    ec2_client,
    forget_clients,
    identify,
    plan_all,
    raw_identity,
    state_path,
)
from perfops_cdk.publishing.records import (
    DEFAULT_OPTIONS,
    ImageResult,
    Progress,
    ProgressEvent,
    SyncOptions,
    quiet,
)

__all__ = [
    "ImageResult",
    "ProgressEvent",
    "SyncOptions",
    "forget_clients",
    "identify",
    "plan_all",
    "raw_identity",
    "sync_images",
]

GIB = 1024**3
RAW_SYSTEM = "x86_64-linux"  # upload-raw images: no image-info.json says otherwise


def sync_images(
    selections: Sequence[Selection],
    *,
    options: SyncOptions = DEFAULT_OPTIONS,
    progress: Progress = quiet,
) -> list[ImageResult]:
    """Publish every selected image as AMIs in its regions; see the module docstring.

    Nothing is written when an image's identity or build fails. A region that fails
    does not stop the others; the results name it, and the caller reports it.
    """
    paths = sorted({state_path(s) for s in selections})
    with contextlib.ExitStack() as locks:
        for path in paths:
            locks.enter_context(state_file.locked(path))
        plans = plan_all(selections, force=options.force)
        recorders = {p: state_file.Recorder(p, state_file.load(p)) for p in paths}
        results = []
        for identity, image_plan in plans:
            for step in image_plan.steps:
                progress(ProgressEvent(image_plan.target.name, step.region, step.action))
            recorder = recorders[state_path(identity.selection)]
            results.append(_Publisher(identity, image_plan, recorder, options, progress).run())
        return results


class _Publisher:
    """Carries out one image's plan."""

    def __init__(
        self,
        identity: Identity,
        image_plan: ImagePlan,
        recorder: state_file.Recorder,
        options: SyncOptions,
        progress: Progress,
    ) -> None:
        self.identity = identity
        self.plan = image_plan
        self.target = image_plan.target
        self.recorder = recorder
        self.options = options
        self.progress = progress
        self.result: dict[str, Any] = {"built": False, "bytes_uploaded": 0, "registered": False}
        self.retagged: list[str] = []  # appended from copy threads: list.append is atomic

    def say(self, region: str, stage: str, **kw: Any) -> None:
        self.progress(ProgressEvent(self.target.name, region, stage, **kw))

    def tags(self, snapshot_id: str) -> dict[str, str]:
        return plan.sync_tags(self.target, snapshot_id)

    def record(self, region: str, **changes: Any) -> None:
        self.recorder.set_region(self.target.name, region, **changes)

    def run(self) -> ImageResult:
        started = time.monotonic()
        info = self._disk() if self.plan.needs_disk else None
        self.recorder.start_image(self.target.name, self.target.ami_name, self.target.home_region)
        ami_ids: dict[str, str] = {}
        failed: dict[str, str] = {}
        copied: list[str] = []
        home = self.plan.home
        try:
            home_image = self._home(home, info)
            ami_ids[home.region] = home_image.image_id
        except EffectError as exc:
            self.record(home.region, state="failed")
            self.say(home.region, "failed", detail=str(exc))
            failed = {s.region: str(exc) for s in self.plan.steps}
            return self._result(started, ami_ids, failed, copied)
        others = [s for s in self.plan.steps if s.region != home.region]
        with ThreadPoolExecutor(max_workers=max(1, self.options.copy_workers)) as pool:
            for step, outcome in zip(
                others, pool.map(lambda s: self._other(s, home_image), others), strict=True
            ):
                if isinstance(outcome, str):
                    failed[step.region] = outcome
                else:
                    ami_ids[step.region] = outcome.image.image_id  # type: ignore[union-attr]
                    if outcome.copied:
                        copied.append(step.region)
        return self._result(started, ami_ids, failed, copied)

    def _result(
        self, started: float, ami_ids: dict[str, str], failed: dict[str, str], copied: list[str]
    ) -> ImageResult:
        return ImageResult(
            plan=self.plan,
            copied=tuple(sorted(copied)),
            ami_ids=ami_ids,
            failed=failed,
            seconds=time.monotonic() - started,
            retagged=tuple(sorted(self.retagged)),
            **self.result,
        )

    def _disk(self) -> nix.ImageInfo:
        """The disk to upload: built by nix when missing, checked readable before any write."""
        identity = self.identity
        if identity.out_path is not None:
            if not identity.out_path.exists():
                self.say(self.target.home_region, "building")
                nix.build(
                    Path(identity.selection.nix_file or ""),
                    identity.selection.attr,
                    args=identity.selection.args,
                )
                self.result["built"] = True
            info = nix.read_image_info(identity.out_path)
        else:
            assert identity.disk is not None
            size = identity.disk.stat().st_size
            info = nix.ImageInfo(
                label=self.target.name,
                system=RAW_SYSTEM,
                logical_bytes=size,
                file=identity.disk,
                boot_mode="legacy-bios",
                disks={"root": nix.DiskInfo(identity.disk, size)},
            )
        try:
            with info.file.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise EffectError(f"{info.file}: cannot read disk image: {exc.strerror}") from exc
        if info.format == "vhd" and self.options.method == "ebs":
            raise PerfOpsError(f"{info.file}: a VHD image needs --method import (EBS takes raw)")
        return info

    def _home(self, step: plan.RegionStep, info: nix.ImageInfo | None) -> ec2.Image:
        region = step.region
        client = ec2_client(region)
        if step.action == "ready":
            return self._ready(step, step.snapshot_id or "")
        if step.action == "wait":
            assert step.ami_id is not None
            return self._available(client, region, step.ami_id, self.tags(step.snapshot_id or ""))
        if step.action == "replace":
            assert step.ami_id is not None
            ec2.delete_image(client, step.ami_id)
        assert info is not None
        snapshot_id = step.snapshot_id
        if step.action in ("upload", "replace"):
            for stale in step.stale_snapshots:
                ec2.delete_snapshot(client, stale)
            snapshot_id = self._upload(region, info, step.stale_snapshots)
        elif step.action == "resume-import":
            snapshot_id = self._import(region, info, step.import_task_id)
        assert snapshot_id is not None
        if step.action != "register":
            ec2.tag_resources(client, [snapshot_id], {plan.TAG_UPLOADED: "true"})
        self.record(region, snapshot_id=snapshot_id, import_task_id=None, state="snapshot")
        self.say(region, "snapshot", detail=snapshot_id)
        ec2.wait_snapshot_completed(client, snapshot_id, delay_s=self.options.poll_s)
        self.say(region, "registering")
        image = ec2.register_image(
            client,
            name=self.target.ami_name,
            snapshot_id=snapshot_id,
            system=info.system,
            boot_mode=info.boot_mode,
            logical_bytes=info.logical_bytes,
            description=f"perfops image {self.target.name} ({info.label})",
            tags=self.tags(snapshot_id),
        )
        self.result["registered"] = True
        self.record(region, ami_id=image.image_id, state=image.state)
        return self._available(client, region, image.image_id, self.tags(snapshot_id))

    def _ready(self, step: plan.RegionStep, source_snapshot: str) -> ec2.Image:
        """An AMI the lookup found available: recorded; AWS is called only to add the
        sync's tags it lacks (a run was killed between creating and tagging it)."""
        assert step.ami_id is not None
        if step.repair_tags:
            client = ec2_client(step.region)
            found = ec2.describe_image(client, step.ami_id)
            if found is not None:
                ec2.complete_tags(client, found, self.tags(source_snapshot))
                self.retagged.append(step.region)
        self.record(
            step.region, ami_id=step.ami_id, snapshot_id=step.snapshot_id, state="available"
        )
        self.say(step.region, "available", detail=step.ami_id)
        snapshots = (step.snapshot_id,) if step.snapshot_id else ()
        tags = {plan.TAG_SNAPSHOT: step.snapshot_id} if step.snapshot_id else {}
        return ec2.Image(
            step.ami_id, self.target.ami_name, step.region, "available", snapshots, tags
        )

    def _available(self, client: Any, region: str, ami_id: str, tags: dict[str, str]) -> ec2.Image:
        image = ec2.wait_image_available(client, ami_id, delay_s=self.options.poll_s)
        # An AMI's snapshots exist only once it is available; the AMI may be untagged too
        # when a killed run left it pending.
        image = ec2.complete_tags(client, image, tags)
        # The home AMI's snapshot is the uploaded one (its tag); a copy's is its own.
        uploaded = image.tags.get(plan.TAG_SNAPSHOT) if region == self.target.home_region else None
        snapshot = uploaded or (image.snapshot_ids[0] if image.snapshot_ids else None)
        self.record(region, ami_id=ami_id, snapshot_id=snapshot, state="available")
        self.say(region, "available", detail=ami_id)
        return image

    def _upload(self, region: str, info: nix.ImageInfo, stale: tuple[str, ...]) -> str:
        if self.options.method == "import":
            return self._import(region, info, None)
        self.record(region, state="uploading")
        total = _data_bytes(info.file)
        self.say(region, "uploading", done=0, total=total)
        upload = upload_snapshot(
            info.file,
            region=region,
            # New stale ids give a new token: AWS would hand back a deleted snapshot otherwise.
            client_token=ec2.client_token("start_snapshot", self.target.ami_name, *stale),
            tags=self.tags(""),
            description=f"perfops image {self.target.ami_name}",
            volume_size_gib=math.ceil(info.logical_bytes / GIB),
            workers=self.options.workers,
            progress=lambda sent: self.say(region, "uploading", done=sent, total=total),
        )
        self.result["bytes_uploaded"] = upload.bytes_sent
        return upload.snapshot_id

    def _import(self, region: str, info: nix.ImageInfo, task_id: str | None) -> str:
        importer = (self.options.importer_for or (lambda r: Boto3Importer(aws.client("ec2", r))))(
            region
        )
        bucket = self.options.bucket or f"perfops-images-{self.target.uuid}"
        key = f"{self.target.ami_name}{info.file.suffix or '.raw'}"
        token = ec2.client_token("import_snapshot", self.target.ami_name, bucket, key)
        if task_id is None:
            s3 = aws.client("s3", region)
            ensure_bucket(s3, bucket, region, tags=plan.images_bucket_tags(self.target.uuid))
            size = info.file.stat().st_size
            self.say(region, "uploading", done=0, total=size)
            sent = upload_to_s3(
                s3,
                info.file,
                bucket=bucket,
                key=key,
                progress=lambda n: self.say(region, "uploading", done=n, total=size),
            )
            if sent.uploaded:
                self.result["bytes_uploaded"] = sent.size
            task_id = importer.start(
                bucket=bucket,
                key=key,
                disk_format=info.format,
                client_token=token,
                description=f"perfops image {self.target.ami_name}",
                tags=self.tags(""),
            )
            self.record(region, import_task_id=task_id, state="importing")
        status = import_snapshot(
            importer,
            bucket=bucket,
            key=key,
            client_token=token,
            disk_format=info.format,
            task_id=task_id,
            poll_s=self.options.poll_s,
            progress=lambda s: self.say(region, "importing", done=s.progress, total=100),
        )
        assert status.snapshot_id is not None
        ec2.tag_resources(ec2_client(region), [status.snapshot_id], self.tags(""))
        return status.snapshot_id

    def _other(self, step: plan.RegionStep, home: ec2.Image) -> ec2.RegionCopy | str:
        """Copy (or wait for) one region; returns the copy or its one-line error."""
        region = step.region
        source = self.plan.home.snapshot_id or home.tags.get(plan.TAG_SNAPSHOT, "")
        try:
            client = ec2_client(region)
            if step.action == "ready":
                return ec2.RegionCopy(region, self._ready(step, source))
            if step.action == "wait":
                assert step.ami_id is not None
                image = self._available(client, region, step.ami_id, self.tags(source))
                return ec2.RegionCopy(region, image)
            if step.action == "replace":
                assert step.ami_id is not None
                ec2.delete_image(client, step.ami_id)
            self.record(region, state="copying")
            self.say(region, "copying")
            copies = ec2.copy_image_to_regions(
                home.region,
                home.image_id,
                name=self.target.ami_name,
                regions=[region],
                tags=self.tags(source),
                client_for=lambda _: client,
                max_workers=1,
                delay_s=self.options.poll_s,
            )
            copy = copies[region]
            if not copy.ok or copy.image is None:
                raise EffectError(copy.error or f"{region}: copy failed")
            snapshot = copy.image.snapshot_ids[0] if copy.image.snapshot_ids else None
            self.record(region, ami_id=copy.image.image_id, snapshot_id=snapshot, state="available")
            self.say(region, "available", detail=copy.image.image_id)
            return copy
        except EffectError as exc:
            self.record(region, state="failed")
            self.say(region, "failed", detail=str(exc))
            return str(exc)


def _data_bytes(path: Path) -> int:
    """Bytes in the blocks that hold data: the most an upload can send."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return sum(1 for _ in data_block_indexes(fd, os.fstat(fd).st_size)) * BLOCK_SIZE
    finally:
        os.close(fd)
