"""Pure planning for fleet access: targets, indices, ssh config, client sums."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners import hosts as plan
from perfops_cdk.planners.clients import ClientRow, HostStatus, client_rows
from perfops_cdk.planners.hosts import FleetHost, Instance, StackScope, Target

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SCOPES = (StackScope("perf-ops", "u1", ("eu-west-1", "us-east-1")),)


def instance(
    instance_id: str,
    *,
    deployment: str = "web",
    region: str = "eu-west-1",
    state: str = "running",
    minutes: int = 0,
    stack: str | None = None,
    uuid: str = "u1",
    containers: int = 10,
    public_ip: str | None = "54.0.0.1",
    key_name: str | None = "k",
) -> Instance:
    return Instance(
        instance_id=instance_id,
        region=region,
        state=state,
        uuid=uuid,
        stack_tag=stack,
        deployment=deployment,
        image="node-v1",
        name=f"perf-ops-{uuid}-{deployment}",
        containers=containers,
        public_ip=public_ip,
        private_ip="10.0.0.1",
        availability_zone=f"{region}a",
        launch_time=T0 + timedelta(minutes=minutes),
        key_name=key_name,
    )


def labels(hosts: list[FleetHost]) -> list[str]:
    return [h.label for h in hosts]


def test_index_follows_launch_time_then_instance_id() -> None:
    """Indices number live hosts by (launch time, id); stopped ones get none and sort last."""
    placed = plan.index_hosts(
        [
            instance("i-00000000000000003", minutes=0),
            instance("i-00000000000000001", minutes=5),
            instance("i-00000000000000002", minutes=0),
            instance("i-00000000000000009", minutes=-10, state="stopped"),
            instance("i-00000000000000004", minutes=1, state="pending"),
        ],
        SCOPES,
    )
    assert [(h.index, h.instance.instance_id) for h in placed] == [
        (0, "i-00000000000000002"),
        (1, "i-00000000000000003"),
        (2, "i-00000000000000004"),
        (3, "i-00000000000000001"),
        (None, "i-00000000000000009"),
    ]
    assert placed[-1].label == "i-00000000000000009"
    assert placed[0].ssh_name == "perfops-web-eu-west-1-0"


def test_indices_count_per_stack_deployment_and_region() -> None:
    """Each (stack, deployment, region) group starts at index 0."""
    placed = plan.index_hosts(
        [
            instance("i-0000000000000000a", region="us-east-1"),
            instance("i-0000000000000000b"),
            instance("i-0000000000000000c", deployment="db"),
            instance("i-0000000000000000d", stack="other"),
        ],
        SCOPES,
    )
    assert [(h.stack, h.label) for h in placed] == [
        ("other", "web/eu-west-1/0"),
        ("perf-ops", "db/eu-west-1/0"),
        ("perf-ops", "web/eu-west-1/0"),
        ("perf-ops", "web/us-east-1/0"),
    ]


STACK_CASES: dict[str, tuple[Instance, tuple[StackScope, ...], str]] = {
    "tag wins": (instance("i-00000000000000001", stack="s9"), SCOPES, "s9"),
    "no tag, the only stack": (instance("i-00000000000000001"), SCOPES, "perf-ops"),
    "no tag, the stack using the region": (
        instance("i-00000000000000001", region="us-east-1"),
        (StackScope("a", "u1", ("eu-west-1",)), StackScope("b", "u1", ("us-east-1",))),
        "b",
    ),
    "no tag, unknown uuid": (instance("i-00000000000000001", uuid="zz"), SCOPES, "?"),
}


@pytest.mark.parametrize("case", sorted(STACK_CASES))
def test_stack_of_a_host(case: str) -> None:
    """A host's stack is its stack tag, else the stack of its uuid (and region)."""
    one, scopes, expected = STACK_CASES[case]
    assert plan.index_hosts([one], scopes)[0].stack == expected


FLEET = plan.index_hosts(
    [
        instance("i-00000000000000001"),
        instance("i-00000000000000002", minutes=1),
        instance("i-00000000000000003", region="us-east-1"),
        instance("i-00000000000000004", deployment="db"),
        instance("i-00000000000000005", state="stopped"),
    ],
    SCOPES,
)

SELECT_CASES: dict[str, tuple[str, list[str]]] = {
    "deployment": ("web", ["web/eu-west-1/0", "web/eu-west-1/1", "web/us-east-1/0"]),
    "deployment/region": ("web/eu-west-1", ["web/eu-west-1/0", "web/eu-west-1/1"]),
    "one host": ("web/eu-west-1/1", ["web/eu-west-1/1"]),
    "instance id": ("i-00000000000000004", ["db/eu-west-1/0"]),
}


@pytest.mark.parametrize("case", sorted(SELECT_CASES))
def test_target_selects_hosts(case: str) -> None:
    """Each target form names the live hosts it should."""
    text, expected = SELECT_CASES[case]
    assert labels(plan.select(FLEET, Target.parse(text))) == expected


BAD_TARGETS: dict[str, tuple[str, str]] = {
    "unknown deployment": ("wbe", "no live hosts of deployment 'wbe' (deployments with hosts:"),
    "suggestion": ("wbe", "did you mean 'web'?"),
    "unknown region": ("web/eu-west-2", "has no live hosts in 'eu-west-2' (it has hosts in:"),
    "index out of range": ("web/eu-west-1/7", "has hosts 0..1; there is no index 7"),
    "index not a number": ("web/eu-west-1/x", "index 'x' must be a number"),
    "too many parts": ("a/b/1/2", "expected DEPLOYMENT"),
    "empty part": ("web//1", "expected DEPLOYMENT"),
    "unknown id": ("i-0000000000000ffff", "no host of this project has that id"),
}


@pytest.mark.parametrize("case", sorted(BAD_TARGETS))
def test_bad_target_is_one_line_naming_what_exists(case: str) -> None:
    """A target that names nothing fails with one line saying what there is."""
    text, expected = BAD_TARGETS[case]
    with pytest.raises(PerfOpsError) as raised:
        plan.select(FLEET, Target.parse(text))
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_select_all_states_includes_stopped_hosts() -> None:
    """`perfops hosts web` lists a stopped host too; ssh targets do not."""
    assert "i-00000000000000005" in labels(plan.select(FLEET, Target.parse("web"), live_only=False))


def test_same_group_in_two_stacks_needs_a_stack() -> None:
    """Labels would clash when two stacks have the deployment in one region: refused."""
    clash = plan.index_hosts(
        [instance("i-00000000000000001", stack="a"), instance("i-00000000000000002", stack="b")],
        SCOPES,
    )
    with pytest.raises(PerfOpsError, match="pick one with --stack"):
        plan.select(clash, Target.parse("web"))


def test_ssh_config_has_one_block_per_live_host_with_an_ip(tmp_path: Path) -> None:
    """Blocks carry HostName, User, key, project known_hosts and the id as key alias."""
    hosts = plan.index_hosts(
        [
            instance("i-00000000000000001", public_ip="54.0.0.1"),
            instance("i-00000000000000002", minutes=1, public_ip=None),
            instance("i-00000000000000003", state="stopped"),
        ],
        SCOPES,
    )
    key = tmp_path / "my key"
    known = tmp_path / "known_hosts"
    entries = [
        (h, plan.ssh_options(h, user="root", identity=key, known_hosts=known)) for h in hosts
    ]
    text = plan.render_ssh_config(entries)
    assert text.count("\nHost ") == 1
    block = text.split("Host perfops-web-eu-west-1-0\n", 1)[1].split("\n\n")[0]
    assert block.splitlines() == [
        "  HostName 54.0.0.1",
        "  User root",
        f'  IdentityFile "{key}"',
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {known}",
        "  StrictHostKeyChecking accept-new",
        "  HostKeyAlias i-00000000000000001",
        "  HashKnownHosts no",
        "  CheckHostIP no",
    ]
    assert "# web/eu-west-1/1 (i-00000000000000002): no public IP address" in text
    assert "StrictHostKeyChecking no" not in text


def test_ssh_options_without_a_key_leave_it_to_the_agent(tmp_path: Path) -> None:
    """No identity: no IdentityFile, no IdentitiesOnly (ssh offers the agent's keys)."""
    host = plan.index_hosts([instance("i-00000000000000001")], SCOPES)[0]
    keys = dict(plan.ssh_options(host, user="ops", identity=None, known_hosts=tmp_path / "k"))
    assert "IdentityFile" not in keys and "IdentitiesOnly" not in keys
    assert keys["User"] == "ops"


def test_hosts_document_is_version_1_with_every_field() -> None:
    """The --json document has version 1, the stacks looked at and documented host keys."""
    document = plan.hosts_document(FLEET, SCOPES)
    assert document["version"] == 1
    assert document["stacks"] == [
        {"stack": "perf-ops", "uuid": "u1", "regions": ["eu-west-1", "us-east-1"]}
    ]
    first: dict[str, Any] = document["hosts"][0]  # type: ignore[index]
    assert set(first) == {
        "stack",
        "deployment",
        "region",
        "index",
        "label",
        "ssh_name",
        "instance_id",
        "state",
        "public_ip",
        "private_ip",
        "availability_zone",
        "launch_time",
        "containers",
        "key_name",
        "image",
        "name",
        "uuid",
        "lifetime",
        "expires",
    }
    assert first["launch_time"] == "2026-11-27T12:00:00Z"
    json.dumps(document)


def test_instance_from_ec2_reads_tags_and_normalizes_time() -> None:
    """DescribeInstances fields and tags map onto an Instance; launch time is UTC."""
    raw = {
        "InstanceId": "i-00000000000000001",
        "State": {"Name": "running"},
        "PublicIpAddress": "54.1.2.3",
        "PrivateIpAddress": "10.1.2.3",
        "Placement": {"AvailabilityZone": "eu-west-1b"},
        "LaunchTime": datetime(2026, 11, 27, 13, 0, tzinfo=UTC).astimezone(),
        "KeyName": "k",
        "Tags": [
            {"Key": "perf-ops", "Value": "u1"},
            {"Key": "deployment", "Value": "web"},
            {"Key": "perf-ops-containers", "Value": "250"},
        ],
    }
    made = Instance.from_ec2("eu-west-1", raw)
    assert (made.deployment, made.containers, made.stack_tag) == ("web", 250, None)
    assert made.launch_time == datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    assert made.launch_time.tzinfo == UTC


def status_document(*services: dict[str, Any], present: bool = True) -> bytes:
    return json.dumps(
        {"version": 1, "specPresent": present, "specError": None, "services": list(services)}
    ).encode()


def service(
    name: str = "k6",
    *,
    state: str = "applied",
    declared: int = 10,
    created: int = 10,
    running: int = 10,
    auto: bool = True,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "state": state,
        "autoStart": auto,
        "declared": declared,
        "created": created,
        "running": running,
        "lastError": error,
    }


BEHIND_CASES: dict[str, tuple[HostStatus, bool, str | None]] = {
    "all running": (HostStatus.from_run(0, status_document(service()), ""), False, None),
    "one not running": (
        HostStatus.from_run(0, status_document(service(running=9)), ""),
        True,
        None,
    ),
    "autoStart off, none running": (
        HostStatus.from_run(0, status_document(service(running=0, auto=False)), ""),
        False,
        None,
    ),
    "failed service": (
        HostStatus.from_run(
            0, status_document(service(state="failed", created=0, running=0, error="boom")), ""
        ),
        True,
        "k6: boom",
    ),
    "unreachable": (
        HostStatus.from_run(255, b"", "ssh: connect to host x: Connection refused"),
        True,
        "ssh: connect to host x: Connection refused",
    ),
    "no spawner": (HostStatus.from_run(127, b"", "sh: not found"), True, "not found"),
    "garbage": (HostStatus.from_run(0, b"{", ""), True, "unreadable --status output"),
    "no spec, containers declared": (
        HostStatus.from_run(0, status_document(present=False), ""),
        True,
        "no containers.json",
    ),
}


@pytest.mark.parametrize("case", sorted(BEHIND_CASES))
def test_host_status_behind_and_first_error(case: str) -> None:
    """A host is behind when its spawner is short of the tag, failed, or did not answer."""
    status, behind, error = BEHIND_CASES[case]
    assert status.behind(10) is behind
    if error is None:
        assert status.first_error is None
    else:
        assert status.first_error is not None and error in status.first_error


def test_client_rows_sum_per_deployment_and_region() -> None:
    """Declared comes from the tags, created/running from statuses; first error is labelled."""
    hosts = plan.index_hosts(
        [
            instance("i-00000000000000001"),
            instance("i-00000000000000002", minutes=1),
            instance("i-00000000000000003", minutes=2),
            instance("i-00000000000000004", region="us-east-1"),
        ],
        SCOPES,
    )
    statuses = {
        "i-00000000000000001": HostStatus.from_run(0, status_document(service()), ""),
        "i-00000000000000002": HostStatus.from_run(
            0, status_document(service(state="failed", created=4, running=4, error="e1")), ""
        ),
        "i-00000000000000003": HostStatus.from_run(255, b"", "refused"),
        "i-00000000000000004": HostStatus.from_run(0, status_document(service()), ""),
    }
    assert client_rows(hosts, statuses) == [
        ClientRow("perf-ops", "web", "eu-west-1", 3, 30, 14, 14, 2, 1, "web/eu-west-1/1: k6: e1"),
        ClientRow("perf-ops", "web", "us-east-1", 1, 10, 10, 10, 0, 0, None),
    ]
