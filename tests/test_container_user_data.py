"""HostContainers' rendered user data against the real host side: the spawner, plan.nix,
shellcheck."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from perfops_cdk import App, ContainerService, Deployment, HostContainers, ImageAsset, PerfOpsStack
from perfops_cdk.planners import containers as plan

REPO = Path(__file__).resolve().parent.parent
SPAWNER = REPO / "nix" / "spawner" / "perfops-spawn-containers.sh"
FAKEBIN = REPO / "tests" / "data" / "spawner" / "fakebin"
NIX_LIB = REPO / "nix" / "lib"
NIX_INSTANTIATE = shutil.which("nix-instantiate")
SHELLCHECK = shutil.which("shellcheck")
AMI = "ami-0123456789abcdef0"

SERVICES = [
    ContainerService(
        name="cardano-node-set-1",
        entry_folder="k6",
        container_name_prefix="a",
        host_address="10.254.0.1",
        network="10.254.1",
        container_count=125,
        use_recent_state=True,
    ),
    ContainerService(
        name="cardano-node-set-2",
        entry_folder="k6",
        container_name_prefix="a",
        host_address="10.254.0.1",
        network="10.254.1",
        container_count=121,
        container_name_start_num=126,
        ip_start_addr=126,
    ),
    ContainerService(
        name="k6.edge_case",
        entry_folder="template",
        container_name_prefix="z-9",
        host_address="10.254.0.1",
        network="10.254.2",
        container_count=4,
        container_name_start_num=998,
        ip_start_addr=251,
        auto_start=False,
        environment={"PERFOPS_K6_TARGET": "http://10.0.0.5:8080/?a=1&b='2'"},
        memory_per_client_mib=64,
    ),
]


def user_data(tmp_path: Path, *, nvme_raid0: bool = False) -> str:
    """What the declared deployment's hosts receive as user data."""
    app = App(outdir=str(tmp_path / "out"))
    stack = PerfOpsStack(app, "perf-ops", uuid="abcd1234", project_dir=tmp_path)
    image = ImageAsset.from_ami_ids(
        stack,
        "image",
        name="load-v1",
        ami_ids={"eu-west-1": AMI},
        container_modules=["k6", "template"],
    )
    deployment = Deployment(
        stack, "load", image=image, instance_type="r5d.2xlarge", regions={"eu-west-1": 3}
    )
    HostContainers(deployment, "clients", services=SERVICES, nvme_raid0=nvme_raid0)
    assert deployment.user_data is not None
    return deployment.user_data


class FakeHost:
    """A host's /etc/perfops and spawner state under a temporary directory, with the
    spawner tests' recording extra-container, systemctl and systemd-run on PATH."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.etc = root / "etc" / "perfops"
        self.state = root / "state"
        self.modules = root / "container-modules"
        self.calls = root / "calls.log"
        self.bin = root / "bin"
        shutil.copytree(FAKEBIN, self.bin)
        for fake in self.bin.iterdir():
            fake.chmod(0o755)
        # The real spawner, installed under the name the image gives it.
        self.spawner = self.bin / "perfops-spawn-containers"
        self.spawner.symlink_to(SPAWNER)
        for folder in ("k6", "template"):
            entry = self.modules / folder / "modules" / "container-wrapper.nix"
            entry.parent.mkdir(parents=True)
            entry.write_text("{ ... }: { }\n")
        self.calls.touch()

    def localize(self, script: str) -> str:
        """The same script with the image's absolute paths moved under this host's root."""
        assert script.count(plan.SPAWNER) == 1
        spec_dir = plan.SPEC_PATH.rsplit("/", 1)[0]
        return script.replace(plan.SPAWNER, str(self.spawner)).replace(spec_dir, str(self.etc))

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        path = self.root / "user-data"
        path.write_text(self.localize(script))
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "PERFOPS_STATE_DIR": str(self.state),
            "PERFOPS_MODULES_DIR": str(self.modules),
            "PERFOPS_NIX_LIB": str(NIX_LIB / "containers.nix"),
            "PERFOPS_NIXPKGS": "/etc/perfops/nixpkgs",
            "FAKE_CALLS": str(self.calls),
        }
        return subprocess.run(
            ["sh", str(path)], env=env, capture_output=True, text=True, check=False, timeout=60
        )

    def creates(self) -> list[list[str]]:
        lines = [line.split() for line in self.calls.read_text().splitlines()]
        return [line[1:] for line in lines if line[0] == "extra-container"]


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path / "host")


def test_user_data_makes_one_create_call_per_service(host: FakeHost, tmp_path: Path) -> None:
    """Three services of 125, 121 and 4 containers: three extra-container create calls."""
    result = host.run(user_data(tmp_path))
    assert result.returncode == 0, result.stderr
    creates = host.creates()
    assert sorted(Path(call[1]).stem for call in creates) == sorted(s.name for s in SERVICES)
    assert all(call[0] == "create" for call in creates)
    written = json.loads((host.etc / "containers.json").read_text())
    assert written == plan.spec("load", SERVICES)
    assert not (host.etc / "containers.json.new").exists()


def test_user_data_run_twice_changes_nothing(host: FakeHost, tmp_path: Path) -> None:
    """A second boot running the same user data makes no new call."""
    script = user_data(tmp_path)
    assert host.run(script).returncode == 0
    calls = host.calls.read_text()
    second = host.run(script)
    assert second.returncode == 0, second.stderr
    assert host.calls.read_text() == calls


@pytest.mark.skipif(NIX_INSTANTIATE is None, reason="nix-instantiate not installed (nix-bin)")
def test_user_data_creates_exactly_the_declared_containers(host: FakeHost, tmp_path: Path) -> None:
    """Evaluating the files the spawner created gives Python's names and addresses."""
    assert host.run(user_data(tmp_path)).returncode == 0
    assert NIX_INSTANTIATE is not None
    created: dict[str, Any] = {}
    for applied in sorted((host.state / "applied").glob("*.nix")):
        expr = (
            "builtins.mapAttrs (name: c: { inherit (c) hostAddress localAddress autoStart; })"
            f" (import {applied} {{ }}).containers"
        )
        result = subprocess.run(
            [NIX_INSTANTIATE, "--eval", "--strict", "--json", "-E", expr],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        created[applied.stem] = json.loads(result.stdout)
    expected = {
        s.name: {
            c["name"]: {
                "hostAddress": c["hostAddress"],
                "localAddress": c["localAddress"],
                "autoStart": s.auto_start,
            }
            for c in containers
        }
        for s, containers in zip(SERVICES, plan.layout(SERVICES).values(), strict=True)
    }
    assert created == expected
    assert sum(len(c) for c in created.values()) == 250


@pytest.mark.skipif(NIX_INSTANTIATE is None, reason="nix-instantiate not installed (nix-bin)")
def test_python_layout_agrees_with_plan_nix(tmp_path: Path) -> None:
    """plan.nix and planners.containers.layout name and address the same containers."""
    assert NIX_INSTANTIATE is not None
    spec_file = tmp_path / "containers.json"
    spec_file.write_text(plan.render_spec(plan.spec("load", SERVICES)))
    result = subprocess.run(
        [
            NIX_INSTANTIATE,
            "--eval",
            "--strict",
            "--json",
            str(NIX_LIB / "plan.nix"),
            "--argstr",
            "specFile",
            str(spec_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == plan.layout(SERVICES)
    assert [c["name"] for c in plan.layout(SERVICES)["k6.edge_case"]] == [
        "z-9998",
        "z-9999",
        "z-91000",
        "z-91001",
    ]


def test_spawner_check_mode_accepts_the_rendered_spec(host: FakeHost) -> None:
    """The spawner's own validation passes every spec HostContainers lets through."""
    spec_file = host.root / "containers.json"
    spec_file.write_text(plan.render_spec(plan.spec("load", SERVICES)))
    result = subprocess.run(
        ["bash", str(SPAWNER), "--check", str(spec_file)],
        env={"PATH": os.environ["PATH"], "PERFOPS_MODULES_DIR": str(host.modules)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed")
def test_rendered_user_data_is_shellcheck_clean(tmp_path: Path) -> None:
    """The whole script, RAID part included, passes shellcheck as POSIX sh."""
    assert SHELLCHECK is not None
    result = subprocess.run(
        [SHELLCHECK, "--shell=sh", "-"],
        input=user_data(tmp_path, nvme_raid0=True),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def _raid_fakes(bin_dir: Path, mounted: bool) -> None:
    bin_dir.mkdir()
    for name in ("mdadm", "mkfs.ext4", "mount", "mountpoint"):
        status = 0 if name != "mountpoint" or mounted else 1
        fake = bin_dir / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >>"$FAKE_CALLS"\nexit {status}\n')
        fake.chmod(0o755)


@pytest.mark.parametrize("mounted", [True, False])
def test_raid_part_leaves_a_mounted_array_or_a_diskless_host_alone(
    tmp_path: Path, mounted: bool
) -> None:
    """Mounted: only the mountpoint check runs. No instance store: no create, no mount."""
    if not mounted and any(
        "Instance Storage" in p.read_text() for p in Path("/sys/block").glob("nvme*n1/device/model")
    ):
        pytest.skip("this machine has instance-store disks")
    _raid_fakes(tmp_path / "bin", mounted)
    calls = tmp_path / "calls"
    calls.touch()
    script = plan.nvme_raid0_part(str(tmp_path / "mnt")).script
    result = subprocess.run(
        ["sh", "-eu", "-c", script],
        env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "FAKE_CALLS": str(calls)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    made = [line.split()[0] for line in calls.read_text().splitlines()]
    assert made == (["mountpoint"] if mounted else ["mountpoint", "mdadm"])
