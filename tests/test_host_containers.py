"""HostContainers: validation at synth, the user data it adds, and what status shows."""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from perfops_cdk import (
    App,
    ContainerService,
    Deployment,
    HostContainers,
    ImageAsset,
    InvalidField,
    PerfOpsStack,
    UserDataPart,
)
from perfops_cdk.app import synth
from perfops_cdk.cli import main as cli
from perfops_cdk.effects.terraform import Workspace
from perfops_cdk.operations.status import Status
from perfops_cdk.planners import containers as plan
from perfops_cdk.planners.stacks import HostGroup, read_units
from perfops_cdk.planners.status import Host, StatusRow, status_rows
from perfops_cdk.planners.user_data import render_user_data
from perfops_cdk.props.instance_types import memory_mib

PATH = "perf-ops/load/clients"
AMI = "ami-0123456789abcdef0"


def service(**changes: Any) -> ContainerService:
    fields: dict[str, Any] = dict(
        name="k6-set-1",
        entry_folder="k6",
        container_name_prefix="a",
        host_address="10.254.0.1",
        network="10.254.1",
        container_count=125,
    )
    return ContainerService(**{**fields, **changes})


def second(**changes: Any) -> ContainerService:
    """A service that fits beside ``service()``: a126..a250 at .126 ... .250."""
    fields: dict[str, Any] = dict(name="k6-set-2", container_name_start_num=126, ip_start_addr=126)
    return service(**{**fields, **changes})


def new_stack(
    tmp_path: Path, container_modules: tuple[str, ...] | None = ("k6",)
) -> tuple[App, PerfOpsStack]:
    app = App(outdir=str(tmp_path / "out"))
    stack = PerfOpsStack(app, "perf-ops", uuid="abcd1234", project_dir=tmp_path)
    ImageAsset.from_ami_ids(
        stack,
        "image",
        name="load-v1",
        ami_ids={"eu-west-1": AMI, "us-east-1": AMI},
        container_modules=container_modules,
    )
    return app, stack


def new_deployment(stack: PerfOpsStack, **changes: Any) -> Deployment:
    image = ImageAsset.all_in(stack)[0]
    props: dict[str, Any] = dict(
        image=image, instance_type="r5d.2xlarge", regions={"eu-west-1": 2, "us-east-1": 1}
    )
    return Deployment(stack, "load", **{**props, **changes})


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    return new_deployment(new_stack(tmp_path)[1])


def rejects(
    deployment: Deployment, services: list[ContainerService], field: str, value: Any, **kw: Any
) -> InvalidField:
    """HostContainers raises one line naming path, field and value, and adds nothing."""
    parts_before = deployment.user_data_parts
    with pytest.raises(InvalidField) as caught:
        HostContainers(deployment, "clients", services=services, **kw)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{PATH}: {field}: {value!r} is not allowed; "), message
    assert deployment.user_data_parts == parts_before
    assert deployment.instance_tags == {}
    assert deployment.node.try_find_child("clients") is None
    return caught.value


# --- bad input, one test each --------------------------------------------------------


def test_rejects_prefix_longer_than_four_chars(deployment: Deployment) -> None:
    """A five-char prefix is refused before any container is named."""
    rejects(
        deployment,
        [service(container_name_prefix="abcde")],
        "services[0].container_name_prefix",
        "abcde",
    )


def test_rejects_prefix_not_starting_with_a_letter(deployment: Deployment) -> None:
    """A prefix must start with a letter, as a container name must."""
    rejects(
        deployment, [service(container_name_prefix="1a")], "services[0].container_name_prefix", "1a"
    )


def test_rejects_container_names_longer_than_eleven_chars(deployment: Deployment) -> None:
    """abcd + 8 digits makes 12-char names, one more than ve-<name> allows."""
    error = rejects(
        deployment,
        [service(container_name_prefix="abcd", container_name_start_num=9999990)],
        "services[0].container_name_start_num",
        9999990,
    )
    assert "'abcd10000114'" in error.allowed


def test_rejects_container_count_over_250(deployment: Deployment) -> None:
    """251 containers in one service exceed dbus's per-user default."""
    rejects(deployment, [service(container_count=251)], "services[0].container_count", 251)


def test_rejects_container_count_under_one(deployment: Deployment) -> None:
    """A service of zero containers is a mistake, not a no-op."""
    rejects(deployment, [service(container_count=0)], "services[0].container_count", 0)


def test_rejects_host_total_over_its_limit(deployment: Deployment) -> None:
    """Two services of 125 fit 250 but not a max_per_host of 200."""
    error = rejects(
        deployment, [service(), second()], "services", "250 containers", max_per_host=200
    )
    assert "at most 200" in error.allowed


def test_rejects_duplicate_container_names_on_a_host(deployment: Deployment) -> None:
    """Two services naming a126 in different networks still clash on the host."""
    error = rejects(
        deployment,
        [service(), second(container_name_start_num=125, network="10.254.2")],
        "services[1].container_name_prefix",
        "a",
    )
    assert "'a125'" in error.allowed


def test_rejects_overlapping_guest_ranges(deployment: Deployment) -> None:
    """.1-.125 and .100-.224 in one network share guest addresses."""
    error = rejects(
        deployment,
        [service(), second(ip_start_addr=100)],
        "services[1].ip_start_addr",
        100,
    )
    assert "10.254.1.100" in error.allowed


def test_rejects_guest_range_leaving_1_to_254(deployment: Deployment) -> None:
    """Starting at .200, 125 guests would run to .324."""
    rejects(deployment, [service(ip_start_addr=200)], "services[0].ip_start_addr", 200)


def test_rejects_guest_start_address_zero(deployment: Deployment) -> None:
    """.0 is the network address, not a guest."""
    rejects(deployment, [service(ip_start_addr=0)], "services[0].ip_start_addr", 0)


def test_rejects_host_address_inside_a_guest_range(deployment: Deployment) -> None:
    """The host side of the veths may not take a guest's address."""
    rejects(
        deployment,
        [service(host_address="10.254.1.7")],
        "services[0].host_address",
        "10.254.1.7",
    )


def test_rejects_malformed_network(deployment: Deployment) -> None:
    """A network is three octets, each at most 255."""
    rejects(deployment, [service(network="10.254.300")], "services[0].network", "10.254.300")


def test_rejects_network_of_four_octets(deployment: Deployment) -> None:
    """A CIDR-style or four-octet network is refused with the expected form."""
    error = rejects(
        deployment, [service(network="10.254.1.0")], "services[0].network", "10.254.1.0"
    )
    assert "10.254.1" in error.allowed


def test_rejects_malformed_host_address(deployment: Deployment) -> None:
    """A host address needs four octets."""
    rejects(deployment, [service(host_address="10.254.0")], "services[0].host_address", "10.254.0")


def test_rejects_entry_folder_not_baked_into_the_image(deployment: Deployment) -> None:
    """An image declaring container_modules=['k6'] cannot run cardano-node clients."""
    error = rejects(
        deployment,
        [service(entry_folder="cardano-node")],
        "services[0].entry_folder",
        "cardano-node",
    )
    assert "'load-v1'" in error.allowed and "k6" in error.allowed


def test_skips_entry_folder_check_when_the_image_does_not_declare_its_modules(
    tmp_path: Path,
) -> None:
    """from_ami_ids without container_modules means unknown: any folder is accepted."""
    _, stack = new_stack(tmp_path, container_modules=None)
    clients = HostContainers(
        new_deployment(stack), "clients", services=[service(entry_folder="cardano-node")]
    )
    assert clients.containers_per_host == 125


def test_rejects_service_name_that_is_not_a_systemd_unit_name(deployment: Deployment) -> None:
    """A space or slash cannot be part of perfops-containers-<name>.service."""
    rejects(deployment, [service(name="k6 set/1")], "services[0].name", "k6 set/1")


def test_rejects_duplicate_service_names(deployment: Deployment) -> None:
    """Two services of one name would share one systemd unit."""
    rejects(deployment, [service(), second(name="k6-set-1")], "services[1].name", "k6-set-1")


def test_rejects_memory_above_the_instance_types(tmp_path: Path) -> None:
    """250 clients of 128 MiB do not fit a t3.large's 8 GiB."""
    deployment = new_deployment(new_stack(tmp_path)[1], instance_type="t3.large")
    error = rejects(deployment, [service(), second()], "services", "32000 MiB for 250 containers")
    assert "t3.large has 8192 MiB" in error.allowed


def test_memory_per_client_is_a_prop(tmp_path: Path) -> None:
    """At 32 MiB a client, 250 of them fit a t3.large."""
    deployment = new_deployment(new_stack(tmp_path)[1], instance_type="t3.large")
    services = [service(memory_per_client_mib=32), second(memory_per_client_mib=32)]
    assert HostContainers(deployment, "clients", services=services).containers_per_host == 250


def test_skips_memory_check_for_an_unknown_instance_type(tmp_path: Path) -> None:
    """A type missing from the table is not an error; its memory is just not checked."""
    assert memory_mib("x2idn.metal") is None
    deployment = new_deployment(new_stack(tmp_path)[1], instance_type="x2idn.metal")
    HostContainers(deployment, "clients", services=[service(memory_per_client_mib=10**6)])


def test_rejects_rendered_user_data_over_16_kb(deployment: Deployment) -> None:
    """Seventy one-container services render a spec over EC2's 16 KB limit."""
    services = [
        service(name=f"s{i}", container_count=1, container_name_start_num=i, ip_start_addr=i)
        for i in range(1, 71)
    ]
    error = rejects(deployment, services, "rendered user_data", error_value(deployment, services))
    assert "16384 bytes" in error.allowed


def error_value(deployment: Deployment, services: list[ContainerService]) -> str:
    part = plan.containers_part(plan.spec("load", services))
    rendered = render_user_data([*deployment.user_data_parts, part]) or ""
    return f"{len(rendered.encode())} bytes"


def test_rejects_environment_key_that_is_not_a_variable_name(deployment: Deployment) -> None:
    """Lowercase keys are not allowed, as the spawner would refuse them."""
    rejects(
        deployment,
        [service(environment={"k6_target": "x"})],
        "services[0].environment key",
        "k6_target",
    )


def test_rejects_environment_value_over_several_lines(deployment: Deployment) -> None:
    """A newline in a value would break the guests' environment."""
    rejects(
        deployment,
        [service(environment={"PERFOPS_K6_TARGET": "a\nb"})],
        "services[0].environment['PERFOPS_K6_TARGET']",
        "a\nb",
    )


def test_rejects_entry_file_that_is_not_nix(deployment: Deployment) -> None:
    """The entry file must be a .nix module."""
    rejects(deployment, [service(entry_file="wrapper.sh")], "services[0].entry_file", "wrapper.sh")


def test_rejects_a_second_host_containers_on_one_deployment(deployment: Deployment) -> None:
    """A host has one containers.json, so one HostContainers per deployment."""
    HostContainers(deployment, "clients", services=[service()])
    with pytest.raises(InvalidField, match=r"^perf-ops/load/more: scope: 'perf-ops/load' "):
        HostContainers(deployment, "more", services=[second()])


def test_rejects_a_deployment_part_named_like_host_containers_parts(tmp_path: Path) -> None:
    """A user part called nvme-raid0 would clash with HostContainers' own."""
    deployment = new_deployment(
        new_stack(tmp_path)[1], user_data=[UserDataPart(name="nvme-raid0", script="true")]
    )
    with pytest.raises(InvalidField, match=r"^perf-ops/load: user_data: 'nvme-raid0' "):
        HostContainers(deployment, "clients", services=[service()], nvme_raid0=True)
    assert [p.name for p in deployment.user_data_parts] == ["nvme-raid0"]
    assert deployment.node.try_find_child("clients") is None


def test_rejects_nvme_raid0_that_is_not_a_bool(deployment: Deployment) -> None:
    """A truthy string is not taken for True: the flag must be True or False."""
    rejects(deployment, [service()], "nvme_raid0", "yes", nvme_raid0="yes")


def test_rejects_empty_services(deployment: Deployment) -> None:
    """HostContainers without a service is a mistake."""
    rejects(deployment, [], "services", [])


def test_bad_input_leaves_an_earlier_synth_output_intact(tmp_path: Path) -> None:
    """A failing declaration exits before anything is written to cdktf.out."""
    outdir = tmp_path / "cdktf.out"

    def define(ok: bool) -> Callable[[App], None]:
        def run(app: App) -> None:
            stack = PerfOpsStack(app, "perf-ops", uuid="abcd1234", project_dir=tmp_path)
            ImageAsset.from_ami_ids(stack, "image", name="load-v1", ami_ids={"eu-west-1": AMI})
            deployment = new_deployment(stack, regions={"eu-west-1": 1})
            count = 125 if ok else 251
            HostContainers(deployment, "clients", services=[service(container_count=count)])

        return run

    synth(define(True), outdir)
    before = {p: p.read_bytes() for p in outdir.rglob("*") if p.is_file()}
    with pytest.raises(InvalidField):
        synth(define(False), outdir)
    assert {p: p.read_bytes() for p in outdir.rglob("*") if p.is_file()} == before


# --- what gets synthesized -------------------------------------------------------------


def synthesized(app: App, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Every synthesized stack's JSON by name."""
    app.synth()
    return {
        folder.name: json.loads((folder / "cdk.tf.json").read_text())
        for folder in (tmp_path / "out" / "stacks").iterdir()
    }


def templates(stacks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Region -> the load deployment's launch template."""
    return {
        name.removeprefix("perf-ops-"): data["resource"]["aws_launch_template"]["load_template"]
        for name, data in stacks.items()
        if "resource" in data
    }


def user_data_of(template: dict[str, Any]) -> str:
    return base64.b64decode(template["user_data"]).decode()


def host_groups(outdir: Path) -> list[HostGroup]:
    """What perfops status reads from a synthesized app."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = {
        name: json.loads((outdir / "stacks" / name / "cdk.tf.json").read_text())
        for name in manifest["stacks"]
    }
    return [g for unit in read_units(manifest, stacks) for g in unit.groups]


def spec_in(user_data: str) -> dict[str, Any]:
    found = re.search(r"<<'PERFOPS_SPEC'\n(.*)\nPERFOPS_SPEC\n", user_data)
    assert found is not None, user_data
    document: dict[str, Any] = json.loads(found.group(1))
    return document


def test_synthesized_templates_carry_the_spec_in_their_user_data(tmp_path: Path) -> None:
    """Every region's launch template holds the same spec and the spawner command."""
    app, stack = new_stack(tmp_path)
    services = [service(use_recent_state=True), second(environment={"PERFOPS_K6_TARGET": "u"})]
    HostContainers(new_deployment(stack), "clients", services=services)
    found = templates(synthesized(app, tmp_path))
    assert sorted(found) == ["eu-west-1", "us-east-1"]
    for template in found.values():
        user_data = user_data_of(template)
        assert user_data.startswith("#!/bin/sh\n")
        assert f"\n{plan.SPAWNER} {plan.SPEC_PATH}\n" in user_data
        document = spec_in(user_data)
        assert document == plan.spec("load", services)
        assert [s["containerCount"] for s in document["services"]] == [125, 125]
        assert document["services"][0]["useRecentState"] is True
        assert document["services"][1]["environment"] == {"PERFOPS_K6_TARGET": "u"}
        instance_tags = next(
            t["tags"] for t in template["tag_specifications"] if t["resource_type"] == "instance"
        )
        assert instance_tags["perf-ops-containers"] == "250"


def test_shell_expansions_reach_the_host_unchanged(tmp_path: Path) -> None:
    """${...} and %{ in user data reach the host as written: user data is base64 in the
    launch template, so Terraform never reads it as a template."""
    app, stack = new_stack(tmp_path)
    part = UserDataPart(name="shell", script='echo "${HOME}" %{x} $${y}\n')
    deployment = new_deployment(stack, user_data=[part])
    HostContainers(deployment, "clients", services=[service()], nvme_raid0=True)
    assert "${block##*/}" in (deployment.user_data or "")
    on_host = user_data_of(templates(synthesized(app, tmp_path))["eu-west-1"])
    assert 'echo "${HOME}" %{x} $${y}\n' in on_host
    assert "${block##*/}" in on_host
    assert on_host == deployment.user_data


def test_nvme_raid0_part_runs_before_containers_and_user_parts(tmp_path: Path) -> None:
    """RAID (order 10), then the user's own part (50), then the containers (80)."""
    _, stack = new_stack(tmp_path)
    deployment = new_deployment(
        stack, user_data=[UserDataPart(name="tuning", script="echo tuned\n")]
    )
    HostContainers(deployment, "clients", services=[service()], nvme_raid0=True)
    user_data = deployment.user_data or ""
    markers = [
        user_data.index(f" {name} ---") for name in ("nvme-raid0", "tuning", "host-containers")
    ]
    assert markers == sorted(markers)
    assert "raid_mount=/var/lib/nixos-containers\n" in user_data


def test_raid_mount_point_is_configurable(deployment: Deployment) -> None:
    """raid_mount_point moves the array, quoted for the shell."""
    HostContainers(
        deployment, "clients", services=[service()], nvme_raid0=True, raid_mount_point="/srv/x y"
    )
    assert "raid_mount='/srv/x y'\n" in (deployment.user_data or "")


def test_rejects_relative_raid_mount_point(deployment: Deployment) -> None:
    """The mount point must be an absolute path."""
    rejects(
        deployment,
        [service()],
        "raid_mount_point",
        "var/lib",
        nvme_raid0=True,
        raid_mount_point="var/lib",
    )


@pytest.mark.parametrize("count", [1, 9, 99, 100, 250])
def test_user_data_size_is_flat_in_container_count(count: int) -> None:
    """One service's part is the same size for 1 and for 250 containers (± digits)."""
    baseline = len(plan.containers_part(plan.spec("d", [service(container_count=1)])).script)
    size = len(plan.containers_part(plan.spec("d", [service(container_count=count)])).script)
    assert size - baseline <= 2


def test_four_services_of_250_fit_in_4_kb(tmp_path: Path) -> None:
    """1,000 containers' user data, RAID part included, stays under 4 KB."""
    _, stack = new_stack(tmp_path)
    deployment = new_deployment(stack, instance_type="r5d.24xlarge")
    services = [
        service(
            name=f"k6-set-{i}",
            container_name_prefix="abcd"[i],
            network=f"10.254.{i + 1}",
            container_count=250,
            environment={"PERFOPS_K6_TARGET": "http://10.0.0.5:8080/"},
        )
        for i in range(4)
    ]
    HostContainers(deployment, "clients", services=services, nvme_raid0=True, max_per_host=1000)
    assert len((deployment.user_data or "").encode()) <= 4096


# --- status ----------------------------------------------------------------------------


def test_status_shows_containers_planned_per_host_and_region(tmp_path: Path) -> None:
    """The region stacks record containers per host; a status row totals them."""
    app, stack = new_stack(tmp_path)
    HostContainers(new_deployment(stack), "clients", services=[service(), second()])
    synthesized(app, tmp_path)
    planned = host_groups(tmp_path / "out")
    assert [(p.region, p.hosts, p.containers_per_host) for p in planned] == [
        ("eu-west-1", 2, 250),
        ("us-east-1", 1, 250),
    ]
    live = [Host("i-1", "eu-west-1", "perf-ops", "load", "running", AMI, "r5d.2xlarge")]
    rows = status_rows(planned, live)
    assert [(r.region, r.running, r.containers_planned) for r in rows] == [
        ("eu-west-1", 1, 500),
        ("us-east-1", 0, 250),
    ]


def test_status_shows_no_containers_for_plain_deployments(tmp_path: Path) -> None:
    """A deployment without HostContainers plans 0 containers."""
    app, stack = new_stack(tmp_path)
    new_deployment(stack)
    synthesized(app, tmp_path)
    planned = host_groups(tmp_path / "out")
    assert planned and all(p.containers_per_host == 0 for p in planned)
    assert all(r.containers_planned == 0 for r in status_rows(planned, []))


def synth_demo_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """deployments.py synthesized with a recorded AMI for every region it uses."""
    import deployments
    from perfops_cdk.effects import state_file

    regions = ("eu-west-1", "eu-central-1", "us-east-1", "eu-west-2")
    record = state_file.ImageRecord(
        ami_name="perfops-demo-v1-x",
        home_region="eu-west-1",
        regions={r: state_file.RegionImage(ami_id=AMI, state="available") for r in regions},
    )
    state_file.save(
        tmp_path / "state.json", state_file.SyncState(images={"perfops-demo-v1": record})
    )
    monkeypatch.setenv("PERFOPS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("PERF_UUID", "abcd1234")
    monkeypatch.delenv("PERFOPS_AWS_ENDPOINT", raising=False)
    return synth(deployments.define, tmp_path / "cdktf.out")


def test_demo_fleet_plans_k6_clients_per_host_and_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deployments.py's fleet: 250 k6 clients per pre-sync host, 50 per full-sync host."""
    outdir = synth_demo_fleet(tmp_path, monkeypatch)
    planned = {(p.deployment, p.region): p.containers_per_host for p in host_groups(outdir)}
    assert planned == {
        ("fullSyncDeploy1", "eu-west-2"): 50,
        ("fullSyncDeploy1", "us-east-1"): 50,
        ("preSyncDeploy1", "eu-central-1"): 250,
        ("preSyncDeploy1", "eu-west-1"): 250,
        ("preSyncDeploy1", "us-east-1"): 250,
    }


@pytest.mark.terraform
@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_demo_fleet_validates_against_the_provider_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`terraform validate` accepts the user data and tags HostContainers adds."""
    stack_dir = synth_demo_fleet(tmp_path, monkeypatch) / "stacks" / "perf-ops-us-east-1"
    workspace = Workspace(stack_dir, tmp_path)
    workspace.init()
    report = workspace.validate()
    assert report["valid"] is True, report["diagnostics"]


def test_status_table_shows_containers_per_region_and_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The status table has a containers column: the row's total and the per-host count."""
    rows = (
        StatusRow("perf-ops", "load", "eu-west-1", 2, 1, AMI, ("i-1",), containers_per_host=250),
        StatusRow("perf-ops", "plain", "eu-west-1", 1, 0, AMI, ()),
    )
    cli.show_status(Status(rows=rows, regions=("eu-west-1",), synthesized=False))
    lines = capsys.readouterr().out.splitlines()
    assert "containers" in next(line for line in lines if "deployment" in line)
    assert "500 (250/host)" in next(line for line in lines if "load" in line)
    assert "250" not in next(line for line in lines if "plain" in line)
