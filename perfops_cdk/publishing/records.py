"""What a sync is asked (options) and what it reports (progress events, results)."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from perfops_cdk.effects.import_snapshot import SnapshotImporter
from perfops_cdk.planners.ami_sync import ImagePlan

__all__ = ["DEFAULT_OPTIONS", "ImageResult", "Progress", "ProgressEvent", "SyncOptions", "quiet"]


@attrs.frozen
class ProgressEvent:
    """One change a live view shows: an image's region reached ``stage``."""

    image: str
    region: str
    stage: str
    done: int | None = None
    total: int | None = None
    detail: str = ""


Progress = Callable[[ProgressEvent], None]


def quiet(_: ProgressEvent) -> None:
    """A progress callback that shows nothing."""


@attrs.frozen
class SyncOptions:
    """How to sync. Defaults: EBS direct upload, 16 upload workers, 8 parallel copies."""

    method: str = attrs.field(default="ebs", validator=attrs.validators.in_(("ebs", "import")))
    force: bool = False
    dry_run: bool = False
    workers: int = 16
    copy_workers: int = 8
    # S3 bucket for --method import. Default: perfops-images-<uuid> in the home region.
    bucket: str | None = None
    # The import seam; default Boto3Importer over the home region's EC2 client.
    importer_for: Callable[[str], SnapshotImporter] | None = None
    poll_s: float = 15.0


DEFAULT_OPTIONS = SyncOptions()


@attrs.frozen
class ImageResult:
    """What a sync did for one image."""

    plan: ImagePlan
    built: bool = False
    bytes_uploaded: int = 0
    registered: bool = False
    copied: tuple[str, ...] = ()
    ami_ids: dict[str, str] = attrs.field(factory=dict)
    failed: dict[str, str] = attrs.field(factory=dict)
    seconds: float = 0.0
    retagged: tuple[str, ...] = ()  # regions whose AMI found by name lacked the sync's tags

    def summary(self) -> str:
        target = self.plan.target
        head = f"{target.name}: {target.ami_name}"
        if self.failed:
            first = next(iter(self.failed.values()))
            return f"{head}: FAILED in {', '.join(sorted(self.failed))}: {first}"
        if self.plan.unchanged:
            return f"{head}: up to date in {len(self.ami_ids)} region(s)"
        did = [
            *(["built"] if self.built else []),
            *([f"uploaded {self.bytes_uploaded / 1024**2:.1f} MiB"] if self.bytes_uploaded else []),
            *(["registered"] if self.registered else []),
            *([f"copied to {len(self.copied)}"] if self.copied else []),
            *([f"added missing tags in {len(self.retagged)}"] if self.retagged else []),
        ]
        return (
            f"{head}: available in {len(self.ami_ids)} region(s) "
            f"({', '.join(did) or 'waited'}) in {self.seconds:.1f} s"
        )
