"""The image sync against the moto server, with real nix-build of nix/test-image."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from rich.console import Console

from perfops_cdk.cli.images import run_sync
from perfops_cdk.effects import aws, state_file
from perfops_cdk.effects.ebs_snapshot import BLOCK_SIZE
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.errors import EffectError, PerfOpsError
from perfops_cdk.planners.ami_sync import Selection
from perfops_cdk.props.regions import DEFAULT_REGIONS
from perfops_cdk.publishing import sync as sync_module
from perfops_cdk.publishing.sync import SyncOptions, identify, sync_images

ROOT = Path(__file__).resolve().parent.parent
TEST_IMAGE = ROOT / "nix" / "test-image" / "default.nix"
HOME = "eu-west-1"
REGIONS = (HOME, "us-east-1", "ap-southeast-2")
FAST = SyncOptions(poll_s=0.1)
CHANGING_CALLS = ("StartSnapshot", "PutSnapshotBlock", "RegisterImage", "CopyImage", "CreateTags")

needs_nix = pytest.mark.skipif(shutil.which("nix-build") is None, reason="nix-build not installed")
pytestmark = [pytest.mark.nix, needs_nix]


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """Each test gets new EC2 clients (they are cached per region within a process)."""
    sync_module.forget_clients()
    yield
    sync_module.forget_clients()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts every AWS API call a client made by this test sends, by operation name."""
    counts: Counter[str] = Counter()
    real = aws.client

    def counting(service: str, region: str, **kwargs: Any) -> Any:
        client = real(service, region, **kwargs)
        client.meta.events.register("before-call", lambda model, **_: counts.update([model.name]))
        return client

    monkeypatch.setattr(aws, "client", counting)
    return counts


def selection(
    tmp_path: Path, seed: str, regions: tuple[str, ...] = REGIONS, **kwargs: Any
) -> Selection:
    """The test image (a fresh nix identity per seed) published to ``regions``."""
    base: dict[str, Any] = {
        "name": "testimg",
        "home_region": HOME,
        "regions": regions,
        "uuid": "uuidaaaaaa",
        "project_dir": str(tmp_path),
        "nix_file": str(TEST_IMAGE),
        "attr": "amazonImage",
        "args": {"seed": f"{seed}-{os.getpid()}-{time.time_ns()}"},
    }
    return Selection(**{**base, **kwargs})


def images_named(region: str, name: str) -> list[dict[str, Any]]:
    response = aws.client("ec2", region).describe_images(
        Owners=["self"], Filters=[{"Name": "name", "Values": [name]}]
    )
    images: list[dict[str, Any]] = response["Images"]
    return images


def uploads(region: str, ami_name: str) -> list[dict[str, Any]]:
    """Snapshots uploaded for ``ami_name``. moto backs each AMI with a snapshot of its own,
    which the sync tags too; on AWS the home AMI's snapshot is the upload itself."""
    response = aws.client("ec2", region).describe_snapshots(
        OwnerIds=["self"],
        Filters=[
            {"Name": "tag:perf-ops:ami-name", "Values": [ami_name]},
            {"Name": "description", "Values": [f"perfops image {ami_name}"]},
        ],
    )
    snapshots: list[dict[str, Any]] = response["Snapshots"]
    return snapshots


def perfops_snapshots(region: str) -> list[dict[str, Any]]:
    """Snapshots a sync made (moto also lists its own, untagged, for its stock AMIs)."""
    response = aws.client("ec2", region).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": ["perf-ops"]}]
    )
    snapshots: list[dict[str, Any]] = response["Snapshots"]
    return snapshots


def test_sync_gives_one_tagged_ami_per_region_and_records_them(
    emulator: Emulator, tmp_path: Path
) -> None:
    """nix-build, upload, register, copy: one AMI per region, named by store hash, tagged."""
    chosen = selection(tmp_path, "three")
    identity = identify(chosen)
    assert identity.out_path is not None and not identity.out_path.exists()
    [result] = sync_images([chosen], options=FAST)
    assert result.built and result.registered and not result.failed
    assert result.copied == ("ap-southeast-2", "us-east-1")
    # The test image's data sits in 8 blocks of 512 KiB; nothing else travels.
    assert result.bytes_uploaded == 8 * BLOCK_SIZE
    store_hash = identity.out_path.name.split("-")[0]
    ami_name = f"testimg-{store_hash}"
    assert result.plan.target.ami_name == ami_name
    [snapshot] = uploads(HOME, ami_name)
    recorded = state_file.load(tmp_path / "state.json")
    assert recorded.ami_ids("testimg") == result.ami_ids
    for region in REGIONS:
        [image] = images_named(region, ami_name)
        assert image["ImageId"] == result.ami_ids[region]
        tags = {t["Key"]: t["Value"] for t in image["Tags"]}
        assert tags == {
            "Name": ami_name,
            "perf-ops": "uuidaaaaaa",
            "perf-ops:image": "testimg",
            "perf-ops:ami-name": ami_name,
            "perf-ops:source-region": HOME,
            "perf-ops:source-snapshot": snapshot["SnapshotId"],
            "managed-by": "perfops_cdk",
        }


def test_second_sync_builds_uploads_registers_and_copies_nothing(
    emulator: Emulator, tmp_path: Path, calls: Counter[str]
) -> None:
    """An unchanged image costs one lookup per region: no build, upload, register or copy."""
    chosen = selection(tmp_path, "again")
    [first] = sync_images([chosen], options=FAST)
    assert calls["PutSnapshotBlock"] == 8 and calls["CopyImage"] == 2
    calls.clear()
    [second] = sync_images([chosen], options=FAST)
    assert second.plan.unchanged and not second.built and second.bytes_uploaded == 0
    assert second.ami_ids == first.ami_ids
    assert {op: calls[op] for op in CHANGING_CALLS} == dict.fromkeys(CHANGING_CALLS, 0)
    # One lookup by name per region, and nothing else.
    assert calls == Counter({"DescribeImages": len(REGIONS)})


def test_dry_run_prints_the_plan_and_writes_nothing(emulator: Emulator, tmp_path: Path) -> None:
    """--dry-run shows build, upload and copies, creating no snapshot, AMI or state file."""
    chosen = selection(tmp_path, "dry")
    out = io.StringIO()
    run_sync([_requirement(chosen)], dry_run=True, out=Console(file=out, width=200))
    text = out.getvalue()
    assert "build: nix-build" in text
    assert f"{HOME}: upload snapshot, register AMI" in text
    assert f"us-east-1: copy from {HOME}" in text
    assert not (tmp_path / "state.json").exists()
    assert not state_file.lock_path(tmp_path / "state.json").exists()
    assert perfops_snapshots(HOME) == []
    assert identify(chosen).out_path is not None
    assert not identify(chosen).built


def _requirement(chosen: Selection) -> Any:
    from perfops_cdk.app import ImageRequirement

    return ImageRequirement(
        stack="perf-ops",
        id="img",
        name=chosen.name,
        regions=chosen.regions,
        home_region=chosen.home_region,
        uuid=chosen.uuid,
        prebuilt=False,
        host_modules=(),
        container_modules=(),
        project_dir=chosen.project_dir,
        nix_file=chosen.nix_file,
        attr=chosen.attr,
        args=dict(chosen.args),
    )


def test_concurrent_sync_is_refused_with_one_line(emulator: Emulator, tmp_path: Path) -> None:
    """While one sync holds the state lock, another refuses at once and changes nothing."""
    path = tmp_path / "state.json"
    state_file.save(path, state_file.SyncState())
    before = path.read_text()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from perfops_cdk.effects import state_file\n"
            "with state_file.locked(Path(sys.argv[1])):\n"
            " print('locked', flush=True); time.sleep(30)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(state_file.SyncLocked) as caught:
            sync_images([selection(tmp_path, "locked")], options=FAST)
        assert f"(pid {holder.pid}) is running" in str(caught.value)
        assert "\n" not in str(caught.value)
    finally:
        holder.kill()
        holder.wait()
    assert path.read_text() == before
    assert perfops_snapshots(HOME) == []


def test_state_file_survives_a_crash_mid_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between writing the temp file and the rename leaves the old file whole."""
    path = tmp_path / "state.json"
    old = state_file.SyncState(
        images={"a": state_file.ImageRecord("a-1", HOME, {HOME: state_file.RegionImage("ami-1")})}
    )
    state_file.save(path, old)

    def crash(fd: int) -> None:
        raise KeyboardInterrupt  # as if the process were killed mid-write

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        state_file.save(path, state_file.SyncState())
    monkeypatch.undo()
    assert state_file.load(path) == old
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_failed_nix_build_is_one_line_and_leaves_state_unchanged(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A builder that fails stops the sync before anything is written or uploaded."""
    path = tmp_path / "state.json"
    state_file.save(path, state_file.SyncState())
    before = path.read_text()
    bad = selection(
        tmp_path, "bad", regions=(HOME,), args={"sizeMiB": "4", "seed": str(time.time_ns())}
    )
    with pytest.raises(EffectError) as caught:
        sync_images([bad], options=FAST)
    assert "sizeMiB must be at least 16" in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_text() == before
    assert perfops_snapshots(HOME) == []


def test_missing_nix_is_one_line(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without nix on PATH the sync says how to install it and writes nothing."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(EffectError, match=r"nix-instantiate: not found on PATH; install nix"):
        sync_images([selection(tmp_path, "nonix", regions=(HOME,))], options=FAST)
    assert not (tmp_path / "state.json").exists()


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (None, "image-info.json: missing"),
        ("{not json", "image-info.json: not valid JSON"),
        ('{"label": "x", "system": "x86_64-linux"}', "needs 'disks.root'"),
    ],
)
def test_missing_or_malformed_image_info_is_one_line(
    emulator: Emulator, tmp_path: Path, info: str | None, message: str
) -> None:
    """An image expression whose image-info.json is missing or malformed fails before upload."""
    expr = tmp_path / "broken.nix"
    write = ""
    if info is not None:
        (tmp_path / "info.json").write_text(info)
        write = "/bin/cp ${./info.json} $out/nix-support/image-info.json"
    expr.write_text(
        '{ seed }: derivation { name = "broken"; system = builtins.currentSystem;'
        ' builder = "/bin/sh"; inherit seed;'
        f' args = [ "-c" "/bin/mkdir -p $out/nix-support; {write}" ]; }}\n'
    )
    chosen = selection(tmp_path, "broken", (HOME,), nix_file=str(expr), attr=None)
    with pytest.raises(EffectError) as caught:
        sync_images([chosen], options=FAST)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "state.json").exists()


def test_unreadable_raw_disk_image_is_one_line(emulator: Emulator, tmp_path: Path) -> None:
    """upload-raw of a path that cannot be read fails before anything is written."""
    chosen = selection(tmp_path, "raw", nix_file=None, raw_path=str(tmp_path / "absent.raw"))
    with pytest.raises(PerfOpsError, match=r"absent.raw: cannot read disk image: No such file"):
        sync_images([chosen], options=FAST)
    assert not (tmp_path / "state.json").exists()


def test_sync_through_throttling_and_503s_completes_without_duplicates(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 15% of requests answered 503/RequestLimitExceeded, retries finish the job once."""
    with FaultProxy(emulator.url, share=0.15) as proxy:
        monkeypatch.setenv(aws.ENDPOINT_ENV, proxy.url)
        [result] = sync_images([selection(tmp_path, "faults")], options=FAST)
        assert proxy.failed > 0
    monkeypatch.setenv(aws.ENDPOINT_ENV, emulator.url)
    assert not result.failed
    for region in REGIONS:
        assert len(images_named(region, result.plan.target.ami_name)) == 1
    assert len(uploads(HOME, result.plan.target.ami_name)) == 1


# A sync in its own process, so that the test can kill it at a chosen moment.
_SYNC_SCRIPT = """
import json, sys
from perfops_cdk.planners.ami_sync import Selection
from perfops_cdk.props.regions import DEFAULT_REGIONS
from perfops_cdk.publishing.sync import SyncOptions, sync_images
spec = json.loads(sys.argv[1])
options = SyncOptions(poll_s=0.1, workers=spec.pop("workers"), copy_workers=1)
sync_images([Selection(**spec)], options=options)
"""


def _raw_image(path: Path, data_mib: int) -> Path:
    with path.open("wb") as f:
        f.truncate(128 * 1024 * 1024)
        f.write(os.urandom(data_mib * 1024 * 1024))
    return path


def _start_sync(chosen: Selection, workers: int) -> subprocess.Popen[bytes]:
    spec = {
        "name": chosen.name,
        "home_region": chosen.home_region,
        "regions": list(chosen.regions),
        "uuid": chosen.uuid,
        "project_dir": chosen.project_dir,
        "raw_path": chosen.raw_path,
        "workers": workers,
    }
    return subprocess.Popen([sys.executable, "-c", _SYNC_SCRIPT, json.dumps(spec)], cwd=ROOT)


def _kill_when(process: subprocess.Popen[bytes], ready: Any, budget_s: float = 60) -> None:
    deadline = time.monotonic() + budget_s
    while not ready():
        assert process.poll() is None, "the sync finished before it could be killed"
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _assert_converged(chosen: Selection, ami_name: str) -> None:
    [result] = sync_images([chosen], options=FAST)
    assert not result.failed
    for region in chosen.regions:
        [image] = images_named(region, ami_name)
        assert result.ami_ids[region] == image["ImageId"]
    [snapshot] = uploads(chosen.home_region, ami_name)
    assert snapshot["State"] == "completed"
    assert {"Key": "perf-ops:uploaded", "Value": "true"} in snapshot["Tags"]
    assert state_file.load(Path(chosen.project_dir) / "state.json").ami_ids(chosen.name) == (
        result.ami_ids
    )


def test_sync_killed_mid_upload_reruns_to_one_snapshot_and_one_ami_per_region(
    emulator: Emulator, tmp_path: Path
) -> None:
    """SIGKILL while blocks are uploading; the rerun deletes the torn snapshot and finishes."""
    raw = _raw_image(tmp_path / "disk.raw", 48)
    chosen = selection(tmp_path, "kill", nix_file=None, raw_path=str(raw))
    ami_name = identify(chosen).target.ami_name
    process = _start_sync(chosen, workers=1)
    # A started upload: the snapshot exists but is not yet tagged finished.
    _kill_when(process, lambda: bool(uploads(HOME, ami_name)))
    [torn] = uploads(HOME, ami_name)
    assert "perf-ops:uploaded" not in {t["Key"] for t in torn.get("Tags", [])}
    assert images_named(HOME, ami_name) == []
    assert state_file.load(tmp_path / "state.json").ami_ids("testimg") == {}
    _assert_converged(chosen, ami_name)


def test_sync_killed_mid_copy_reruns_without_duplicate_amis(
    emulator: Emulator, tmp_path: Path
) -> None:
    """SIGKILL after the first copy appears; the rerun copies only the missing regions."""
    raw = _raw_image(tmp_path / "disk.raw", 2)
    regions = tuple(DEFAULT_REGIONS[:10])
    chosen = selection(tmp_path, "killcopy", regions=regions, nix_file=None, raw_path=str(raw))
    ami_name = identify(chosen).target.ami_name
    others = sorted(r for r in regions if r != HOME)
    # One copy at a time, in region order: kill once the first region has its copy.
    first = aws.client("ec2", others[0])
    name_filter = [{"Name": "name", "Values": [ami_name]}]
    process = _start_sync(chosen, workers=4)
    _kill_when(
        process, lambda: bool(first.describe_images(Owners=["self"], Filters=name_filter)["Images"])
    )
    copied = [r for r in others if images_named(r, ami_name)]
    assert 1 <= len(copied) < len(others)
    _assert_converged(chosen, ami_name)


def test_import_method_uploads_to_s3_and_a_rerun_resumes_the_recorded_import_task(
    emulator: Emulator, tmp_path: Path
) -> None:
    """--method import: S3 upload, import task recorded at once; a rerun waits on that task."""
    from test_import_snapshot import FakeImporter

    from perfops_cdk.effects.import_snapshot import ImportStatus

    class Interrupted(FakeImporter):
        broken = True

        def status(self, task_id: str) -> ImportStatus:
            if self.broken:
                raise EffectError(f"import task {task_id} still active after 0 s")
            return super().status(task_id)

    importer = Interrupted(tmp_path, polls_before_done=1)
    options = SyncOptions(method="import", poll_s=0.05, importer_for=lambda _: importer)
    chosen = selection(tmp_path, "import", regions=(HOME, "us-east-1"))
    [first] = sync_images([chosen], options=options)
    assert set(first.failed) == {HOME, "us-east-1"}
    recorded = state_file.load(tmp_path / "state.json").images["testimg"].regions[HOME]
    assert recorded.import_task_id == "import-snap-00000000"
    s3 = aws.client("s3", HOME)
    keys = s3.list_objects_v2(Bucket="perfops-images-uuidaaaaaa")["Contents"]
    assert [k["Key"] for k in keys] == [f"{first.plan.target.ami_name}.raw"]
    tagging = s3.get_bucket_tagging(Bucket="perfops-images-uuidaaaaaa")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tagging} == {
        "perf-ops": "uuidaaaaaa",
        "perf-ops:images-bucket": "true",
        "managed-by": "perfops_cdk",
    }

    importer.broken = False
    [second] = sync_images([chosen], options=options)
    assert second.plan.home.action == "resume-import" and not second.failed
    assert importer.starts == 1
    assert set(second.ami_ids) == {HOME, "us-east-1"}
    final = state_file.load(tmp_path / "state.json").images["testimg"].regions[HOME]
    assert final.import_task_id is None and final.state == "available"
