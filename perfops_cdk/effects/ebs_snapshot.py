"""Upload a raw disk image as an EBS snapshot with the EBS direct APIs.

No S3 bucket and no vmimport role: blocks go straight into a new snapshot. NixOS
images are mostly empty space, so only the file's data extents (``SEEK_DATA`` /
``SEEK_HOLE``) are read and, inside them, all-zero blocks are skipped too: EBS reads
unwritten blocks as zeros. ``upload_every_block=True`` sends every block instead,
as NixOS/amis does, for benchmarking.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
from botocore.exceptions import BotoCoreError, ClientError

from perfops_cdk.effects import aws
from perfops_cdk.effects.ec2_images import delete_snapshot
from perfops_cdk.errors import EffectError

__all__ = ["BLOCK_SIZE", "SnapshotUpload", "data_block_indexes", "upload_snapshot"]

BLOCK_SIZE = 512 * 1024  # the only block size the EBS direct APIs accept
GIB = 1024**3
_ZERO_BLOCK = bytes(BLOCK_SIZE)

# Pending snapshots that are never completed (a killed sync) turn to "error" after this
# many minutes on AWS instead of lingering; a rerun starts a fresh one.
DEFAULT_TIMEOUT_MINUTES = 60
DEFAULT_WORKERS = 16

ProgressCallback = Callable[[int], None]


@attrs.frozen
class SnapshotUpload:
    """The outcome of one upload: the snapshot and what it took to fill it."""

    snapshot_id: str
    blocks_total: int
    blocks_sent: int
    bytes_sent: int


def _extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) byte ranges that hold data; the whole file when holes are unknown."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole remains
                return
            if exc.errno == errno.EINVAL:  # file system cannot tell: treat all as data
                yield offset, size
                return
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end
        offset = end


def data_block_indexes(fd: int, size: int) -> Iterator[int]:
    """Indexes of the 512 KiB blocks that overlap a data extent, ascending, once each."""
    last = -1
    for start, end in _extents(fd, size):
        for index in range(max(start // BLOCK_SIZE, last + 1), (end - 1) // BLOCK_SIZE + 1):
            yield index
            last = index


def _checksum(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def upload_snapshot(
    path: Path,
    *,
    region: str,
    client_token: str,
    tags: Mapping[str, str] | None = None,
    description: str = "",
    volume_size_gib: int | None = None,
    workers: int = DEFAULT_WORKERS,
    upload_every_block: bool = False,
    timeout_minutes: int = DEFAULT_TIMEOUT_MINUTES,
    progress: ProgressCallback | None = None,
    ebs: Any = None,
    ec2: Any = None,
) -> SnapshotUpload:
    """Upload the raw image at ``path`` into a new snapshot in ``region``; return it.

    ``client_token`` makes the start idempotent on AWS: derive it from the image
    identity so a rerun reuses the snapshot. ``tags`` (none by default) are set at
    start. ``volume_size_gib`` defaults to the file size rounded up to whole GiB.
    ``progress`` is called with the total bytes sent so far after every block.
    ``ebs`` / ``ec2`` clients default to ``aws.client`` ones for ``region``. On any
    failure the incomplete snapshot is deleted and ``EffectError`` raised.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise EffectError(f"{path}: cannot read disk image: {exc.strerror}") from exc
    try:
        return _upload(
            fd,
            path,
            region=region,
            client_token=client_token,
            tags=tags or {},
            description=description,
            volume_size_gib=volume_size_gib,
            workers=workers,
            upload_every_block=upload_every_block,
            timeout_minutes=timeout_minutes,
            progress=progress,
            ebs=ebs or aws.client("ebs", region, max_pool_connections=workers),
            ec2=ec2,
        )
    finally:
        os.close(fd)


def _upload(
    fd: int,
    path: Path,
    *,
    region: str,
    client_token: str,
    tags: Mapping[str, str],
    description: str,
    volume_size_gib: int | None,
    workers: int,
    upload_every_block: bool,
    timeout_minutes: int,
    progress: ProgressCallback | None,
    ebs: Any,
    ec2: Any,
) -> SnapshotUpload:
    size = os.fstat(fd).st_size
    if size == 0:
        raise EffectError(f"{path}: disk image is empty")
    blocks_total = math.ceil(size / BLOCK_SIZE)
    try:
        started = ebs.start_snapshot(
            VolumeSize=volume_size_gib or math.ceil(size / GIB),
            ClientToken=client_token,
            Description=description,
            Timeout=timeout_minutes,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    except (ClientError, BotoCoreError) as exc:
        raise EffectError(f"{region}: start_snapshot for {path} failed: {exc}") from exc
    snapshot_id: str = started["SnapshotId"]
    if started.get("Status") == "completed":
        # Same ClientToken as an earlier, finished upload: AWS hands back that snapshot.
        return SnapshotUpload(snapshot_id, blocks_total, 0, 0)

    indexes = range(blocks_total) if upload_every_block else data_block_indexes(fd, size)
    sender = _BlockSender(fd, size, ebs, snapshot_id, upload_every_block, progress)
    try:
        sender.run(iter(indexes), workers)
        checksums = [sender.checksums[i] for i in sorted(sender.checksums)]
        complete: dict[str, Any] = {"SnapshotId": snapshot_id, "ChangedBlocksCount": len(checksums)}
        if checksums:
            complete.update(
                Checksum=base64.b64encode(_checksum(b"".join(checksums))).decode(),
                ChecksumAlgorithm="SHA256",
                ChecksumAggregationMethod="LINEAR",
            )
        ebs.complete_snapshot(**complete)
    except BaseException as exc:
        _discard(ec2 or aws.client("ec2", region), snapshot_id)
        if isinstance(exc, ClientError | BotoCoreError | OSError):
            raise EffectError(
                f"{region}: upload of {path} into {snapshot_id} failed ({exc}); "
                "the incomplete snapshot was deleted"
            ) from exc
        raise
    return SnapshotUpload(snapshot_id, blocks_total, len(checksums), sender.bytes_sent)


def _discard(ec2: Any, snapshot_id: str) -> None:
    # The upload error matters more; a leftover pending snapshot times out on AWS.
    with contextlib.suppress(EffectError):
        delete_snapshot(ec2, snapshot_id)


class _BlockSender:
    """Workers pull block indexes from one shared iterator, so memory stays at one
    block per worker however large the image, and the first failure stops them all."""

    def __init__(
        self,
        fd: int,
        size: int,
        ebs: Any,
        snapshot_id: str,
        send_zero_blocks: bool,
        progress: ProgressCallback | None,
    ) -> None:
        self._fd = fd
        self._size = size
        self._ebs = ebs
        self._snapshot_id = snapshot_id
        self._send_zero_blocks = send_zero_blocks
        self._progress = progress
        self._lock = threading.Lock()
        self._failed = threading.Event()
        self.checksums: dict[int, bytes] = {}
        self.bytes_sent = 0

    def run(self, indexes: Iterator[int], workers: int) -> None:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ebs-put") as pool:
            futures = [pool.submit(self._work, indexes) for _ in range(workers)]
        for future in futures:
            future.result()  # re-raises the first worker's failure

    def _next(self, indexes: Iterator[int]) -> int | None:
        with self._lock:
            if self._failed.is_set():
                return None
            return next(indexes, None)

    def _work(self, indexes: Iterator[int]) -> None:
        try:
            while (index := self._next(indexes)) is not None:
                self._send(index)
        except BaseException:
            self._failed.set()
            raise

    def _send(self, index: int) -> None:
        data = os.pread(self._fd, BLOCK_SIZE, index * BLOCK_SIZE)
        if len(data) < BLOCK_SIZE:  # the last block of a file not sized in whole blocks
            data += bytes(BLOCK_SIZE - len(data))
        if not self._send_zero_blocks and data == _ZERO_BLOCK:
            return
        digest = _checksum(data)
        self._ebs.put_snapshot_block(
            SnapshotId=self._snapshot_id,
            BlockIndex=index,
            BlockData=data,
            DataLength=BLOCK_SIZE,
            Checksum=base64.b64encode(digest).decode(),
            ChecksumAlgorithm="SHA256",
        )
        with self._lock:
            self.checksums[index] = digest
            self.bytes_sent += BLOCK_SIZE
            sent = self.bytes_sent
            if self._progress is not None:
                self._progress(sent)
