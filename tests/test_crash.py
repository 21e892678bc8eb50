"""Crash safety: ``kill -9`` of the whole perfops process group at several points of a
deploy or destroy, then the next command converges and nothing is left unseen.

Real Terraform against the emulator, judged by what AWS holds. Slow: a few minutes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fleetkit import (
    UUID,
    Fleet,
    assert_converged,
    kill_group,
    live_hosts,
    tagged,
    wait_for,
)

from perfops_cdk.effects import aws
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.effects.terraform import Workspace

pytestmark = [
    pytest.mark.terraform,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed"),
]

FLEET = {"perf-ops": {"web": {"regions": {"eu-west-1": 3, "us-east-1": 2}}}}


@pytest.fixture
def fleet(emulator: Emulator, tmp_path: Path) -> Fleet:
    project = Fleet(tmp_path / "project")
    project.declare(FLEET)
    return project


def _terraform_running(pgid: int, command: str) -> bool:
    """A terraform ``command`` (plan, apply) runs in the process group."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ProcessLookupError):
            continue
        if argv and argv[0].endswith(b"terraform") and command.encode() in argv[1:3]:
            return True
    return False


def _converges_then_destroys(fleet: Fleet) -> None:
    redeployed = fleet.perfops("deploy", "-y")
    assert redeployed.returncode == 0, redeployed.stdout + redeployed.stderr
    assert_converged(FLEET)
    destroyed = fleet.perfops("destroy", "-y")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert tagged() == []


def test_kill_while_terraform_starts_then_deploy_converges(fleet: Fleet) -> None:
    """Killed as soon as Terraform runs (planning; with -y, plan and apply are one
    Terraform run): the rerun deploys it all, whatever the kill left."""
    process = fleet.start("deploy", "-y")
    wait_for(lambda: _terraform_running(process.pid, "apply"))
    kill_group(process)
    _converges_then_destroys(fleet)


def test_kill_after_hosts_were_created_then_deploy_converges(fleet: Fleet) -> None:
    """Killed as soon as the first hosts exist (Terraform may not have saved them):
    the rerun removes what no state records and ends with exactly the declared hosts."""
    process = fleet.start("deploy", "-y")
    wait_for(lambda: bool(live_hosts()))
    kill_group(process)
    _converges_then_destroys(fleet)


def test_kill_during_destroy_then_destroy_leaves_nothing(fleet: Fleet) -> None:
    """Killed in the middle of a destroy: the next destroy finishes and proves it."""
    fleet.deploy()
    process = fleet.start("destroy", "-y")
    wait_for(lambda: sum(live_hosts().values()) < 5 or _terraform_running(process.pid, "apply"))
    kill_group(process)
    destroyed = fleet.perfops("destroy", "-y")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert tagged() == []


def test_resources_missing_from_state_are_removed_before_apply(fleet: Fleet) -> None:
    """What a killed run created but never recorded (here: dropped from the state, as a
    kill before Terraform saved it leaves it) is listed and removed by the next deploy,
    so it neither runs unseen nor blocks the deploy with InvalidGroup.Duplicate."""
    fleet.deploy()
    stack_dir = fleet.root / "cdktf.out" / "stacks" / "perf-ops-eu-west-1"
    workspace = Workspace(stack_dir, fleet.root)
    for address in ('aws_ec2_fleet.web_hosts["0"]', "aws_security_group.web_allow-egress"):
        workspace._run("state", "rm", address, capture=True)
    orphans = live_hosts()[("perf-ops", "web", "eu-west-1")]
    assert orphans == 3
    redeployed = fleet.perfops("deploy", "-y")
    assert redeployed.returncode == 0, redeployed.stdout + redeployed.stderr
    assert "left outside Terraform's state" in redeployed.stdout
    assert_converged(FLEET)
    reservations = aws.client("ec2", "eu-west-1").describe_instances(
        Filters=[{"Name": "tag:perf-ops", "Values": [UUID]}]
    )["Reservations"]
    states = [i["State"]["Name"] for r in reservations for i in r["Instances"]]
    assert states.count("terminated") == 3
    destroyed = fleet.perfops("destroy", "-y")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert tagged() == []
