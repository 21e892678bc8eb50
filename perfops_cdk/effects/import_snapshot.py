"""The compatibility path for VHD images: S3 multipart upload, then import-snapshot.

This is the seed's way; it needs a bucket and the ``vmimport`` service role, and an
import takes 15 to 100 minutes. The import itself sits behind ``SnapshotImporter``
because the emulator does not implement it: ``Boto3Importer`` is the real one, and
tests supply a fake that fills a snapshot through the emulator's EBS direct API.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import attrs
from botocore.exceptions import BotoCoreError, ClientError

from perfops_cdk.effects import aws
from perfops_cdk.errors import EffectError

__all__ = [
    "Boto3Importer",
    "ImportStatus",
    "S3Object",
    "SnapshotImporter",
    "bucket_tags",
    "ensure_bucket",
    "file_sha256",
    "import_snapshot",
    "upload_to_s3",
]

MIB = 1024**2
# 64 MiB parts keep a 10 GiB image under 160 parts (S3 allows 10,000) and retries cheap.
DEFAULT_PART_SIZE = 64 * MIB
DEFAULT_UPLOAD_WORKERS = 4
# Imports take 15 to 100 minutes; botocore's waiters give up after 10.
DEFAULT_IMPORT_BUDGET_S = 100 * 60
DEFAULT_POLL_S = 15.0
# Stored as object metadata because S3 reports a multipart object's checksum as a
# checksum of part checksums, which depends on the part size.
SHA256_METADATA = "perfops-sha256"

ProgressCallback = Callable[[int], None]


@attrs.frozen
class S3Object:
    """An image in S3 and whether this call had to upload it."""

    bucket: str
    key: str
    size: int
    sha256: str
    uploaded: bool


@attrs.frozen
class ImportStatus:
    """One poll of an import task; ``progress`` is percent, ``snapshot_id`` set when done."""

    task_id: str
    status: str  # active | completed | deleting | deleted (AWS's words)
    progress: int = 0
    snapshot_id: str | None = None
    message: str = ""


class SnapshotImporter(Protocol):
    """Starts and polls EC2 snapshot imports; the seam the emulator's gap needs."""

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
        """Start importing s3://bucket/key; return the import task id."""
        ...

    def status(self, task_id: str) -> ImportStatus:
        """The task's current state."""
        ...


@attrs.frozen
class Boto3Importer:
    """``SnapshotImporter`` over a real EC2 client."""

    ec2: Any

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
        kwargs: dict[str, Any] = {
            "Description": description,
            "DiskContainer": {
                "Description": description,
                "Format": disk_format.upper(),
                "UserBucket": {"S3Bucket": bucket, "S3Key": key},
            },
            # botocore adds no token to ImportSnapshot: without one a retry imports twice.
            "ClientToken": client_token,
        }
        if tags:
            kwargs["TagSpecifications"] = [
                {
                    "ResourceType": "import-snapshot-task",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
        response = aws.call(self.ec2, "import_snapshot", **kwargs)
        return str(response["ImportTaskId"])

    def status(self, task_id: str) -> ImportStatus:
        response = aws.call(self.ec2, "describe_import_snapshot_tasks", ImportTaskIds=[task_id])
        tasks = response.get("ImportSnapshotTasks", [])
        if not tasks:
            raise EffectError(f"import task {task_id} not found (tasks are kept for 7 days)")
        detail = tasks[0].get("SnapshotTaskDetail", {})
        return ImportStatus(
            task_id=task_id,
            status=detail.get("Status", "unknown"),
            progress=int(detail.get("Progress", "0") or 0),
            snapshot_id=detail.get("SnapshotId"),
            message=detail.get("StatusMessage", ""),
        )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def ensure_bucket(s3: Any, bucket: str, region: str, *, tags: Mapping[str, str]) -> bool:
    """Create ``bucket`` in ``region`` with ``tags`` unless it exists; True when created.

    An existing bucket is used as it is and never tagged: it may be anyone's, and the
    tags are what lets ``purge-s3`` empty a bucket.
    """
    with contextlib.suppress(ClientError):
        s3.head_bucket(Bucket=bucket)
        return False
    tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
    config: dict[str, Any] = {"Tags": tag_set} if tag_set else {}
    if region != "us-east-1":
        config["LocationConstraint"] = region
    try:
        s3.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": config} if config else {}))
    except ClientError as exc:
        if _error_code(exc) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return False
        raise EffectError(f"s3://{bucket}: create_bucket failed: {exc}") from exc
    # The emulator ignores tags given at creation; check, and set them when missing.
    have = bucket_tags(s3, bucket) or {}
    if tag_set and any(have.get(k) != v for k, v in tags.items()):
        aws.call(s3, "put_bucket_tagging", Bucket=bucket, Tagging={"TagSet": tag_set})
    return True


def bucket_tags(s3: Any, bucket: str) -> dict[str, str] | None:
    """The tags of ``bucket``; None when there is no such bucket."""
    try:
        response = s3.get_bucket_tagging(Bucket=bucket)
    except ClientError as exc:
        code = _error_code(exc)
        if code == "NoSuchTagSet":
            return {}
        if code in ("NoSuchBucket", "404"):
            return None
        raise EffectError(f"s3://{bucket}: get_bucket_tagging failed: {exc}") from exc
    except BotoCoreError as exc:
        raise EffectError(f"s3://{bucket}: get_bucket_tagging failed: {exc}") from exc
    return {t["Key"]: t["Value"] for t in response.get("TagSet", [])}


def _existing(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        head: dict[str, Any] = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise EffectError(f"s3://{bucket}/{key}: head_object failed: {exc}") from exc
    return head


def upload_to_s3(
    s3: Any,
    path: Path,
    *,
    bucket: str,
    key: str,
    part_size: int = DEFAULT_PART_SIZE,
    workers: int = DEFAULT_UPLOAD_WORKERS,
    progress: ProgressCallback | None = None,
) -> S3Object:
    """Upload ``path`` to s3://bucket/key in parts with SHA-256 checksums.

    Skipped when the object exists with the same size and SHA-256; an upload that fails
    midway is aborted so no parts linger. ``progress`` gets total bytes sent so far.
    """
    try:
        size = path.stat().st_size
        sha256 = file_sha256(path)
    except OSError as exc:
        raise EffectError(f"{path}: cannot read disk image: {exc.strerror}") from exc
    head = _existing(s3, bucket, key)
    if (
        head is not None
        and head.get("ContentLength") == size
        and head.get("Metadata", {}).get(SHA256_METADATA) == sha256
    ):
        return S3Object(bucket, key, size, sha256, uploaded=False)

    upload_id = aws.call(
        s3,
        "create_multipart_upload",
        Bucket=bucket,
        Key=key,
        ChecksumAlgorithm="SHA256",
        Metadata={SHA256_METADATA: sha256},
    )["UploadId"]
    try:
        parts = _upload_parts(s3, path, bucket, key, upload_id, size, part_size, workers, progress)
        aws.call(
            s3,
            "complete_multipart_upload",
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
    except BaseException:
        # Abandoned parts are billed until aborted.
        with contextlib.suppress(ClientError, BotoCoreError):
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return S3Object(bucket, key, size, sha256, uploaded=True)


def _upload_parts(
    s3: Any,
    path: Path,
    bucket: str,
    key: str,
    upload_id: str,
    size: int,
    part_size: int,
    workers: int,
    progress: ProgressCallback | None,
) -> list[dict[str, Any]]:
    lock = threading.Lock()
    sent = [0]
    fd = os.open(path, os.O_RDONLY)

    def put(number: int) -> dict[str, Any]:
        data = os.pread(fd, part_size, (number - 1) * part_size)
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        response = aws.call(
            s3,
            "upload_part",
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumSHA256=checksum,
        )
        with lock:
            sent[0] += len(data)
            if progress is not None:
                progress(sent[0])
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}

    try:
        numbers = range(1, max(1, math.ceil(size / part_size)) + 1)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-part") as pool:
            return list(pool.map(put, numbers))
    finally:
        os.close(fd)


def import_snapshot(
    importer: SnapshotImporter,
    *,
    bucket: str,
    key: str,
    client_token: str,
    disk_format: str = "vhd",
    description: str = "",
    tags: Mapping[str, str] | None = None,
    budget_s: float = DEFAULT_IMPORT_BUDGET_S,
    poll_s: float = DEFAULT_POLL_S,
    progress: Callable[[ImportStatus], None] | None = None,
    task_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ImportStatus:
    """Import s3://bucket/key as a snapshot and wait (at most ``budget_s``) until done.

    Pass the ``task_id`` of an earlier, interrupted run to keep waiting on it instead
    of starting again; by default a task is started with ``client_token``, which makes
    the start idempotent. ``progress`` sees every poll. Returns the completed status.
    """
    if task_id is None:
        task_id = importer.start(
            bucket=bucket,
            key=key,
            disk_format=disk_format,
            client_token=client_token,
            description=description,
            tags=tags or {},
        )
    deadline = clock() + budget_s
    while True:
        status = importer.status(task_id)
        if progress is not None:
            progress(status)
        if status.status == "completed":
            if not status.snapshot_id:
                raise EffectError(f"import task {task_id} completed without a snapshot id")
            return status
        if status.status in ("deleting", "deleted"):
            reason = status.message or status.status
            raise EffectError(f"import task {task_id} of s3://{bucket}/{key} failed: {reason}")
        if clock() >= deadline:
            raise EffectError(
                f"import task {task_id} still {status.status} at {status.progress}% after "
                f"{budget_s:.0f} s; rerun to keep waiting on it"
            )
        sleep(min(poll_s, max(0.0, deadline - clock())))
