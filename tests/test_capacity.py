"""Capacity: declarations, the preflight's checks, and what a fleet got after an apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from stackkit import synth_json

from perfops_cdk import (
    Capacity,
    ContainerService,
    Deployment,
    HostContainers,
    ImageAsset,
    InvalidField,
    PerfOpsStack,
)
from perfops_cdk.planners import leftovers
from perfops_cdk.planners.capacity import Fulfilment, fulfilment, fulfilment_lines, refills
from perfops_cdk.planners.preflight import Finding, RegionFacts, check, finding_lines, is_standard
from perfops_cdk.planners.stacks import HostGroup
from perfops_cdk.planners.status import Host
from perfops_cdk.props.regions import DEFAULT_REGIONS


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: Capacity.on_demand(), r"instance_types: \[\] is not allowed; name at least one"),
        (lambda: Capacity.spot("r5d.2xl"), r"'r5d.2xl' is not allowed; must be an EC2 instance"),
        (lambda: Capacity.spot("t3.micro", on_demand_percent=101), r"on_demand_percent: 101"),
        (lambda: Capacity.spot("t3.micro", on_demand_percent=-1), r"on_demand_percent: -1"),
        (lambda: Capacity.spot("t3.micro", "t3.micro"), r"each instance type may be listed once"),
        (lambda: Capacity.spot("t3.micro", allocation="cheapest"), r"allocation: 'cheapest'"),
        (lambda: Capacity.on_demand("t3.micro", batch_size=0), r"batch_size: 0"),
        (
            lambda: Capacity(instance_types=("t3.micro",), on_demand_base=2),
            r"apply to Capacity.spot",
        ),
    ],
)
def test_bad_capacity_is_one_line(build: Any, expected: str) -> None:
    """Every bad capacity declaration is one InvalidField line saying what is allowed."""
    with pytest.raises(InvalidField, match=expected) as caught:
        build()
    assert "\n" not in str(caught.value)


def test_capacity_and_instance_type_are_one_or_the_other(tmp_path: Path) -> None:
    """A deployment names one instance type or a Capacity, not both and not neither."""

    def both(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(
            stack,
            "d",
            image=image,
            regions={"eu-west-1": 1},
            instance_type="t3.micro",
            capacity=Capacity.on_demand("t3.micro"),
        )

    with pytest.raises(InvalidField, match=r"^perf-ops/d: capacity: .* not both"):
        synth_json(tmp_path, both)


def test_container_memory_is_checked_against_the_smallest_listed_type(tmp_path: Path) -> None:
    """Every listed type must hold the containers: the smallest one decides."""

    def too_small(stack: PerfOpsStack, image: ImageAsset) -> None:
        deployment = Deployment(
            stack,
            "d",
            image=image,
            regions={"eu-west-1": 1},
            capacity=Capacity.spot("r5d.2xlarge", "t3.small"),
        )
        HostContainers(
            deployment,
            "clients",
            services=[
                ContainerService(
                    name="k6",
                    entry_folder="k6",
                    container_name_prefix="a",
                    host_address="10.254.0.1",
                    network="10.254.1",
                    container_count=100,
                )
            ],
        )

    with pytest.raises(InvalidField, match=r"t3.small has 2048 MiB"):
        synth_json(tmp_path, too_small)


def group(**changes: Any) -> HostGroup:
    fields: dict[str, Any] = dict(
        app_stack="perf-ops",
        deployment="web",
        region="eu-west-1",
        uuid="u1",
        hosts=4,
        ami="ami-1",
        image="node",
        image_path="perf-ops/node",
        prebuilt_image=True,
        instance_types=("t3.large", "t3.xlarge"),
        market="on-demand",
        on_demand_hosts=4,
        fallback_to_on_demand=False,
        max_price=None,
        root_volume_gib=30,
        root_volume_type="gp3",
        security_groups=(),
        containers_per_host=0,
    )
    return HostGroup(**{**fields, **changes})


def facts(**changes: Any) -> RegionFacts:
    fields: dict[str, Any] = dict(
        region="eu-west-1",
        zones={"t3.large": ("eu-west-1a",), "t3.xlarge": ("eu-west-1a", "eu-west-1b")},
        vcpus={"t3.large": 2, "t3.xlarge": 4},
        quotas={"L-1216C47A": 64.0, "L-34B43A08": 64.0},
    )
    return RegionFacts(**{**fields, **changes})


@pytest.mark.parametrize(
    ("the_group", "the_facts", "expected"),
    [
        (group(), facts(), []),
        (
            group(),
            facts(quotas={"L-1216C47A": 10.0, "L-34B43A08": 64.0}),
            [("on-demand hosts need 8 to 16 vCPUs", "enough only if EC2 picks smaller", False)],
        ),
        (
            group(),
            facts(quotas={"L-1216C47A": 12.0, "L-34B43A08": 64.0}, in_use={"on-demand": 6}),
            [("is 12 with 6 in use by others", "short by 2", True)],
        ),
        (
            group(market="spot", on_demand_hosts=1),
            facts(quotas={"L-1216C47A": 64.0, "L-34B43A08": 4.0}),
            [("spot hosts need 6 to 12 vCPUs", "short by 2", True)],
        ),
        (
            group(),
            facts(
                quotas={"L-1216C47A": None}, quota_errors={"L-1216C47A": "could not be read (X)"}
            ),
            [("(L-1216C47A) could not be read (X)", "not checked", False)],
        ),
        (
            group(),
            facts(zones={"t3.xlarge": ("eu-west-1a",)}),
            [("t3.large not offered here", "hosts will use t3.xlarge", False)],
        ),
        (
            group(),
            facts(zones={}),
            [("none of t3.large, t3.xlarge is offered in eu-west-1", "list a type", True)],
        ),
    ],
)
def test_preflight_findings(
    the_group: HostGroup, the_facts: RegionFacts, expected: list[tuple[str, str, bool]]
) -> None:
    """Types offered and vCPUs against the quotas, net of others' use, as lines."""
    found = check([the_group], the_facts)
    assert [(f.blocking) for f in found] == [e[2] for e in expected]
    for finding, (first, second, _) in zip(found, expected, strict=True):
        assert finding.line().startswith("eu-west-1: ")
        assert first in finding.text and second in finding.text


@pytest.mark.parametrize(
    ("instance_type", "standard"),
    [
        ("r5d.2xlarge", True),
        ("c7g.large", True),
        ("t3.micro", True),
        ("inf2.xlarge", False),
        ("dl1.24xlarge", False),
        ("trn1.2xlarge", False),
        ("p4d.24xlarge", False),
        ("g5.xlarge", False),
        ("x2idn.16xlarge", False),
    ],
)
def test_standard_families_are_those_of_the_standard_quota(
    instance_type: str, standard: bool
) -> None:
    """A, C, D, H, I, M, R, T, Z count against the standard quota; Inf, DL, Trn do not."""
    assert is_standard(instance_type) is standard


def _state(batches: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "resources": [
            {
                "mode": "managed",
                "type": "aws_ec2_fleet",
                "name": "web_hosts",
                "instances": [
                    {
                        "index_key": key,
                        "attributes": {"fleet_instance_set": [{"instance_ids": ids}]},
                    }
                    for key, ids in batches.items()
                ],
            }
        ]
    }


def _hosts(*specs: tuple[str, str, str]) -> list[Host]:
    return [
        Host(i, "eu-west-1", "perf-ops", "web", "running", "ami-1", t, lifecycle=life)
        for i, t, life in specs
    ]


def test_spot_short_of_its_batches_calls_for_an_on_demand_fallback() -> None:
    """Spot gave 3 of 5: the fallback needed is 2, and the line says what is live."""
    spot = group(hosts=5, market="spot", on_demand_hosts=0, fallback_to_on_demand=True)
    hosts = _hosts(*[(f"i-{n}", "t3.large", "spot") for n in range(3)])
    got = fulfilment(spot, _state({"0": ["i-0", "i-1", "i-2"]}), hosts, fallback=0)
    assert (got.live, got.from_batches, got.short, got.fallback_needed) == (3, 3, 2, 2)
    assert got.line() == "eu-west-1 web: 3 of 5 live (3 t3.large; 3 spot); 2 short"


def test_fallback_hosts_do_not_count_as_spots_own() -> None:
    """With the fallback batch live, the need stays as long as spot does not cover it."""
    spot = group(hosts=5, market="spot", on_demand_hosts=0, fallback_to_on_demand=True)
    hosts = _hosts(
        *[(f"i-{n}", "t3.large", "spot") for n in range(3)],
        ("i-8", "t3.large", "on-demand"),
        ("i-9", "t3.xlarge", "on-demand"),
    )
    state = _state({"0": ["i-0", "i-1", "i-2"], "fallback": ["i-8", "i-9"]})
    got = fulfilment(spot, state, hosts, fallback=2)
    assert (got.live, got.from_batches, got.fallback_needed, got.short) == (5, 3, 2, 0)
    assert got.line() == (
        "eu-west-1 web: 5 of 5 live (4 t3.large, 1 t3.xlarge; 3 spot); "
        "2 on-demand as fallback for spot"
    )


def test_on_demand_short_says_the_next_deploy_retries() -> None:
    """Without a fallback, a short region is reported, not hidden."""
    got = fulfilment(group(hosts=2), _state({"0": []}), [], fallback=0)
    assert got.fallback_needed == 0
    assert got.line() == (
        "eu-west-1 web: 0 of 2 live (none); 2 short: EC2 had no capacity, the next deploy retries"
    )


def test_a_deployment_fully_live_in_many_regions_is_one_line() -> None:
    """Every host live in five regions or more reads as one line per deployment (68
    lines of "6 of 6 live" at 400 hosts); a region short or on its fallback keeps its
    own line, and so does a deployment in fewer regions."""

    def got(region: str, deployment: str, live: int, **more: Any) -> Fulfilment:
        fields: dict[str, Any] = {"from_batches": live, "fallback": 0, "spot": 0}
        fields |= {"by_type": (("r5d.2xlarge", live),), "fallback_allowed": False, **more}
        return Fulfilment(region, deployment, 6, live, **fields)

    regions = DEFAULT_REGIONS[:6]
    web = [got(r, "web", 6) for r in regions]
    spot = [
        got(r, "spot", 6, spot=6, by_type=(("r5d.2xlarge", 4), ("r6id.2xlarge", 2)))
        for r in regions
    ]
    few = [got(r, "few", 6) for r in regions[:4]]
    short = [got(r, "api", 6) for r in regions[:5]] + [got(regions[5], "api", 4)]
    lines = fulfilment_lines([*web, *spot, *few, *short])
    assert lines == [
        "web: 36 of 36 live in 6 regions (36 r5d.2xlarge)",
        "spot: 36 of 36 live in 6 regions (24 r5d.2xlarge, 12 r6id.2xlarge; 36 spot)",
        *[f.line() for f in few],
        *[f.line() for f in short],
    ]
    assert lines[-1] == (
        "ap-southeast-2 api: 4 of 6 live (4 r5d.2xlarge); "
        "2 short: EC2 had no capacity, the next deploy retries"
    )


SPOT_STATE = _state({"0": ["i-0", "i-1"], "1": ["i-2"], "fallback": ["i-8"]})
ALL = ['aws_ec2_fleet.web_hosts["0"]', 'aws_ec2_fleet.web_hosts["1"]']
FALLBACK = 'aws_ec2_fleet.web_hosts["fallback"]'


@pytest.mark.parametrize(
    ("live", "topped_up", "expected"),
    [
        # Without the fallback every short fleet is replaced, to try again.
        ({"i-0", "i-8"}, set(), ALL),
        # Spot short but holding hosts: kept, the fallback tops it up.
        ({"i-0", "i-2", "i-8"}, {"web_hosts"}, []),
        # A batch whose hosts are all gone (lifetime over, reclaimed) is asked of spot
        # again; the fallback is left to be resized after the apply.
        ({"i-0", "i-1"}, {"web_hosts"}, ['aws_ec2_fleet.web_hosts["1"]']),
        (set(), {"web_hosts"}, ALL),
        # Spot batches whole again, the fallback's hosts gone: it is refilled.
        ({"i-0", "i-1", "i-2"}, {"web_hosts"}, [FALLBACK]),
    ],
)
def test_refills_keep_spot_hosts_and_ask_spot_again_for_fleets_left_empty(
    live: set[str], topped_up: set[str], expected: list[str]
) -> None:
    """Which short fleets a deploy replaces, with and without the on-demand fallback."""
    wanted = {ALL[0]: 2, ALL[1]: 1, FALLBACK: 1}
    short = leftovers.short_fleets(SPOT_STATE, live, wanted)
    assert refills(SPOT_STATE, live, short, topped_up) == expected


def test_a_fallback_whose_hosts_are_all_gone_is_lost() -> None:
    """Spot still short by the fallback's size and no fallback host live: lost (the
    deploy applies once more to refill it); with its hosts live, or no fallback, not."""
    spot = group(hosts=3, market="spot", on_demand_hosts=0, fallback_to_on_demand=True)
    state = _state({"0": ["i-0", "i-1", "i-2"], "fallback": ["i-8"]})
    two_spot = _hosts(("i-0", "t3.large", "spot"), ("i-1", "t3.large", "spot"))
    assert fulfilment(spot, state, two_spot, fallback=1).fallback_lost
    with_fallback = [*two_spot, *_hosts(("i-8", "t3.large", "on-demand"))]
    assert not fulfilment(spot, state, with_fallback, fallback=1).fallback_lost
    assert not fulfilment(spot, state, two_spot, fallback=0).fallback_lost


def test_findings_alike_in_many_regions_are_one_line() -> None:
    """The same finding in several regions (a quota nobody may read) is said once, with
    the regions it holds for; what blocks keeps its own line per region, first."""
    unreadable = "on-demand vCPU quota 'Standard' (L-1216C47A) could not be read (X); not checked"
    found = [
        Finding("eu-west-1", unreadable, False),
        Finding("us-east-1", unreadable, False),
        Finding("us-east-1", "web: t3.large not offered here; hosts will use t3.xlarge", False),
        Finding("ap-south-1", "on-demand hosts need 8 vCPUs; ...: short by 2", True),
    ]
    assert finding_lines(found, ["ap-south-1", "eu-west-1", "us-east-1"]) == [
        "ap-south-1: on-demand hosts need 8 vCPUs; ...: short by 2",
        f"eu-west-1, us-east-1: {unreadable}",
        "us-east-1: web: t3.large not offered here; hosts will use t3.xlarge",
    ]
    regions = ["ap-south-1", "eu-central-1", "eu-west-1", "us-east-1", "us-west-2"]
    everywhere = [Finding(r, unreadable, False) for r in regions]
    assert finding_lines(everywhere, regions) == [f"every region (5): {unreadable}"]
    assert finding_lines(everywhere[:4], regions[:4]) == [f"{', '.join(regions[:4])}: {unreadable}"]
