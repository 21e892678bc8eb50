"""``perfops images ...`` and ``deployments.py --sync-amis`` on a small project, against moto."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from perfops_cdk.cli.main import app
from perfops_cdk.effects import aws, state_file
from perfops_cdk.effects.aws import endpoint_url
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.effects.import_snapshot import ensure_bucket
from perfops_cdk.effects.ledger import state_dir_for
from perfops_cdk.planners.ami_sync import Selection, images_bucket_tags
from perfops_cdk.publishing import sync as sync_module
from perfops_cdk.publishing.sync import SyncOptions, sync_images

ROOT = Path(__file__).resolve().parent.parent
TEST_IMAGE = ROOT / "nix" / "test-image" / "default.nix"
HOME = "eu-west-1"
USED = "eu-west-1,us-east-1"
UUID = "cliuuid001"

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(shutil.which("nix-build") is None, reason="nix-build not installed"),
]

DEPLOYMENTS = """
from perfops_cdk import Deployment, ImageAsset, PerfOpsStack
from perfops_cdk.app import main


def define(app):
    stack = PerfOpsStack(app, "perf-ops", home_region="eu-west-1")
    image = ImageAsset(stack, "img", name="cliimg", nix_file={nix!r}, attr="amazonImage",
                       args={{"seed": {seed!r}}})
    ImageAsset(stack, "spare", name="spareimg", nix_file={nix!r}, attr="amazonImage",
               args={{"seed": "spare"}})
    Deployment(stack, "fleet", image=image, instance_type="t3.micro",
               regions={{"eu-west-1": 1, "us-east-1": 2}})


if __name__ == "__main__":
    main(define)
"""


def state_path(project: Path) -> Path:
    """Where the image state of ``project`` lives for the emulator the test runs."""
    folder = state_dir_for(project, endpoint_url())
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "state.json"


@pytest.fixture
def project(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project whose one deployment uses a fresh test image in two regions."""
    seed = f"cli-{os.getpid()}-{time.time_ns()}"
    (tmp_path / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
    (tmp_path / "deployments.py").write_text(DEPLOYMENTS.format(nix=str(TEST_IMAGE), seed=seed))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PERF_UUID", UUID)
    monkeypatch.delenv("PERFOPS_PROJECT_DIR", raising=False)
    sync_module.forget_clients()
    yield tmp_path
    sync_module.forget_clients()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["images", *args])


def amis(region: str, tag: str = "perf-ops") -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = aws.client("ec2", region).describe_images(
        Owners=["self"], Filters=[{"Name": "tag-key", "Values": [tag]}]
    )["Images"]
    return images


def uuids(region: str) -> set[str]:
    return {t["Value"] for i in amis(region) for t in i["Tags"] if t["Key"] == "perf-ops"}


def test_images_sync_publishes_used_images_and_list_shows_them(project: Path) -> None:
    """Default selection: the used image in its deployment's regions; the spare one is skipped."""
    result = invoke("sync")
    assert result.exit_code == 0, result.output
    assert "cliimg: cliimg-" in result.output and "available in 2 region(s)" in result.output
    recorded = state_file.load(state_path(project))
    assert set(recorded.images) == {"cliimg"}
    assert set(recorded.ami_ids("cliimg")) == {"eu-west-1", "us-east-1"}
    listing = invoke("list", "--regions", USED)
    assert listing.exit_code == 0, listing.output
    for ami in recorded.ami_ids("cliimg").values():
        assert ami in listing.output


def test_deployments_sync_amis_dry_run_then_sync_and_synth(project: Path) -> None:
    """`deployments.py --sync-amis --dry-run` changes nothing; without it, synth uses the AMIs."""
    run = [sys.executable, "deployments.py", "--sync-amis", "--names", "cliimg"]
    dry = subprocess.run([*run, "--dry-run"], capture_output=True, text=True, check=False)
    assert dry.returncode == 0, dry.stderr
    assert "eu-west-1: upload snapshot, register AMI" in dry.stdout
    assert "us-east-1: copy from eu-west-1" in dry.stdout
    assert not state_path(project).exists() and not (project / "cdktf.out").exists()
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    stacks = project / "cdktf.out" / "stacks"
    synthesized = "".join(p.read_text() for p in stacks.glob("perf-ops-*/cdk.tf.json"))
    for ami in state_file.load(state_path(project)).ami_ids("cliimg").values():
        assert ami in synthesized


OPTIONS = ("--home", "us-east-1", "--method", "import", "--force", "--dry-run")


def test_deployments_sync_amis_passes_its_options_to_the_sync(project: Path) -> None:
    """--regions and --home reach the sync: the dry run plans exactly those regions."""
    dry = subprocess.run(
        [sys.executable, "deployments.py", "--sync-amis", "--regions", "sa-east-1", *OPTIONS],
        capture_output=True,
        text=True,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr
    planned = [line.split(":")[0].strip() for line in dry.stdout.splitlines()[1:]]
    assert planned[-2:] == ["sa-east-1", "us-east-1"], dry.stdout
    assert "(home us-east-1)" in dry.stdout


def test_deployments_sync_amis_failure_is_one_line_and_nothing_is_synthesized(
    project: Path,
) -> None:
    """A sync that fails (an unknown image name) exits 2 with one line; no synth follows."""
    done = subprocess.run(
        [sys.executable, "deployments.py", "--sync-amis", "--names", "clilmg"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --names: no nix-built image 'clilmg'; did you mean 'cliimg'?"
    )
    assert not (project / "cdktf.out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--names", "clilmg"], "no nix-built image 'clilmg'; did you mean 'cliimg'?"),
        (["--regions", "eu-wset-1"], "did you mean 'eu-west-1'?"),
        (["--home", "mars-1"], "'mars-1' is not allowed"),
        (["--method", "ftp"], "--method: 'ftp' is not allowed"),
    ],
)
def test_bad_sync_input_exits_2_with_one_line(project: Path, args: list[str], message: str) -> None:
    """Unknown image names and region typos: one line on stderr, exit 2, no state written."""
    result = invoke("sync", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not state_path(project).exists()


def _other_uuids_image(project: Path) -> None:
    sync_images(
        [
            Selection(
                name="otherimg",
                home_region=HOME,
                regions=(HOME, "us-east-1"),
                uuid="otheruuid1",
                project_dir=str(project / "other"),
                nix_file=str(TEST_IMAGE),
                attr="amazonImage",
                args={"seed": f"other-{time.time_ns()}"},
            )
        ],
        options=SyncOptions(poll_s=0.1),
    )


def test_delete_removes_only_this_uuids_images_and_purge_removes_all(project: Path) -> None:
    """delete needs --yes, spares another uuid's AMIs, and is a success when all is gone."""
    assert invoke("sync").exit_code == 0
    _other_uuids_image(project)
    assert uuids(HOME) == uuids("us-east-1") == {UUID, "otheruuid1"}

    asked = invoke("delete", "--regions", USED)
    assert asked.exit_code == 2 and "add --yes" in asked.output
    assert uuids(HOME) == {UUID, "otheruuid1"}

    done = invoke("delete", "--regions", USED, "--yes")
    assert done.exit_code == 0, done.output
    assert uuids(HOME) == uuids("us-east-1") == {"otheruuid1"}
    assert state_file.load(state_path(project)).images == {}
    snapshots = aws.client("ec2", HOME).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:perf-ops", "Values": [UUID]}]
    )["Snapshots"]
    assert snapshots == []

    again = invoke("delete", "--regions", USED, "--yes")
    assert again.exit_code == 0 and "nothing to remove" in again.output

    purged = invoke("purge", "--regions", USED, "--yes")
    assert purged.exit_code == 0, purged.output
    assert uuids(HOME) == uuids("us-east-1") == set()


def test_delete_refuses_while_a_sync_holds_the_state_lock(project: Path) -> None:
    """A destructive command during a sync refuses with one line and removes nothing."""
    assert invoke("sync").exit_code == 0
    with state_file.locked(state_path(project)):
        result = invoke("delete", "--regions", USED, "--yes")
    assert result.exit_code == 2 and "an image sync is running" in result.output
    assert uuids(HOME) == {UUID}


def test_upload_raw_publishes_a_raw_image_and_reruns_do_nothing(project: Path) -> None:
    """A raw disk nix did not build becomes AMIs named by its content; a rerun is a no-op."""
    disk = project / "disk.raw"
    with disk.open("wb") as f:
        f.truncate(32 * 1024 * 1024)
        f.write(os.urandom(1024 * 1024))
    first = invoke("upload-raw", str(disk), "--name", "rawimg", "--regions", "us-east-1")
    assert first.exit_code == 0, first.output
    assert "uploaded 1.0 MiB" in first.output
    names = {i["Name"] for i in amis("us-east-1")}
    assert len(names) == 1 and names.pop().startswith("rawimg-")
    second = invoke("upload-raw", str(disk), "--name", "rawimg", "--regions", "us-east-1")
    assert second.exit_code == 0 and "up to date in 2 region(s)" in second.output
    missing = invoke("upload-raw", str(project / "nope.raw"), "--name", "rawimg")
    assert missing.exit_code == 2 and "nope.raw: no such disk image file" in missing.output


def test_purge_s3_shows_objects_needs_yes_and_treats_absent_bucket_as_done(
    project: Path,
) -> None:
    """purge-s3 lists what it removes, removes it with --yes, and succeeds when nothing is left."""
    s3 = aws.client("s3", HOME)
    bucket = f"perfops-images-{UUID}"
    assert ensure_bucket(s3, bucket, HOME, tags=images_bucket_tags(UUID))
    s3.put_object(Bucket=bucket, Key="cliimg-abc.vhd", Body=b"vhd")
    asked = invoke("purge-s3")
    assert asked.exit_code == 2 and "cliimg-abc.vhd" in asked.output
    done = invoke("purge-s3", "--yes")
    assert done.exit_code == 0, done.output
    assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert invoke("purge-s3", "--yes").exit_code == 0


@pytest.mark.parametrize(
    "tags",
    [{}, {"perf-ops": "otheruuid1", "perf-ops:images-bucket": "true", "managed-by": "perfops_cdk"}],
    ids=["untagged", "another-uuids"],
)
def test_purge_s3_refuses_a_bucket_this_sync_did_not_create_unless_forced(
    project: Path, tags: dict[str, str]
) -> None:
    """A bucket not tagged as this uuid's images bucket: one line, exit 2, nothing removed;
    --force removes it."""
    s3 = aws.client("s3", HOME)
    s3.create_bucket(Bucket="team-data", CreateBucketConfiguration={"LocationConstraint": HOME})
    if tags:
        s3.put_bucket_tagging(Bucket="team-data", Tagging={"TagSet": _tag_list(tags)})
    s3.put_object(Bucket="team-data", Key="results.csv", Body=b"keep me")

    refused = invoke("purge-s3", "--bucket", "team-data", "--yes")
    assert refused.exit_code == 2
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("error: s3://team-data: not the images bucket of cliuuid001")
    assert line.endswith("add --force to empty and remove it anyway")
    assert s3.get_object(Bucket="team-data", Key="results.csv")["Body"].read() == b"keep me"

    forced = invoke("purge-s3", "--bucket", "team-data", "--yes", "--force")
    assert forced.exit_code == 0, forced.output
    assert "team-data" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_lost_state_file_is_rebuilt_from_ami_tags(project: Path) -> None:
    """`images list --rebuild-state` writes back the AMIs a lost state.json recorded."""
    assert invoke("sync").exit_code == 0
    before = state_file.load(state_path(project)).ami_ids("cliimg")
    state_path(project).unlink()
    result = invoke("list", "--regions", USED, "--rebuild-state")
    assert result.exit_code == 0, result.output
    assert state_file.load(state_path(project)).ami_ids("cliimg") == before


SYNC_TAGS = {
    "Name": "cliimg-0123",
    "perf-ops": UUID,
    "perf-ops:image": "cliimg",
    "perf-ops:ami-name": "cliimg-0123",
    "perf-ops:source-region": HOME,
    "managed-by": "perfops_cdk",
}
# What a host's volume carries (see Deployment): the uuid, never the sync's own tags.
HOST_TAGS = {
    "Name": "perf-ops-fleet",
    "perf-ops": UUID,
    "deployment": "fleet",
    "image": "cliimg",
    "managed-by": "perfops_cdk",
}


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _published_by_a_sync(regions: tuple[str, ...] = (HOME, "us-east-1")) -> dict[str, str]:
    """AMIs as a finished sync leaves them (registered straight away: no build needed)."""
    amis: dict[str, str] = {}
    for region in regions:
        ec2 = aws.client("ec2", region)
        ami = ec2.register_image(Name="cliimg-0123", RootDeviceName="/dev/xvda")["ImageId"]
        ec2.create_tags(Resources=[ami], Tags=_tag_list(SYNC_TAGS))
        amis[region] = ami
    return amis


def _snapshot(region: str, tags: dict[str, str]) -> str:
    ec2 = aws.client("ec2", region)
    volume = ec2.create_volume(Size=1, AvailabilityZone=f"{region}a")["VolumeId"]
    snapshot: str = ec2.create_snapshot(
        VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tag_list(tags)}]
    )["SnapshotId"]
    return snapshot


def _snapshot_exists(region: str, snapshot_id: str) -> bool:
    snapshots = aws.client("ec2", region).describe_snapshots(OwnerIds=["self"])["Snapshots"]
    return snapshot_id in {s["SnapshotId"] for s in snapshots}


def test_delete_and_purge_spare_resources_that_only_carry_the_uuid(project: Path) -> None:
    """A host volume's snapshot (and an AMI) tagged perf-ops=<uuid> survive; the sync's go."""
    synced = _published_by_a_sync()
    stray = _snapshot(HOME, SYNC_TAGS)  # an upload whose AMI was never registered
    host_snapshot = _snapshot(HOME, HOST_TAGS)
    ec2 = aws.client("ec2", HOME)
    host_ami = ec2.register_image(Name="made-from-a-host", RootDeviceName="/dev/xvda")["ImageId"]
    ec2.create_tags(Resources=[host_ami], Tags=_tag_list(HOST_TAGS))

    done = invoke("delete", "--regions", USED, "--yes")
    assert done.exit_code == 0, done.output
    for region in synced:
        assert amis_named(region, "cliimg-0123") == []
    assert not _snapshot_exists(HOME, stray)
    assert _snapshot_exists(HOME, host_snapshot)
    assert [i["ImageId"] for i in amis_named(HOME, "made-from-a-host")] == [host_ami]

    purged = invoke("purge", "--regions", USED, "--yes")
    assert purged.exit_code == 0, purged.output
    assert _snapshot_exists(HOME, host_snapshot)
    assert [i["ImageId"] for i in amis_named(HOME, "made-from-a-host")] == [host_ami]


UNREADABLE_STATE = {
    "invalid JSON": "{not json",
    "images as a list": '{"version": 1, "images": []}',
    "wrong version": '{"version": 7, "images": {}}',
}


@pytest.mark.parametrize("text", UNREADABLE_STATE.values(), ids=UNREADABLE_STATE.keys())
def test_rebuild_state_rewrites_an_unreadable_state_file_and_keeps_a_copy(
    project: Path, text: str
) -> None:
    """`list --rebuild-state` works from a corrupt state.json and keeps its bytes beside it."""
    amis = _published_by_a_sync()
    state_path(project).write_text(text)
    result = invoke("list", "--regions", USED, "--rebuild-state")
    assert result.exit_code == 0, result.output
    assert state_file.load(state_path(project)).ami_ids("cliimg") == amis
    [kept] = state_path(project).parent.glob("state.json.corrupt-*")
    assert kept.read_text() == text
    assert f"kept the unreadable state as {kept}\n" in result.output


def _deployments_py() -> Any:
    return subprocess.run(
        [sys.executable, "deployments.py"], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("text", UNREADABLE_STATE.values(), ids=UNREADABLE_STATE.keys())
@pytest.mark.parametrize("command", ["images sync", "images delete --yes", "deployments.py"])
def test_commands_reading_an_unreadable_state_say_one_line_and_exit_2(
    project: Path, text: str, command: str
) -> None:
    """sync, delete and synth name the file and the way out in one line; nothing changes."""
    amis = _published_by_a_sync()
    path = state_path(project)
    path.write_text(text)
    if command == "deployments.py":
        done = _deployments_py()
        code, errors = done.returncode, done.stderr
    else:
        result = invoke(*command.split()[1:], "--regions", USED)
        code, errors = result.exit_code, result.stderr
    assert code == 2
    assert "Traceback" not in errors
    [line] = errors.strip().splitlines()
    assert line.startswith(f"error: {path}: ")
    assert line.endswith("run: perfops images list --rebuild-state")
    assert path.read_text() == text
    for region, ami in amis.items():
        assert [i["ImageId"] for i in amis_named(region, "cliimg-0123")] == [ami]


def amis_named(region: str, name: str) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = aws.client("ec2", region).describe_images(
        Owners=["self"], Filters=[{"Name": "name", "Values": [name]}]
    )["Images"]
    return images


class _Killed(BaseException):
    """The sync process dying at a chosen call (not an Exception: nothing may catch it)."""


def _die_before_tagging_an_ami(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    """The first CreateTags on an AMI in ``region`` kills the sync before it is sent; later
    ones pass, as they would in the next process."""
    real = aws.client
    armed = [True]

    def die(params: dict[str, Any], **_: Any) -> None:
        if armed[0] and any(r.startswith("ami-") for r in params.get("Resources", [])):
            armed[0] = False
            raise _Killed

    def client(service: str, where: str, **kwargs: Any) -> Any:
        made = real(service, where, **kwargs)
        if service == "ec2" and where == region:
            made.meta.events.register("provide-client-params.ec2.CreateTags", die)
        return made

    monkeypatch.setattr(aws, "client", client)


def _cliimg_amis(region: str) -> list[dict[str, Any]]:
    return [i for i in amis_named(region, "cliimg-*") if i["Name"] != "cliimg-0123"]


@pytest.mark.parametrize("region", [HOME, "us-east-1"], ids=["register", "copy"])
def test_sync_killed_before_tagging_an_ami_reruns_to_a_tagged_ami_delete_finds(
    project: Path, monkeypatch: pytest.MonkeyPatch, region: str
) -> None:
    """An AMI left untagged by a kill gets every sync tag (and its snapshots) on the rerun."""
    _die_before_tagging_an_ami(monkeypatch, region)
    with pytest.raises(_Killed):
        invoke("sync")
    [untagged] = _cliimg_amis(region)
    assert "perf-ops" not in {t["Key"] for t in untagged.get("Tags", [])}

    again = invoke("sync")
    assert again.exit_code == 0, again.output
    ami_name = untagged["Name"]
    ec2 = aws.client("ec2", HOME)
    [uploaded] = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:perf-ops:uploaded", "Values": ["true"]}]
    )["Snapshots"]
    wanted = {
        "Name": ami_name,
        "perf-ops": UUID,
        "perf-ops:image": "cliimg",
        "perf-ops:ami-name": ami_name,
        "perf-ops:source-region": HOME,
        "perf-ops:source-snapshot": uploaded["SnapshotId"],
        "managed-by": "perfops_cdk",
    }
    found = {}
    for where in (HOME, "us-east-1"):
        [image] = _cliimg_amis(where)
        assert {t["Key"]: t["Value"] for t in image["Tags"]} == wanted
        backing = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"]]
        for snapshot in aws.client("ec2", where).describe_snapshots(SnapshotIds=backing)[
            "Snapshots"
        ]:
            tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
            assert (tags["perf-ops"], tags["perf-ops:ami-name"]) == (UUID, ami_name)
        found[where] = image["ImageId"]
    assert found[region] == untagged["ImageId"]

    listing = invoke("list", "--regions", USED)
    assert all(ami in listing.output for ami in found.values()), listing.output
    deleted = invoke("delete", "--regions", USED, "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert _cliimg_amis(HOME) == _cliimg_amis("us-east-1") == []
    assert not _snapshot_exists(HOME, uploaded["SnapshotId"])
