"""Throttling and 503s between boto3 and AWS: the pipeline retries through, duplicating nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from faultproxy import FaultProxy

from perfops_cdk.effects import aws
from perfops_cdk.effects import ec2_images as images
from perfops_cdk.effects.ebs_snapshot import BLOCK_SIZE, upload_snapshot
from perfops_cdk.effects.emulator import Emulator

HOME = "eu-west-1"
TARGETS = ["us-east-1", "ap-southeast-2", "sa-east-1"]
NAME = "faulty-image-0123456789abcdef"
TAGS = {"Name": NAME, "perf-ops": "uuid-faults"}


def test_upload_register_copy_complete_through_throttling_without_duplicates(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With a quarter of requests throttled or 503'd, one snapshot and one AMI per region result."""
    image = tmp_path / "disk.raw"
    with image.open("wb") as f:
        f.truncate(32 * BLOCK_SIZE)
        for index in range(0, 32, 3):
            f.seek(index * BLOCK_SIZE)
            f.write(f"block {index}".encode() * 100)

    with FaultProxy(emulator.url, share=0.25) as proxy:
        monkeypatch.setenv(aws.ENDPOINT_ENV, proxy.url)
        upload = upload_snapshot(image, region=HOME, client_token="faults", tags=TAGS, workers=4)
        home = aws.client("ec2", HOME)
        images.wait_snapshot_completed(home, upload.snapshot_id, budget_s=30, delay_s=0.1)
        source = images.register_image(
            home,
            name=NAME,
            snapshot_id=upload.snapshot_id,
            system="x86_64-linux",
            boot_mode="uefi",
            logical_bytes=32 * BLOCK_SIZE,
            tags=TAGS,
        )
        copies = images.copy_image_to_regions(
            HOME,
            source.image_id,
            name=NAME,
            regions=TARGETS,
            tags=TAGS,
            delay_s=0.1,
            wait_budget_s=30,
        )

    assert proxy.failed >= 5, "the proxy must actually have injected faults"
    assert proxy.forwarded > proxy.failed
    assert upload.blocks_sent == 11
    assert all(copy.ok for copy in copies.values()), copies

    # Checked straight against moto, past the proxy.
    direct = {
        region: aws.client("ec2", region, endpoint=emulator.url) for region in [HOME, *TARGETS]
    }
    snapshots = images.find_snapshots_by_tag(direct[HOME], "perf-ops", "uuid-faults")
    assert [s["SnapshotId"] for s in snapshots] == [upload.snapshot_id]
    ebs = aws.client("ebs", HOME, endpoint=emulator.url)
    assert len(ebs.list_snapshot_blocks(SnapshotId=upload.snapshot_id)["Blocks"]) == 11
    for region, client in direct.items():
        found = images.find_images_by_name(client, NAME)
        assert len(found) == 1, f"{region} has {len(found)} images named {NAME}"
        assert found[0].tags == TAGS
