"""A create whose answer is lost after AWS acted: the provider sends it again, which
fails as a duplicate; perfops removes what the first attempt made and applies once
more (operations/recovery.py). Real Terraform, the emulator behind a proxy that loses
one answer."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from faultproxy import FaultProxy, Forward, Reply
from fleetkit import UUID, Fleet, assert_converged, tagged

from perfops_cdk.effects import aws
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.operations import recovery

pytestmark = pytest.mark.terraform


class LostAnswer(FaultProxy):
    """Forwards everything; the first ``action`` (``CreateSecurityGroup`` unless told)
    reaches the emulator, which acts on it, but its answer never comes back."""

    def __init__(self, upstream: str, action: str = "CreateSecurityGroup") -> None:
        super().__init__(upstream, share=0.0)
        self.action = action
        self.armed = True  # False: lose nothing (yet)
        self.lost: list[str] = []

    def __enter__(self) -> LostAnswer:
        super().__enter__()
        return self

    def intercept(self, headers: Mapping[str, str], body: bytes) -> Reply | Forward:
        fields = dict(urllib.parse.parse_qsl(body.decode(errors="replace")))
        if fields.get("Action") == self.action and self.armed and not self.lost:
            self.lost.append(fields.get("GroupName") or body.decode(errors="replace"))
            return Forward(body, lost=True)
        return Forward(body)


@pytest.fixture
def proxy(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[LostAnswer]:
    with LostAnswer(emulator.url) as lossy:
        monkeypatch.setenv("PERFOPS_AWS_ENDPOINT", lossy.url)
        yield lossy


def test_a_create_sent_twice_is_recovered_by_one_more_apply(
    proxy: LostAnswer, tmp_path: Path
) -> None:
    """The deploy succeeds, says what it removed, and AWS holds the declared fleet
    with one group of each name (the one the first attempt made is gone)."""
    fleet = Fleet(tmp_path / "project")
    declaration = {"perf-ops": {"web": {"regions": {"eu-west-1": 2}}}}
    fleet.declare(declaration)
    result = fleet.perfops("deploy", "-y")
    assert proxy.lost, "the proxy lost no answer: nothing was tested"
    assert result.returncode == 0, result.stdout + result.stderr
    assert_converged(declaration)
    named = aws.client("ec2", "eu-west-1").describe_security_groups(
        Filters=[{"Name": "tag:perf-ops", "Values": [UUID]}]
    )["SecurityGroups"]
    names = [g["GroupName"] for g in named]
    assert len(names) == len(set(names)) and proxy.lost[0] in names
    assert "sg-" in result.stdout + result.stderr  # the removed group is reported


@pytest.mark.parametrize("action", ["DeleteFleets", "DeleteLaunchTemplate"])
def test_a_delete_sent_twice_is_recovered_too(
    action: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A deployment removed from the app: the answer to one of its deletes is lost after
    the emulator deleted, the provider sends the delete again, which fails (the emulator
    answers a fleet or template deleted twice with errors the provider does not take
    for "gone"). perfops sees AWS no longer holds it and applies once more: the deploy
    succeeds and AWS holds only what is declared. (A group deleted twice is already
    fine: the provider takes its NotFound for done.)"""
    fleet = Fleet(tmp_path / "project")
    both = {
        "perf-ops": {"web": {"regions": {"eu-west-1": 1}}, "api": {"regions": {"eu-west-1": 1}}}
    }
    declaration = {"perf-ops": {"web": {"regions": {"eu-west-1": 1}}}}
    # Through the proxy from the start: a rehearsal's state is kept per endpoint.
    with LostAnswer(emulator.url, action) as proxy:
        monkeypatch.setenv("PERFOPS_AWS_ENDPOINT", proxy.url)
        proxy.armed = False
        fleet.declare(both)
        fleet.deploy()
        proxy.armed = True
        fleet.declare(declaration)
        result = fleet.perfops("deploy", "-y")
        assert proxy.lost, "the proxy lost no answer: nothing was tested"
        assert result.returncode == 0, result.stdout + result.stderr
        assert_converged(declaration)
        # web's host (and its root volume), group, template and fleet; nothing of api.
        kinds = sorted(line.split()[1] for line in tagged())
        assert kinds == ["fleet", "group", "instance", "template", "volume"]


def test_a_fleet_deleted_twice_in_a_terraform_destroy_is_recovered(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`perfops destroy --full` (Terraform destroys): the fleet's delete is sent twice
    and fails; perfops sees the fleet gone and destroys once more: nothing is left."""
    fleet = Fleet(tmp_path / "project")
    with LostAnswer(emulator.url, "DeleteFleets") as proxy:
        monkeypatch.setenv("PERFOPS_AWS_ENDPOINT", proxy.url)
        proxy.armed = False
        fleet.declare({"perf-ops": {"web": {"regions": {"eu-west-1": 1}}}})
        fleet.deploy()
        proxy.armed = True
        result = fleet.perfops("destroy", "-y", "--full")
        assert proxy.lost, "the proxy lost no answer: nothing was tested"
        assert result.returncode == 0, result.stdout + result.stderr
        assert tagged() == []


def test_only_deletes_of_our_resources_by_id_are_retried() -> None:
    """The ids of failed deletes, only when every error is one."""
    fleet = (
        "deleting EC2 Fleet (fleet-de14c15d-47f2-484d-c29e-4b201cf055f5): operation error "
        "EC2: DeleteFleets, api error InvalidParameterCombination: No instances specified"
    )
    template = "deleting EC2 Launch Template (lt-57158f3621c2907f3): api error NotFound"
    assert recovery.failed_deletes([fleet, template]) == [
        "fleet-de14c15d-47f2-484d-c29e-4b201cf055f5",
        "lt-57158f3621c2907f3",
    ]
    other = "creating EC2 Fleet: InsufficientInstanceCapacity"
    assert recovery.failed_deletes([fleet, other]) == []
    assert recovery.failed_deletes(["deleting EC2 EIP (eipalloc-1): AuthFailure"]) == []
