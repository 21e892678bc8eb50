"""The VHD path: S3 multipart upload against moto, import-snapshot behind its seam."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from perfops_cdk.effects import aws
from perfops_cdk.effects.ebs_snapshot import upload_snapshot
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.effects.import_snapshot import (
    SHA256_METADATA,
    Boto3Importer,
    ImportStatus,
    SnapshotImporter,
    bucket_tags,
    ensure_bucket,
    file_sha256,
    import_snapshot,
    upload_to_s3,
)
from perfops_cdk.errors import EffectError

REGION = "eu-west-1"
BUCKET = "perf-ops-images"
MIB = 1024 * 1024


class FakeImporter:
    """Test-only SnapshotImporter: moto has no import-snapshot, so this one reads the
    object from the emulator's S3 and fills a snapshot through its EBS direct API,
    reporting "active" for a few polls first, like AWS."""

    def __init__(self, workdir: Path, polls_before_done: int = 2) -> None:
        self.workdir = workdir
        self.polls_before_done = polls_before_done
        self.tasks: dict[str, dict[str, Any]] = {}
        self.by_token: dict[str, str] = {}
        self.starts = 0

    def start(
        self,
        *,
        bucket: str,
        key: str,
        disk_format: str,
        client_token: str,
        description: str,
        tags: Mapping[str, str],
    ) -> str:
        self.starts += 1
        if client_token in self.by_token:  # AWS returns the same task for the same token
            return self.by_token[client_token]
        task_id = f"import-snap-{len(self.tasks):08d}"
        self.tasks[task_id] = {"bucket": bucket, "key": key, "tags": dict(tags), "polls": 0}
        self.by_token[client_token] = task_id
        return task_id

    def status(self, task_id: str) -> ImportStatus:
        task = self.tasks[task_id]
        task["polls"] += 1
        if task["polls"] <= self.polls_before_done:
            return ImportStatus(
                task_id, "active", progress=40 * task["polls"], message="converting"
            )
        if "snapshot_id" not in task:
            local = self.workdir / f"{task_id}.img"
            aws.client("s3", REGION).download_file(task["bucket"], task["key"], str(local))
            task["snapshot_id"] = upload_snapshot(
                local, region=REGION, client_token=task_id, tags=task["tags"]
            ).snapshot_id
        return ImportStatus(task_id, "completed", progress=100, snapshot_id=task["snapshot_id"])


@pytest.fixture
def bucket(emulator: Emulator) -> str:
    aws.client("s3", REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return BUCKET


def _vhd(tmp_path: Path, size: int, fill: bytes = b"v") -> Path:
    path = tmp_path / "nixos.vhd"
    path.write_bytes(fill * size)
    return path


def test_multipart_upload_then_same_file_is_skipped(bucket: str, tmp_path: Path) -> None:
    """The image goes up in SHA-256-checked parts; the same file again uploads nothing."""
    vhd = _vhd(tmp_path, 12 * MIB + 123)
    seen: list[int] = []
    s3 = aws.client("s3", REGION)
    first = upload_to_s3(
        s3, vhd, bucket=bucket, key="img.vhd", part_size=5 * MIB, progress=seen.append
    )
    assert first.uploaded and first.size == vhd.stat().st_size
    assert sorted(seen)[-1] == vhd.stat().st_size and len(seen) == 3
    head = s3.head_object(Bucket=bucket, Key="img.vhd")
    assert head["ContentLength"] == vhd.stat().st_size
    assert head["Metadata"][SHA256_METADATA] == file_sha256(vhd)
    assert s3.get_object(Bucket=bucket, Key="img.vhd")["Body"].read() == vhd.read_bytes()

    second = upload_to_s3(s3, vhd, bucket=bucket, key="img.vhd", part_size=5 * MIB)
    assert not second.uploaded and second.sha256 == first.sha256


@pytest.mark.parametrize("region", [REGION, "us-east-1"])
def test_ensure_bucket_tags_the_bucket_it_creates_and_never_an_existing_one(
    emulator: Emulator, region: str
) -> None:
    """A new bucket carries the tags (moto drops them at creation); an existing one is untouched."""
    s3 = aws.client("s3", region)
    tags = {"perf-ops": "u1", "managed-by": "perfops_cdk"}
    assert ensure_bucket(s3, "fresh-bucket", region, tags=tags)
    assert bucket_tags(s3, "fresh-bucket") == tags
    assert not ensure_bucket(s3, "fresh-bucket", region, tags={"perf-ops": "u2"})
    assert bucket_tags(s3, "fresh-bucket") == tags
    assert bucket_tags(s3, "no-such-bucket") is None


def test_changed_content_of_same_size_is_uploaded_again(bucket: str, tmp_path: Path) -> None:
    """Same size but different bytes is not mistaken for the existing object."""
    s3 = aws.client("s3", REGION)
    upload_to_s3(s3, _vhd(tmp_path, MIB, b"a"), bucket=bucket, key="img.vhd")
    again = upload_to_s3(s3, _vhd(tmp_path, MIB, b"b"), bucket=bucket, key="img.vhd")
    assert again.uploaded
    assert s3.get_object(Bucket=bucket, Key="img.vhd")["Body"].read(1) == b"b"


def test_import_waits_with_progress_and_yields_a_snapshot(bucket: str, tmp_path: Path) -> None:
    """import_snapshot polls until completed, reporting each poll, and returns the snapshot."""
    s3 = aws.client("s3", REGION)
    upload_to_s3(s3, _vhd(tmp_path, 2 * MIB), bucket=bucket, key="img.vhd")
    importer = FakeImporter(tmp_path)
    polls: list[ImportStatus] = []
    sleeps: list[float] = []
    done = import_snapshot(
        importer,
        bucket=bucket,
        key="img.vhd",
        client_token="tok",
        tags={"perf-ops": "uuid-1"},
        progress=polls.append,
        sleep=sleeps.append,
    )
    assert [p.progress for p in polls] == [40, 80, 100]
    assert sleeps == [15.0, 15.0]
    assert done.snapshot_id is not None
    [snapshot] = aws.client("ec2", REGION).describe_snapshots(SnapshotIds=[done.snapshot_id])[
        "Snapshots"
    ]
    assert {t["Key"]: t["Value"] for t in snapshot["Tags"]} == {"perf-ops": "uuid-1"}


def test_import_started_twice_with_one_token_is_one_task(bucket: str, tmp_path: Path) -> None:
    """A rerun with the same ClientToken waits on the same task instead of importing twice."""
    importer = FakeImporter(tmp_path, polls_before_done=0)
    upload_to_s3(aws.client("s3", REGION), _vhd(tmp_path, MIB), bucket=bucket, key="img.vhd")
    first = import_snapshot(
        importer, bucket=bucket, key="img.vhd", client_token="tok", sleep=lambda _: None
    )
    second = import_snapshot(
        importer, bucket=bucket, key="img.vhd", client_token="tok", sleep=lambda _: None
    )
    assert (importer.starts, len(importer.tasks)) == (2, 1)
    assert first == second


def test_import_that_outlives_its_budget_is_one_line(tmp_path: Path) -> None:
    """A task still active when the budget runs out fails with its id so a rerun can resume."""
    importer = FakeImporter(tmp_path, polls_before_done=10**6)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(EffectError) as caught:
        import_snapshot(
            importer,
            bucket=BUCKET,
            key="img.vhd",
            client_token="tok",
            budget_s=100 * 60,
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert str(caught.value).startswith("import task import-snap-00000000 still active")
    assert "after 6000 s; rerun to keep waiting on it" in str(caught.value)
    assert now[0] == 6000.0


def test_failed_import_task_is_one_line(tmp_path: Path) -> None:
    """An import AWS gives up on (status deleted) raises with AWS's status message."""

    class Failing:
        def start(self, **kwargs: Any) -> str:
            return "import-snap-1"

        def status(self, task_id: str) -> ImportStatus:
            return ImportStatus(task_id, "deleted", message="ClientError: Disk validation failed")

    with pytest.raises(
        EffectError, match=r"import task import-snap-1 of s3://b/k failed: ClientError: Disk"
    ):
        import_snapshot(Failing(), bucket="b", key="k", client_token="t", sleep=lambda _: None)


def test_real_importer_sends_a_client_token_and_reads_task_detail() -> None:
    """Boto3Importer passes the deterministic token and VHD format, and parses the task detail."""
    calls: dict[str, dict[str, Any]] = {}

    class Ec2:
        def import_snapshot(self, **kwargs: Any) -> dict[str, Any]:
            calls["import"] = kwargs
            return {"ImportTaskId": "import-snap-9"}

        def describe_import_snapshot_tasks(self, **kwargs: Any) -> dict[str, Any]:
            detail = {"Status": "active", "Progress": "42", "StatusMessage": "converting"}
            return {
                "ImportSnapshotTasks": [
                    {"ImportTaskId": "import-snap-9", "SnapshotTaskDetail": detail}
                ]
            }

    importer: SnapshotImporter = Boto3Importer(Ec2())
    task = importer.start(
        bucket="b", key="k.vhd", disk_format="vhd", client_token="tok", description="d", tags={}
    )
    assert task == "import-snap-9"
    assert calls["import"]["ClientToken"] == "tok"
    assert calls["import"]["DiskContainer"]["Format"] == "VHD"
    assert calls["import"]["DiskContainer"]["UserBucket"] == {"S3Bucket": "b", "S3Key": "k.vhd"}
    assert importer.status(task) == ImportStatus("import-snap-9", "active", 42, None, "converting")
