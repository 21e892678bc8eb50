"""The pure planners behind the fleet shape and day two: batches, stacks, leftovers."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from perfops_cdk.errors import PerfOpsError
from perfops_cdk.operations.loading import concurrently
from perfops_cdk.planners import batches, changes, leftovers, stacks
from perfops_cdk.planners.leftovers import Resource
from perfops_cdk.props.regions import DEFAULT_REGIONS


@pytest.mark.parametrize(
    ("total", "size", "on_demand", "expected"),
    [
        (0, 25, 0, []),
        (10, 25, 10, [("0", 10, 10)]),
        (25, 25, 0, [("0", 25, 0)]),
        (60, 25, 30, [("0", 25, 25), ("1", 25, 5), ("2", 10, 0)]),
        (260, 25, 0, [(str(i), 25, 0) for i in range(10)] + [("10", 10, 0)]),
    ],
)
def test_split_fills_full_batches_first_and_on_demand_first(
    total: int, size: int, on_demand: int, expected: list[tuple[str, int, int]]
) -> None:
    """Hosts go in batches of ``size`` under stable keys; on-demand fills the first."""
    assert [(b.key, b.hosts, b.on_demand) for b in batches.split(total, size, on_demand)] == (
        expected
    )


def test_adding_hosts_keeps_every_full_batch() -> None:
    """250 -> 260 hosts: the 10 full batches stay as they were, one new batch appears."""
    before = batches.split(250, 25, 0)
    after = batches.split(260, 25, 0)
    assert after[: len(before)] == before
    assert after[len(before) :] == [batches.Batch("10", 10, 0)]


@pytest.mark.parametrize(
    ("total", "spot", "base", "percent", "expected"),
    [
        (10, False, 0, 0, 10),
        (10, True, 0, 0, 0),
        (10, True, 3, 0, 3),
        (10, True, 3, 50, 7),  # 3 + ceil(7 * 0.5)
        (2, True, 5, 100, 2),
        (10, True, 0, 100, 10),
    ],
)
def test_on_demand_hosts_is_base_then_a_share_of_the_rest(
    total: int, spot: bool, base: int, percent: int, expected: int
) -> None:
    """All on-demand without spot; with spot, the base first, then the share, rounded up."""
    assert batches.on_demand_hosts(total, spot=spot, base=base, percent=percent) == expected


def _state(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resources": list(resources)}


FLEET_STATE = _state(
    {
        "mode": "managed",
        "type": "aws_ec2_fleet",
        "name": "web_hosts",
        "instances": [
            {
                "index_key": "0",
                "attributes": {
                    "id": "fleet-1",
                    "fleet_instance_set": [{"instance_ids": ["i-1", "i-2"]}],
                    "target_capacity_specification": [{"total_target_capacity": 2}],
                },
            },
            {
                "index_key": "1",
                "attributes": {
                    "id": "fleet-2",
                    "fleet_instance_set": [{"instance_ids": ["i-3"]}],
                    "target_capacity_specification": [{"total_target_capacity": 2}],
                },
            },
        ],
    },
    {
        "mode": "managed",
        "type": "aws_security_group",
        "name": "web_allow-egress",
        "instances": [{"attributes": {"id": "sg-1"}}],
    },
    {
        "mode": "data",
        "type": "aws_ami",
        "name": "web_ami",
        "instances": [{"attributes": {"id": "ami-1"}}],
    },
)


def test_known_ids_include_each_fleets_instances() -> None:
    """Every managed id of a state, and the hosts each fleet launched; data sources not."""
    assert leftovers.known_ids(FLEET_STATE) == {"fleet-1", "fleet-2", "i-1", "i-2", "i-3", "sg-1"}


def test_orphans_are_what_no_state_records() -> None:
    """Unknown instances and groups are orphans; attached volumes go with their host,
    an unattached one is always a leak; removal order puts fleets and hosts first."""
    found = [
        Resource("eu-west-1", "security-group", "sg-2"),
        Resource("eu-west-1", "instance", "i-1", "running"),
        Resource("eu-west-1", "instance", "i-9", "running"),
        Resource("eu-west-1", "volume", "vol-1", "in-use"),
        Resource("eu-west-1", "volume", "vol-2", "available"),
        Resource("eu-west-1", "fleet", "fleet-9", "active"),
    ]
    assert [r.id for r in leftovers.orphans(found, leftovers.known_ids(FLEET_STATE))] == [
        "fleet-9",
        "i-9",
        "sg-2",
        "vol-2",
    ]


def test_short_fleets_are_those_that_lost_or_never_got_hosts() -> None:
    """A fleet with a launched host gone, or fewer hosts than asked, is to be replaced."""
    wanted = {'aws_ec2_fleet.web_hosts["0"]': 2, 'aws_ec2_fleet.web_hosts["1"]': 2}
    assert leftovers.short_fleets(FLEET_STATE, {"i-1", "i-2", "i-3"}, wanted) == [
        'aws_ec2_fleet.web_hosts["1"]'
    ]
    assert leftovers.short_fleets(FLEET_STATE, {"i-2", "i-3"}, wanted) == [
        'aws_ec2_fleet.web_hosts["0"]',
        'aws_ec2_fleet.web_hosts["1"]',
    ]
    # what a fleet got is measured against the declaration, not what EC2 reads back
    assert leftovers.short_fleets(FLEET_STATE, {"i-1", "i-2", "i-3"}, {}) == []


def _note(region: str, deployments: dict[str, Any]) -> dict[str, Any]:
    return {
        "//": {
            "perfops": {
                "kind": "region",
                "app_stack": "perf-ops",
                "region": region,
                "uuid": "u1",
                "state_dir": "../../..",
                "deployments": deployments,
            }
        },
        "provider": {"aws": [{"region": region}]},
    }


GROUP = {
    "hosts": 3,
    "ami": "ami-1",
    "instance_types": ["t3.micro"],
    "security_groups": ["perf-ops-u1-perf-ops-web-allow-egress"],
    "batches": {"0": 3},
}
MANIFEST = {
    "stacks": {
        "perf-ops": {"dependencies": []},
        "perf-ops-eu-west-1": {"dependencies": []},
        "user-stack": {"dependencies": ["perf-ops-eu-west-1"]},
    }
}
JSONS = {
    "perf-ops": {"//": {"perfops": {"kind": "app", "uuid": "u1"}}, "terraform": {}},
    "perf-ops-eu-west-1": _note("eu-west-1", {"web": GROUP}),
    "user-stack": {"resource": {"null_resource": {}}},
}


def test_read_units_tells_region_app_and_plain_stacks_apart() -> None:
    """Region stacks carry their host groups; an app stack with only a backend has no
    content; other cdktf stacks are plain units with their dependencies."""
    units = {u.name: u for u in stacks.read_units(MANIFEST, JSONS)}
    assert units["perf-ops"].kind == stacks.APP and not units["perf-ops"].has_content
    region = units["perf-ops-eu-west-1"]
    assert (region.kind, region.region, region.uuid, region.hosts) == (
        stacks.REGION,
        "eu-west-1",
        "u1",
        3,
    )
    assert region.groups[0].batches == {"0": 3}
    assert units["user-stack"].kind == stacks.PLAIN
    assert units["user-stack"].dependencies == ("perf-ops-eu-west-1",)


def test_tombstones_are_recorded_stacks_the_app_no_longer_has() -> None:
    """Ledger entries without a synthesized stack become tombstones with their uuid."""
    units = stacks.read_units(MANIFEST, JSONS)
    recorded = [
        ("perf-ops-eu-west-1", "perf-ops", "eu-west-1", "u1"),
        ("old-us-east-1", "old", "us-east-1", ""),
    ]
    [tomb] = stacks.tombstones(recorded, units, {"old": "u1"})
    assert (tomb.name, tomb.kind, tomb.app_stack, tomb.region, tomb.uuid) == (
        "old-us-east-1",
        stacks.TOMBSTONE,
        "old",
        "us-east-1",
        "u1",
    )


def test_select_takes_a_stack_with_its_region_stacks_and_refuses_unknown_names() -> None:
    """--stack picks a PerfOpsStack and its regions, or one stack by name; a typo is one
    line naming what exists and the closest match."""
    units = stacks.read_units(MANIFEST, JSONS)
    assert [u.name for u in stacks.select(units, "perf-ops")] == ["perf-ops", "perf-ops-eu-west-1"]
    assert [u.name for u in stacks.select(units, "user-stack")] == ["user-stack"]
    with pytest.raises(PerfOpsError) as caught:
        stacks.select(units, "perf-opz")
    assert str(caught.value) == (
        "--stack: 'perf-opz' is not a stack of this app; known: perf-ops, "
        "perf-ops-eu-west-1, user-stack; did you mean 'perf-ops'?"
    )


def test_waves_respect_dependencies_and_reverse_for_destroy() -> None:
    """A stack runs after what it depends on; destroying runs the other way round."""
    units = stacks.read_units(MANIFEST, JSONS)
    names = [[u.name for u in wave] for wave in stacks.waves(units)]
    assert names == [["perf-ops", "perf-ops-eu-west-1"], ["user-stack"]]
    backwards = [[u.name for u in wave] for wave in stacks.waves(units, reverse=True)]
    assert backwards == [["user-stack"], ["perf-ops", "perf-ops-eu-west-1"]]


def test_plan_summary_is_a_line_per_deployment_with_hosts_launched() -> None:
    """Resource changes read as per-deployment counts; fleet bookkeeping is left out."""
    [unit] = [u for u in stacks.read_units(MANIFEST, JSONS) if u.kind == stacks.REGION]
    planned = [
        ('aws_ec2_fleet.web_hosts["0"]', "create"),
        ("aws_launch_template.web_template", "create"),
        ("aws_security_group.web_allow-egress", "create"),
        ('terraform_data.web_spec["0"]', "create"),
        ('aws_ec2_fleet.old_hosts["0"]', "delete"),
    ]
    assert changes.describe(unit, planned) == [
        "perf-ops-eu-west-1  old: destroy 1",
        "perf-ops-eu-west-1  web: create 3; launches 3 host(s)",
    ]
    assert changes.totals(planned) == "3 to create, 1 to destroy"


def test_matches_compares_live_hosts_and_groups_with_the_declaration() -> None:
    """A region matches when each deployment has its hosts live and its groups exist."""
    [unit] = [u for u in stacks.read_units(MANIFEST, JSONS) if u.kind == stacks.REGION]
    group = Resource(
        "eu-west-1", "security-group", "sg-1", name="perf-ops-u1-perf-ops-web-allow-egress"
    )
    hosts = [
        Resource("eu-west-1", "instance", f"i-{n}", "running", deployment="web") for n in range(3)
    ]
    assert leftovers.matches(unit.groups, [group, *hosts])
    assert not leftovers.matches(unit.groups, [group, *hosts[:2]])
    assert not leftovers.matches(unit.groups, hosts)


def test_region_stacks_weigh_their_deployments_blocks() -> None:
    """A region stack's weight counts each deployment's security groups and fleets and
    its five other blocks; stacks without host groups weigh nothing."""
    big = {**GROUP, "hosts": 60, "batches": {"0": 25, "1": 25, "2": 10}}
    jsons = {**JSONS, "perf-ops-eu-west-1": _note("eu-west-1", {"web": GROUP, "api": big})}
    units = {u.name: u for u in stacks.read_units(MANIFEST, jsons)}
    assert units["perf-ops-eu-west-1"].weight == (1 + 1 + 5) + (1 + 3 + 5)
    assert units["perf-ops"].weight == units["user-stack"].weight == 0


def test_concurrently_starts_the_heaviest_first_and_answers_in_item_order() -> None:
    """A heavy region started last runs alone at the end while the other workers stand
    idle: with a weight, work starts heaviest first (ties in item order)."""
    started: list[str] = []
    weights = {"a": 1, "b": 7, "c": 0, "d": 7, "e": 3}

    def work(item: str) -> str:
        started.append(item)
        return item.upper()

    items = list(weights)
    assert concurrently(items, work, 1, weight=weights.__getitem__) == ["A", "B", "C", "D", "E"]
    assert started == ["b", "d", "e", "a", "c"]
    started.clear()
    assert concurrently(items, work, 1) == ["A", "B", "C", "D", "E"]
    assert started == items


def test_progress_names_a_stack_in_many_regions_once() -> None:
    """Region stacks of one PerfOpsStack in five regions or more read as one name and
    a count (17 region stacks were five lines of names, twice per deploy); fewer, and
    other stacks, by their names."""
    regions = DEFAULT_REGIONS[:17]
    many = [stacks.Unit(f"big-{r}", stacks.REGION, app_stack="big", region=r) for r in regions]
    few = [
        stacks.Unit(f"small-{r}", stacks.REGION, app_stack="small", region=r) for r in regions[:2]
    ]
    gone = stacks.Unit("big-me-south-1", stacks.TOMBSTONE, app_stack="big", region="me-south-1")
    plain = stacks.Unit("user-stack", stacks.PLAIN)
    assert stacks.names_text([*many, *few, gone, plain]) == (
        "big in 18 regions, small-ap-northeast-1, small-ap-northeast-2, user-stack"
    )
    assert stacks.names_text(many[:4]) == ", ".join(u.name for u in many[:4])


def _managed(kind: str, name: str, *instances: dict[str, Any]) -> dict[str, Any]:
    return {"mode": "managed", "type": kind, "name": name, "instances": list(instances)}


REGION_STATE = {
    "resources": [
        {"mode": "data", "type": "aws_ami", "name": "web_ami", "instances": [{}]},
        _managed("aws_security_group", "web_allow-egress", {"attributes": {"id": "sg-1"}}),
        _managed("aws_launch_template", "web_template", {"attributes": {"id": "lt-1"}}),
        _managed("terraform_data", "web_spec", {"attributes": {"id": "spec"}}),
        _managed(
            "aws_ec2_fleet",
            "web_hosts",
            {
                "index_key": "0",
                "attributes": {
                    "id": "fleet-1",
                    "fleet_instance_set": [{"instance_ids": ["i-1", "i-2"]}],
                },
            },
            {"index_key": "1", "attributes": {"id": "fleet-2", "fleet_instance_set": []}},
        ),
    ]
}


def test_a_region_stack_of_perfops_blocks_is_torn_down_by_id() -> None:
    """Fleets with the instances they launched, the template and the group, in the
    order they can be deleted; the addresses are what Terraform would report."""
    found = leftovers.teardown(REGION_STATE, "eu-west-1")
    assert found is not None
    assert [(r.kind, r.id, r.region) for r in found.resources] == [
        ("fleet", "fleet-1", "eu-west-1"),
        ("fleet", "fleet-2", "eu-west-1"),
        ("instance", "i-1", "eu-west-1"),
        ("instance", "i-2", "eu-west-1"),
        ("launch-template", "lt-1", "eu-west-1"),
        ("security-group", "sg-1", "eu-west-1"),
    ]
    assert found.addresses == (
        "aws_security_group.web_allow-egress",
        "aws_launch_template.web_template",
        "terraform_data.web_spec",
        'aws_ec2_fleet.web_hosts["0"]',
        'aws_ec2_fleet.web_hosts["1"]',
    )
    assert leftovers.teardown({}, "eu-west-1") == leftovers.Teardown((), ())


def test_anything_else_in_a_region_stack_is_left_to_terraform() -> None:
    """A resource a user added to a region stack, or one without an id, goes through
    Terraform; so does a stack that protects a resource with prevent_destroy."""
    added = _managed("aws_eip", "extra", {"attributes": {"id": "eipalloc-1"}})
    assert leftovers.teardown({"resources": [*REGION_STATE["resources"], added]}, "x") is None
    odd = _managed("aws_security_group", "g", {"attributes": {}})
    assert leftovers.teardown({"resources": [odd]}, "x") is None
    guarded = {"resource": {"aws_launch_template": {"t": {"lifecycle": {"prevent_destroy": True}}}}}
    assert leftovers.guarded(guarded)
    assert not leftovers.guarded({"resource": {"aws_launch_template": {"t": {"name": "t"}}}})


def _region_unit(region: str) -> stacks.Unit:
    [unit] = [u for u in stacks.read_units(MANIFEST, JSONS) if u.kind == stacks.REGION]
    return attrs.evolve(unit, name=f"perf-ops-{region}", region=region)


def test_plan_summary_folds_a_deployment_changed_alike_in_many_regions() -> None:
    """400 hosts in 17 regions was 68 lines to confirm: a deployment with the same kinds
    of change in five regions or more is one line, counts and hosts summed; one that
    changes differently somewhere keeps that region's line."""
    regions = DEFAULT_REGIONS[:17]
    created = [
        ('aws_ec2_fleet.web_hosts["0"]', "create"),
        ("aws_launch_template.web_template", "create"),
        ("aws_security_group.web_allow-egress", "create"),
    ]
    plans = [(_region_unit(r), created) for r in regions[:16]]
    plans.append((_region_unit(regions[16]), [('aws_ec2_fleet.web_hosts["0"]', "replace")]))
    assert changes.summary(plans) == [
        f"perf-ops in {', '.join(regions[:16])}  web: create 48; launches 48 host(s)",
        f"perf-ops-{regions[16]}  web: replace 1; launches 3 host(s)",
    ]
    every = [(_region_unit(r), created) for r in regions]
    assert changes.summary(every) == [
        "perf-ops in every region (17)  web: create 51; launches 51 host(s)"
    ]
    few = every[:4]
    assert changes.summary(few) == [line for u, p in few for line in changes.describe(u, p)]


def test_outcomes_fold_region_stacks_that_did_alike() -> None:
    """A deploy of 17 regions printed 17 lines of `N added, 0 changed, 0 destroyed`:
    region stacks of one app stack that did the same kinds of change in five regions or
    more are one line, counts summed, their times as a range; a stack that did
    something else keeps its line, and so does a non-region stack. `every region` is
    said against every region stack of the run, applied or not."""
    regions = DEFAULT_REGIONS[:17]
    done = [changes.Done(_region_unit(r), 20, 0, 0, 9.0 + n) for n, r in enumerate(regions)]
    done[3] = changes.Done(_region_unit(regions[3]), 2, 0, 1, 4.0)
    app = changes.Done(stacks.Unit("perf-ops", stacks.APP), 1, 0, 0, 2.0)
    units = [d.unit for d in done]
    others = ", ".join(r for r in regions if r != regions[3])
    assert changes.outcomes([*done, app], units) == [
        f"perf-ops in {others}: 320 added, 0 changed, 0 destroyed (9-25 s each)",
        f"perf-ops-{regions[3]}: 2 added, 0 changed, 1 destroyed (4 s)",
        "perf-ops: 1 added, 0 changed, 0 destroyed (2 s)",
    ]
    done[3] = changes.Done(_region_unit(regions[3]), 20, 0, 0, 12.0)
    assert changes.outcomes(done, units) == [
        "perf-ops in every region (17): 340 added, 0 changed, 0 destroyed (9-25 s each)"
    ]
    # One region stack had nothing to do (not applied): the others are not every region.
    assert changes.outcomes(done[1:], units) == [
        f"perf-ops in {', '.join(regions[1:])}: 320 added, 0 changed, 0 destroyed (10-25 s each)"
    ]
    assert changes.outcomes(done[:4], units) == [
        f"perf-ops-{r}: 20 added, 0 changed, 0 destroyed ({s} s)"
        for r, s in zip(regions[:4], (9, 10, 11, 12), strict=True)
    ]
