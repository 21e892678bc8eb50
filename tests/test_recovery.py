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
from fleetkit import UUID, Fleet, assert_converged

from perfops_cdk.effects import aws
from perfops_cdk.effects.emulator import Emulator

pytestmark = pytest.mark.terraform


class LostAnswer(FaultProxy):
    """Forwards everything; the first ``CreateSecurityGroup`` reaches the emulator,
    which creates the group, but its answer never comes back."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, share=0.0)
        self.lost: list[str] = []

    def __enter__(self) -> LostAnswer:
        super().__enter__()
        return self

    def intercept(self, headers: Mapping[str, str], body: bytes) -> Reply | Forward:
        fields = dict(urllib.parse.parse_qsl(body.decode(errors="replace")))
        if fields.get("Action") == "CreateSecurityGroup" and not self.lost:
            self.lost.append(fields["GroupName"])
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
