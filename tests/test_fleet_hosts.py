"""`perfops hosts` against the emulator: hosts found by tags, indices, table, TSV, JSON."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from sshkit import ec2, launch, warm_emulator, write_project
from typer.testing import CliRunner

from perfops_cdk import fleet
from perfops_cdk.cli import fleet as fleet_cli
from perfops_cdk.cli.main import app
from perfops_cdk.effects import aws, ec2_hosts
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.errors import EffectError
from perfops_cdk.planners.clients import ClientRow
from perfops_cdk.project import Project

runner = CliRunner()
_UUIDS = (f"hosts{n}" for n in itertools.count(1))


@pytest.fixture
def uuid() -> str:
    """A deployer uuid of this test alone: its hosts are the only ones it finds."""
    return next(_UUIDS)


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _emulator_server: Emulator, uuid: str
) -> Iterator[Path]:
    root = write_project(tmp_path / "proj", uuid=uuid, regions=["eu-west-1", "us-east-1"])
    monkeypatch.chdir(root)
    with warm_emulator(_emulator_server):
        yield root


def test_hosts_are_found_by_tags_only(project: Path, uuid: str) -> None:
    """Other deployers' hosts, untagged ones and terminated ones are not listed."""
    west = ec2("eu-west-1")
    mine = launch(west, uuid=uuid, deployment="web", count=2, containers=25)
    launch(west, uuid=uuid + "x", deployment="web", count=1)
    launch(west, uuid=uuid, deployment="web", count=1, managed_by="someone-else")
    west.run_instances(ImageId="ami-03cf127a", MinCount=1, MaxCount=1)
    gone = launch(west, uuid=uuid, deployment="web", count=1)
    west.terminate_instances(InstanceIds=[gone[0]["InstanceId"]])
    east = launch(ec2("us-east-1"), uuid=uuid, deployment="db", count=1)

    found = fleet.load(Project.find(project))
    ids = {h.instance.instance_id for h in found.hosts}
    assert ids == {i["InstanceId"] for i in [*mine, *east]}
    assert {h.label for h in found.hosts} == {
        "web/eu-west-1/0",
        "web/eu-west-1/1",
        "db/us-east-1/0",
    }
    web0 = next(h for h in found.hosts if h.label == "web/eu-west-1/0")
    assert web0.instance.containers == 25
    assert web0.instance.public_ip is not None and web0.instance.key_name == "perfops-test"


def test_describe_regions_names_every_failed_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """A region that cannot be listed fails the call after all regions answered, naming each."""
    monkeypatch.setenv(aws.ENDPOINT_ENV, "http://127.0.0.1:9")  # nothing listens there
    real_client = aws.client
    monkeypatch.setattr(
        aws, "client", lambda service, region, **kw: real_client(service, region, max_attempts=1)
    )
    with pytest.raises(EffectError) as raised:
        ec2_hosts.describe_regions(["eu-west-1", "us-east-1"], ["u"], workers=2)
    message = str(raised.value)
    assert "2 region(s)" in message and "eu-west-1" in message and "us-east-1" in message


def test_hosts_piped_is_tab_separated_with_a_header(project: Path, uuid: str) -> None:
    """Piped output is a header line and one tab-separated row per host, ids whole."""
    launched = launch(ec2("eu-west-1"), uuid=uuid, deployment="web", count=2)
    result = runner.invoke(app, ["hosts"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == list(fleet_cli.HOST_COLUMNS)
    rows = [line.split("\t") for line in lines[1:]]
    # One launch time: the index order is the instance id order.
    assert [r[4] for r in rows] == sorted(i["InstanceId"] for i in launched)
    assert all(len(r) == len(fleet_cli.HOST_COLUMNS) for r in rows)
    assert [r[3] for r in rows] == ["0", "1"]


def test_hosts_json_is_the_documented_document(project: Path, uuid: str) -> None:
    """--json prints version 1 with the stacks looked at and each host's fields."""
    launch(ec2("us-east-1"), uuid=uuid, deployment="db", count=1, containers=250)
    result = runner.invoke(app, ["hosts", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["version"] == 1
    assert document["stacks"][0]["uuid"] == uuid
    [host] = document["hosts"]
    assert (host["label"], host["containers"], host["state"]) == ("db/us-east-1/0", 250, "running")
    assert host["ssh_name"] == "perfops-db-us-east-1-0"
    doc = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    assert all(f"`{key}`" in doc for key in host)


def test_hosts_filters_by_deployment_region_and_stack(project: Path, uuid: str) -> None:
    """DEPLOYMENT and --region narrow the list; --region queries only that region."""
    launch(ec2("eu-west-1"), uuid=uuid, deployment="web", count=1)
    launch(ec2("us-east-1"), uuid=uuid, deployment="web", count=1)
    launch(ec2("us-east-1"), uuid=uuid, deployment="db", count=1)
    by_deployment = runner.invoke(app, ["hosts", "web", "--json"])
    assert {h["label"] for h in json.loads(by_deployment.stdout)["hosts"]} == {
        "web/eu-west-1/0",
        "web/us-east-1/0",
    }
    by_region = runner.invoke(app, ["hosts", "--region", "us-east-1", "--json"])
    assert {h["label"] for h in json.loads(by_region.stdout)["hosts"]} == {
        "web/us-east-1/0",
        "db/us-east-1/0",
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["hosts", "--region", "eu-west-3"], "not a region this project's hosts use"),
        (["hosts", "--region", "eu-wset-1"], "did you mean 'eu-west-1'?"),
        (["hosts", "--stack", "nope"], "--stack: 'nope' is not a stack of this project"),
        (["hosts", "nodeploy"], "no hosts of deployment 'nodeploy'"),
        (["ssh", "web/eu-west-1/0/1"], "expected DEPLOYMENT"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    project: Path, uuid: str, args: list[str], expected: str
) -> None:
    """Unknown region, stack or deployment, or a malformed target: `error: ...`, exit 2."""
    launch(ec2("eu-west-1"), uuid=uuid, deployment="web", count=1)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_hosts_table_fits_100_columns_at_a_terminal(
    project: Path, uuid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a 100-column terminal no line is longer than 100 and no id is cut."""
    launched = launch(ec2("eu-west-1"), uuid=uuid, deployment="preSyncDeploy1", count=3)
    terminal = Console(width=100, force_terminal=True, record=True, color_system=None)
    monkeypatch.setattr(fleet_cli, "console", terminal)
    result = runner.invoke(app, ["hosts"])
    assert result.exit_code == 0, result.output
    text = terminal.export_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    for instance in launched:
        assert instance["InstanceId"] in text
        assert instance["PublicIpAddress"] in text
    assert "preSyncDeploy1 in eu-west-1 (stack perf-ops)" in text


def test_clients_table_keeps_error_lines_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """At a terminal the counts fit 100 columns and each first error is one whole line."""
    error = "web/eu-west-1/7: k6: error: builder for /nix/store/x-container.drv failed with exit 1"
    terminal = Console(width=100, force_terminal=True, record=True, color_system=None)
    monkeypatch.setattr(fleet_cli, "console", terminal)
    fleet_cli._show_clients(
        [
            ClientRow("perf-ops", "web", "eu-west-1", 40, 10000, 9750, 9700, 3, 1, error),
            ClientRow("perf-ops", "web", "us-east-1", 40, 10000, 10000, 10000, 0, 0, None),
        ]
    )
    lines = terminal.export_text().splitlines()
    assert f"  {error}" in lines
    assert all(len(line) <= 100 for line in lines if error not in line)
    assert "3 (1 unreachable)" in lines[1]
