"""A perfops project driven as a user drives it: edit the declaration, run the CLI.

The app reads its declaration from ``fleet.json`` so a test can change it between
runs (scale a region, rename a deployment, drop a stack, swap an image); every check
reads what the emulator holds through boto3, never what perfops printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from perfops_cdk.effects import aws

REPO = Path(__file__).resolve().parent.parent
UUID = "daytwo1"
REGIONS = ("eu-west-1", "us-east-1", "eu-central-1")
# moto serves this AMI in every region out of the box.
MOTO_AMI = "ami-03cf127a"

APP = """
import json
from pathlib import Path

from perfops_cdk import App, Capacity, Deployment, ImageAsset, PerfOpsStack, S3State
from perfops_cdk.app import main


def define(app: App) -> None:
    spec = json.loads(Path("fleet.json").read_text())
    backend = S3State(**spec["backend"]) if spec.get("backend") else None
    for stack_id, stack in spec["stacks"].items():
        scope = PerfOpsStack(app, stack_id, uuid=spec["uuid"], backend=backend)
        images = {
            name: ImageAsset.from_ami_ids(scope, name, name=name, ami_ids=amis)
            for name, amis in spec["images"].items()
        }
        for name, deployment in stack.items():
            Deployment(
                scope,
                name,
                image=images[deployment.get("image", "node")],
                capacity=Capacity.on_demand(*deployment.get("types", ["t3.micro"])),
                regions=deployment["regions"],
                security_groups=deployment.get("groups", ["allow-egress"]),
            )


main(define)
"""

Declaration = Mapping[str, Mapping[str, Mapping[str, Any]]]


class Fleet:
    """One project directory, its declaration, and the perfops CLI run in it."""

    def __init__(self, root: Path, images: Mapping[str, Mapping[str, str]] | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
        (root / "deployments.py").write_text(APP)
        self.images = dict(images or {"node": {r: MOTO_AMI for r in REGIONS}})

    def declare(self, stacks: Declaration, backend: Mapping[str, str] | None = None) -> None:
        """stack id -> deployment -> {"regions": {...}, "image": ..., "groups": [...]};
        ``backend``: the S3State arguments (bucket, key, region), else a local state."""
        spec = {"uuid": UUID, "images": self.images, "stacks": stacks, "backend": backend}
        (self.root / "fleet.json").write_text(json.dumps(spec))

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}

    def perfops(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "perfops_cdk.cli.main", *args],
            cwd=self.root,
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """The CLI in its own process group, so a test can kill it and its Terraforms."""
        return subprocess.Popen(
            [sys.executable, "-m", "perfops_cdk.cli.main", *args],
            cwd=self.root,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def deploy(self) -> subprocess.CompletedProcess[str]:
        result = self.perfops("deploy", "-y")
        assert result.returncode == 0, result.stdout + result.stderr
        return result


def kill_group(process: subprocess.Popen[str]) -> None:
    """``kill -9`` of the CLI and every Terraform and provider it started."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def wait_for(condition: Any, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def _tags(raw: Any) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw or ()}


def live_hosts(uuid: str = UUID) -> dict[tuple[str, str, str], int]:
    """(stack, deployment, region) -> pending or running instances, per EC2."""
    counts: dict[tuple[str, str, str], int] = {}
    for region in REGIONS:
        reservations = aws.client("ec2", region).describe_instances(
            Filters=[
                {"Name": "tag:perf-ops", "Values": [uuid]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )["Reservations"]
        for instance in (i for r in reservations for i in r["Instances"]):
            tags = _tags(instance.get("Tags"))
            key = (tags["perf-ops:stack"], tags["deployment"], region)
            counts[key] = counts.get(key, 0) + 1
    return counts


def groups(uuid: str = UUID) -> set[tuple[str, str]]:
    """(region, name) of every security group tagged with the uuid."""
    found = set()
    for region in REGIONS:
        for group in aws.client("ec2", region).describe_security_groups(
            Filters=[{"Name": "tag:perf-ops", "Values": [uuid]}]
        )["SecurityGroups"]:
            found.add((region, group["GroupName"]))
    return found


def tagged(uuid: str = UUID) -> list[str]:
    """Everything of the uuid that still exists or bills: hosts, groups, templates,
    active fleets, unattached volumes."""
    left = []
    for region in REGIONS:
        ec2 = aws.client("ec2", region)
        by_uuid = [{"Name": "tag:perf-ops", "Values": [uuid]}]
        for r in ec2.describe_instances(Filters=by_uuid)["Reservations"]:
            left += [
                f"{region} instance {i['InstanceId']}"
                for i in r["Instances"]
                if i["State"]["Name"] != "terminated"
            ]
        left += [f"{region} group {g}" for _, g in groups(uuid) if _ == region]
        for t in ec2.describe_launch_templates(Filters=by_uuid)["LaunchTemplates"]:
            left.append(f"{region} template {t['LaunchTemplateName']}")
        for f in ec2.describe_fleets()["Fleets"]:
            if _tags(f.get("Tags")).get("perf-ops") == uuid and f["FleetState"] == "active":
                left.append(f"{region} fleet {f['FleetId']}")
        for v in ec2.describe_volumes(Filters=by_uuid)["Volumes"]:
            left.append(f"{region} volume {v['VolumeId']} {v['State']}")
    return sorted(set(left))


def expected_hosts(stacks: Declaration) -> dict[tuple[str, str, str], int]:
    return {
        (stack, deployment, region): count
        for stack, deployments in stacks.items()
        for deployment, spec in deployments.items()
        for region, count in spec["regions"].items()
        if count
    }


def expected_groups(stacks: Declaration) -> set[tuple[str, str]]:
    return {
        (region, f"perf-ops-{UUID}-{stack}-{deployment}-{group}")
        for stack, deployments in stacks.items()
        for deployment, spec in deployments.items()
        for region, count in spec["regions"].items()
        if count
        for group in spec.get("groups", ["allow-egress"])
    }


def assert_converged(stacks: Declaration) -> None:
    """AWS holds exactly the declared hosts and groups of this deployer, nothing else."""
    assert live_hosts() == expected_hosts(stacks)
    assert groups() == expected_groups(stacks)
