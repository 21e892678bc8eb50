"""Capacity that falls back, against the emulator behind a capacity shim (quotas, scarce
pools, limited spot; tests/capacityshim.py), with real Terraform. Judged by AWS.

Slow: each test runs one to three deploys.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from capacityshim import CapacityShim
from fleetkit import UUID, Fleet, tagged

from perfops_cdk.effects import aws
from perfops_cdk.effects.emulator import Emulator

pytestmark = [
    pytest.mark.terraform,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed"),
]
REGION = "eu-west-1"
ZONES = ("eu-west-1a", "eu-west-1b", "eu-west-1c")


@pytest.fixture
def shim(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[CapacityShim]:
    """The shim in front of the emulator; perfops (boto3 and Terraform) talks to it."""
    with CapacityShim(emulator.url) as proxy:
        monkeypatch.setenv("PERFOPS_AWS_ENDPOINT", proxy.url)
        yield proxy


def spot_fleet(tmp_path: Path, **deployment: object) -> Fleet:
    fleet = Fleet(tmp_path / "project")
    app = (
        (fleet.root / "deployments.py")
        .read_text()
        .replace(
            'capacity=Capacity.on_demand(*deployment.get("types", ["t3.micro"])),',
            'capacity=(Capacity.spot if deployment.get("spot") else Capacity.on_demand)(\n'
            '                    *deployment.get("types", ["t3.micro"])\n                ),',
        )
    )
    (fleet.root / "deployments.py").write_text(app)
    fleet.declare({"perf-ops": {"web": {"regions": {REGION: 5}, **deployment}}})
    return fleet


def live() -> list[tuple[str, str]]:
    """(instance type, market) of every live host of the deployer in the region."""
    reservations = aws.client("ec2", REGION).describe_instances(
        Filters=[
            {"Name": "tag:perf-ops", "Values": [UUID]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    return sorted(
        (i["InstanceType"], i.get("InstanceLifecycle") or "on-demand")
        for r in reservations
        for i in r["Instances"]
    )


def test_spot_short_of_capacity_falls_back_to_on_demand(shim: CapacityShim, tmp_path: Path) -> None:
    """Spot can give 3 of 5 hosts: the deploy launches the other 2 on demand, once, and
    says so; the next deploy changes nothing."""
    shim.spot_capacity[REGION] = 3
    fleet = spot_fleet(tmp_path, spot=True)
    result = fleet.deploy()
    assert live() == [("t3.micro", "on-demand")] * 2 + [("t3.micro", "spot")] * 3
    assert (
        f"{REGION} web: 5 of 5 live (5 t3.micro; 3 spot); 2 on-demand as fallback for spot"
        in result.stdout
    )
    again = fleet.deploy()
    assert "deploy: no changes" in again.stdout
    assert len(live()) == 5


def test_a_type_without_capacity_lands_the_hosts_on_the_next_type(
    shim: CapacityShim, tmp_path: Path
) -> None:
    """No t3.micro capacity in any zone: the fleet's hosts land on t3.small, and the
    report says which types the hosts got."""
    shim.unavailable |= {("t3.micro", zone) for zone in ZONES}
    fleet = spot_fleet(tmp_path, types=["t3.micro", "t3.small"])
    result = fleet.deploy()
    assert live() == [("t3.small", "on-demand")] * 5
    assert f"{REGION} web: 5 of 5 live (5 t3.small)" in result.stdout
    assert any("t3.micro" in error for error in shim.fleet_errors)


def test_on_demand_short_is_reported_and_retried_by_the_next_deploy(
    shim: CapacityShim, tmp_path: Path
) -> None:
    """No capacity at all: the apply succeeds with no hosts and the report says so; once
    capacity is back, the next deploy replaces the empty fleet and fills the region."""
    shim.unavailable |= {("t3.micro", zone) for zone in ZONES}
    fleet = spot_fleet(tmp_path)
    first = fleet.deploy()
    assert live() == []
    assert f"{REGION} web: 0 of 5 live (none); 5 short: EC2 had no capacity" in first.stdout
    shim.unavailable.clear()
    fleet.deploy()
    assert live() == [("t3.micro", "on-demand")] * 5


def test_preflight_stops_a_region_short_of_quota_before_anything_exists(
    shim: CapacityShim, tmp_path: Path
) -> None:
    """5 t3.large need 10 vCPUs and the on-demand quota is 8: one line with the numbers
    and the quota's name, exit 2, nothing created; --force deploys all the same."""
    shim.quotas[(REGION, "L-1216C47A")] = 8
    fleet = spot_fleet(tmp_path, types=["t3.large"])
    refused = fleet.perfops("deploy", "-y")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"{REGION}: on-demand hosts need 10 vCPUs; quota 'Running On-Demand Standard "
        "(A, C, D, H, I, M, R, T, Z) instances' (L-1216C47A) is 8 with 0 in use by others: "
        "short by 2",
        f"error: preflight: 1 region(s) cannot hold the fleet ({REGION}); change the "
        "declaration, raise the quota, or add --force",
    ]
    assert tagged() == []
    forced = fleet.perfops("deploy", "-y", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert len(live()) == 5
