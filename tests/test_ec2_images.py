"""AMI wrappers against the moto server: register, copy to regions, find, delete, re-run safely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perfops_cdk.effects import aws
from perfops_cdk.effects import ec2_images as images
from perfops_cdk.effects.ebs_snapshot import upload_snapshot
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.errors import EffectError

HOME = "eu-west-1"
TARGETS = ["us-east-1", "ap-southeast-2", "sa-east-1"]
NAME = "cardano-node-v1-0123456789abcdef0123456789abcdef"
TAGS = {"Name": NAME, "perf-ops": "uuid-1", "managed-by": "perfops_cdk"}


def _snapshot(tmp_path: Path) -> str:
    image = tmp_path / "disk.raw"
    with image.open("wb") as f:
        f.truncate(8 * 1024 * 1024)
        f.write(b"boot")
    return upload_snapshot(image, region=HOME, client_token="snap", tags=TAGS).snapshot_id


def _register(ec2: Any, snapshot_id: str) -> images.Image:
    return images.register_image(
        ec2,
        name=NAME,
        snapshot_id=snapshot_id,
        system="x86_64-linux",
        boot_mode="legacy-bios",
        logical_bytes=3 * 1024**3 + 1,
        description="test image",
        tags={**TAGS, "source-region": HOME, "snapshot": snapshot_id},
    )


def _copy(source: images.Image, regions: list[str], **kwargs: Any) -> dict[str, images.RegionCopy]:
    return images.copy_image_to_regions(
        HOME,
        source.image_id,
        name=NAME,
        regions=regions,
        tags=TAGS,
        delay_s=0.05,
        wait_budget_s=5,
        **kwargs,
    )


def test_register_sends_hvm_ena_imdsv2_gp3_root_and_tags_in_the_same_call(
    emulator: Emulator, tmp_path: Path
) -> None:
    """register_image asks for the full AMI shape and its tags at once; moto drops the tags,
    so the ones missing afterwards are added."""
    ec2 = aws.client("ec2", HOME)
    calls: list[tuple[str, dict[str, Any]]] = []
    ec2.meta.events.register(
        "provide-client-params.ec2.*",
        lambda params, model, **_: calls.append((model.name, dict(params))),
    )
    snapshot_id = _snapshot(tmp_path)
    image = _register(ec2, snapshot_id)

    [(_, register)] = [c for c in calls if c[0] == "RegisterImage"]
    assert register["Architecture"] == "x86_64"
    assert (
        register["VirtualizationType"],
        register["EnaSupport"],
        register["SriovNetSupport"],
    ) == (
        "hvm",
        True,
        "simple",
    )
    assert (register["BootMode"], register["ImdsSupport"], register["RootDeviceName"]) == (
        "legacy-bios",
        "v2.0",
        "/dev/xvda",
    )
    assert register["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {
                "SnapshotId": snapshot_id,
                "VolumeSize": 4,
                "VolumeType": "gp3",
                "DeleteOnTermination": True,
            },
        }
    ]
    [spec] = register["TagSpecifications"]
    assert spec["ResourceType"] == "image"
    assert {t["Key"]: t["Value"] for t in spec["Tags"]} == image.tags
    [found] = images.find_images_by_name(ec2, NAME)
    assert found.image_id == image.image_id
    assert found.tags == {**TAGS, "source-region": HOME, "snapshot": snapshot_id}


def test_register_is_a_lookup_the_second_time(emulator: Emulator, tmp_path: Path) -> None:
    """Registering the same name again returns the existing AMI instead of a duplicate."""
    ec2 = aws.client("ec2", HOME)
    snapshot_id = _snapshot(tmp_path)
    first = _register(ec2, snapshot_id)
    second = _register(ec2, snapshot_id)
    assert first.image_id == second.image_id
    assert len(images.find_images_by_name(ec2, NAME)) == 1


def test_arm_system_maps_to_arm64_and_unknown_system_is_refused(emulator: Emulator) -> None:
    """aarch64-linux registers as arm64; a system EC2 cannot run is one clear line."""
    ec2 = aws.client("ec2", HOME)
    assert images.ARCHITECTURES["aarch64-linux"] == "arm64"
    with pytest.raises(EffectError, match=r"image system 'riscv64-linux' has no EC2 architecture"):
        images.register_image(
            ec2,
            name=NAME,
            snapshot_id="snap-1",
            system="riscv64-linux",
            boot_mode="uefi",
            logical_bytes=1,
        )
    assert images.find_images_by_name(ec2, NAME) == []


def test_copies_to_three_regions_with_tags_then_second_copy_is_a_no_op(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Copies land in all three regions, tagged with their snapshots; a rerun copies nothing."""
    source = _register(aws.client("ec2", HOME), _snapshot(tmp_path))
    results = _copy(source, [HOME, *TARGETS])
    assert sorted(results) == sorted(TARGETS)
    for region, result in results.items():
        assert result.ok and result.copied, result
        assert result.image is not None
        [found] = images.find_images_by_tag(aws.client("ec2", region), "perf-ops", "uuid-1")
        assert (found.image_id, found.name, found.state) == (
            result.image.image_id,
            NAME,
            "available",
        )
        assert found.tags == TAGS
        for snapshot_id in found.snapshot_ids:
            assert (
                images.find_snapshots_by_tag(aws.client("ec2", region), "perf-ops", "uuid-1")[0][
                    "SnapshotId"
                ]
                == snapshot_id
            )

    again = _copy(source, TARGETS)
    for region in TARGETS:
        assert again[region].ok and not again[region].copied
        assert again[region].image == results[region].image
        assert len(images.find_images_by_name(aws.client("ec2", region), NAME)) == 1


def test_copy_tags_image_and_snapshots_in_the_copy_call(emulator: Emulator, tmp_path: Path) -> None:
    """CopyImage carries the tags for the AMI and its snapshots; what moto drops is added."""
    source = _register(aws.client("ec2", HOME), _snapshot(tmp_path))
    ec2 = aws.client("ec2", "us-east-1")
    calls: list[dict[str, Any]] = []
    ec2.meta.events.register(
        "provide-client-params.ec2.CopyImage", lambda params, **_: calls.append(dict(params))
    )
    copy = _copy(source, ["us-east-1"], client_for=lambda _: ec2)["us-east-1"]
    [sent] = calls
    assert [s["ResourceType"] for s in sent["TagSpecifications"]] == ["image", "snapshot"]
    for spec in sent["TagSpecifications"]:
        assert {t["Key"]: t["Value"] for t in spec["Tags"]} == TAGS
    assert copy.image is not None
    [found] = images.find_images_by_name(ec2, NAME)
    assert found.tags == TAGS
    for snapshot in ec2.describe_snapshots(SnapshotIds=list(found.snapshot_ids))["Snapshots"]:
        assert {t["Key"]: t["Value"] for t in snapshot["Tags"]} == TAGS


def test_image_found_by_name_gets_only_the_tags_it_lacks(
    emulator: Emulator, tmp_path: Path
) -> None:
    """An AMI another deployer published under the same name keeps its uuid; gaps are filled."""
    ec2 = aws.client("ec2", HOME)
    theirs = ec2.register_image(Name=NAME, RootDeviceName="/dev/xvda")["ImageId"]
    ec2.create_tags(Resources=[theirs], Tags=[{"Key": "perf-ops", "Value": "uuid-2"}])
    image = _register(ec2, "snap-0123456789abcdef0")
    assert image.image_id == theirs
    [found] = images.find_images_by_name(ec2, NAME)
    assert found.tags == {
        **TAGS,
        "perf-ops": "uuid-2",
        "source-region": HOME,
        "snapshot": "snap-0123456789abcdef0",
    }


def test_one_failing_region_does_not_cancel_the_others(emulator: Emulator, tmp_path: Path) -> None:
    """A region whose endpoint is unreachable reports its error; the other regions still copy."""
    source = _register(aws.client("ec2", HOME), _snapshot(tmp_path))

    def client_for(region: str) -> Any:
        if region == "ap-southeast-2":
            return aws.client("ec2", region, endpoint="http://127.0.0.1:9", max_attempts=1)
        return aws.client("ec2", region)

    results = _copy(source, TARGETS, client_for=client_for)
    failed = results["ap-southeast-2"]
    assert not failed.ok and failed.image is None
    assert failed.error is not None
    assert failed.error.startswith("ap-southeast-2: describe_images failed:")
    assert "\n" not in failed.error
    for region in ("us-east-1", "sa-east-1"):
        assert results[region].ok and results[region].copied
        assert len(images.find_images_by_name(aws.client("ec2", region), NAME)) == 1


def test_delete_removes_ami_and_snapshots_and_already_gone_is_success(
    emulator: Emulator, tmp_path: Path
) -> None:
    """delete_image deregisters and deletes backing snapshots; a second delete is a quiet no-op."""
    ec2 = aws.client("ec2", HOME)
    image = _register(ec2, _snapshot(tmp_path))
    deleted = images.delete_image(ec2, image.image_id)
    assert deleted.deregistered and deleted.snapshots_deleted == image.snapshot_ids
    assert images.find_images_by_name(ec2, NAME) == []
    remaining = {s["SnapshotId"] for s in ec2.describe_snapshots()["Snapshots"]}
    assert not remaining & set(image.snapshot_ids)

    again = images.delete_image(ec2, image.image_id)
    assert (again.deregistered, again.snapshots_deleted) == (False, ())
    assert images.delete_snapshot(ec2, "snap-0123456789abcdef0") is False


def test_wait_for_snapshot_completed_and_budget_exhaustion(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A completed snapshot passes the waiter; an unknown image exhausts its budget, one line."""
    ec2 = aws.client("ec2", HOME)
    images.wait_snapshot_completed(ec2, _snapshot(tmp_path), budget_s=1, delay_s=0.05)
    with pytest.raises(
        EffectError, match=r"^eu-west-1: image_available not reached within 0 s"
    ) as caught:
        images.wait_image_available(ec2, "ami-12345678", budget_s=0.1, delay_s=0.05)
    assert "\n" not in str(caught.value)


def test_client_tokens_are_deterministic_and_fit_aws_limit() -> None:
    """The same inputs give the same 64-character token; different inputs differ."""
    token = images.client_token("copy_image", HOME, "ami-1", "us-east-1")
    assert token == images.client_token("copy_image", HOME, "ami-1", "us-east-1")
    assert len(token) == 64
    assert token != images.client_token("copy_image", HOME, "ami-1", "us-east-2")
