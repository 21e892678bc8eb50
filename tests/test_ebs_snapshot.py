"""EBS direct upload against the moto server: only non-zero blocks travel, failures clean up."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from perfops_cdk.effects import aws
from perfops_cdk.effects.ebs_snapshot import BLOCK_SIZE, upload_snapshot
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.errors import EffectError

REGION = "eu-west-1"
MIB = 1024 * 1024


def sparse_image(path: Path, size: int, writes: dict[int, bytes]) -> Path:
    """A sparse file of ``size`` bytes with ``writes`` (offset -> bytes) and holes elsewhere."""
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in writes.items():
            f.seek(offset)
            f.write(data)
    return path


def snapshot_blocks(snapshot_id: str) -> dict[int, bytes]:
    """Block index -> data of a snapshot, read back through the EBS direct API."""
    ebs = aws.client("ebs", REGION)
    listed = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]
    return {
        b["BlockIndex"]: ebs.get_snapshot_block(
            SnapshotId=snapshot_id, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"]
        )["BlockData"].read()
        for b in listed
    }


def test_sends_exactly_the_non_zero_blocks_of_a_sparse_image(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Bytes sent equal the non-zero 512 KiB blocks; holes and zero-filled data are skipped."""
    image = sparse_image(
        tmp_path / "disk.raw",
        40 * MIB + 1000,  # not a whole number of blocks: the last block is padded
        {
            0: b"\xeb\x63\x90" * 1000,  # block 0
            3 * BLOCK_SIZE - 10: b"x" * 20,  # straddles blocks 2 and 3
            10 * BLOCK_SIZE: bytes(BLOCK_SIZE),  # data extent, but all zeros: skipped
            40 * MIB + 500: b"tail",  # block 80, the short last one
        },
    )
    seen: list[int] = []
    result = upload_snapshot(
        image,
        region=REGION,
        client_token="t" * 64,
        tags={"Name": "disk", "perf-ops": "uuid-1"},
        description="test disk",
        workers=4,
        progress=seen.append,
    )
    assert result.blocks_total == 81
    assert result.blocks_sent == 4
    assert result.bytes_sent == 4 * BLOCK_SIZE
    assert seen == [BLOCK_SIZE * n for n in range(1, 5)]

    blocks = snapshot_blocks(result.snapshot_id)
    assert sorted(blocks) == [0, 2, 3, 80]
    with image.open("rb") as f:
        for index, data in blocks.items():
            f.seek(index * BLOCK_SIZE)
            assert data == f.read(BLOCK_SIZE).ljust(BLOCK_SIZE, b"\0")

    ec2 = aws.client("ec2", REGION)
    [snapshot] = ec2.describe_snapshots(SnapshotIds=[result.snapshot_id])["Snapshots"]
    assert {t["Key"]: t["Value"] for t in snapshot["Tags"]} == {
        "Name": "disk",
        "perf-ops": "uuid-1",
    }
    assert snapshot["VolumeSize"] == 1
    assert snapshot["Description"] == "test disk"


def test_every_block_mode_sends_all_blocks(emulator: Emulator, tmp_path: Path) -> None:
    """upload_every_block sends zeros too, as NixOS/amis does (the benchmark's baseline)."""
    image = sparse_image(tmp_path / "disk.raw", 4 * MIB, {MIB: b"data"})
    result = upload_snapshot(
        image, region=REGION, client_token="every", workers=8, upload_every_block=True
    )
    assert (result.blocks_total, result.blocks_sent, result.bytes_sent) == (8, 8, 4 * MIB)
    assert len(snapshot_blocks(result.snapshot_id)) == 8


class _Recorder:
    """Wraps a real ebs client, recording calls and failing put_snapshot_block on request."""

    def __init__(self, real: Any, fail_on_block: int | None = None) -> None:
        self.real = real
        self.fail_on_block = fail_on_block
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            if name == "put_snapshot_block" and kwargs["BlockIndex"] == self.fail_on_block:
                raise OSError("connection reset while sending block")
            return method(**kwargs)

        return call


def test_checksums_per_block_and_linear_aggregate_at_complete(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Each block carries its base64 SHA-256; complete carries SHA-256 of the ordered digests."""
    writes = {i * BLOCK_SIZE: bytes([i + 1]) * 100 for i in (5, 1, 3)}
    image = sparse_image(tmp_path / "disk.raw", 8 * BLOCK_SIZE, writes)
    ebs = _Recorder(aws.client("ebs", REGION))
    upload_snapshot(image, region=REGION, client_token="sums", workers=3, ebs=ebs)

    puts = {kw["BlockIndex"]: kw for name, kw in ebs.calls if name == "put_snapshot_block"}
    digests = []
    for index in sorted(puts):
        digest = hashlib.sha256(bytes([index + 1]) * 100 + bytes(BLOCK_SIZE - 100)).digest()
        assert puts[index]["Checksum"] == base64.b64encode(digest).decode()
        assert puts[index]["ChecksumAlgorithm"] == "SHA256"
        digests.append(digest)
    [(_, complete)] = [c for c in ebs.calls if c[0] == "complete_snapshot"]
    assert complete["ChangedBlocksCount"] == 3
    assert complete["ChecksumAggregationMethod"] == "LINEAR"
    assert (
        complete["Checksum"]
        == base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    )
    [(_, start)] = [c for c in ebs.calls if c[0] == "start_snapshot"]
    assert start["ClientToken"] == "sums"


def test_failure_mid_upload_deletes_the_incomplete_snapshot(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A block that cannot be sent deletes the pending snapshot and raises one line."""
    image = sparse_image(
        tmp_path / "disk.raw", 16 * BLOCK_SIZE, {i * BLOCK_SIZE: b"z" for i in range(16)}
    )
    ebs = _Recorder(aws.client("ebs", REGION), fail_on_block=7)
    with pytest.raises(EffectError) as caught:
        upload_snapshot(
            image, region=REGION, client_token="fail", tags={"perf-ops": "u"}, workers=4, ebs=ebs
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "connection reset while sending block" in message
    assert "incomplete snapshot was deleted" in message
    assert not any(name == "complete_snapshot" for name, _ in ebs.calls)
    ec2 = aws.client("ec2", REGION)
    assert (
        ec2.describe_snapshots(Filters=[{"Name": "tag:perf-ops", "Values": ["u"]}])["Snapshots"]
        == []
    )


def test_all_zero_image_sends_nothing(emulator: Emulator, tmp_path: Path) -> None:
    """An image with no data still yields a completed (empty) snapshot and sends no block."""
    image = sparse_image(tmp_path / "disk.raw", 3 * MIB, {MIB: bytes(MIB)})
    result = upload_snapshot(image, region=REGION, client_token="zero")
    assert (result.blocks_sent, result.bytes_sent) == (0, 0)
    assert (
        aws.client("ebs", REGION).list_snapshot_blocks(SnapshotId=result.snapshot_id)["Blocks"]
        == []
    )


def test_unreadable_image_is_one_line(emulator: Emulator, tmp_path: Path) -> None:
    """A missing disk image fails before any snapshot is started."""
    ec2 = aws.client("ec2", REGION)
    before = len(ec2.describe_snapshots()["Snapshots"])
    with pytest.raises(
        EffectError, match=r"disk.raw: cannot read disk image: No such file or directory$"
    ):
        upload_snapshot(tmp_path / "disk.raw", region=REGION, client_token="x")
    assert len(ec2.describe_snapshots()["Snapshots"]) == before


def test_same_token_for_a_completed_snapshot_uploads_nothing(tmp_path: Path) -> None:
    """When AWS answers a start with an already completed snapshot, no block is sent again."""
    image = sparse_image(tmp_path / "disk.raw", 2 * BLOCK_SIZE, {0: b"a"})

    class Finished:
        def __init__(self) -> None:
            self.puts = 0

        def start_snapshot(self, **kwargs: Any) -> dict[str, Any]:
            return {"SnapshotId": "snap-done", "Status": "completed"}

        def put_snapshot_block(self, **kwargs: Any) -> None:
            self.puts += 1

    ebs = Finished()
    result = upload_snapshot(image, region=REGION, client_token="again", ebs=ebs, ec2=object())
    assert (result.snapshot_id, result.blocks_sent, ebs.puts) == ("snap-done", 0, 0)
    assert os.path.exists(image)
