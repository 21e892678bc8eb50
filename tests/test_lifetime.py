"""The lifetime guard: parsing, the launch template and tag, the user-data timer run
under sh with recording fakes, and the time left that status and hosts show."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from stackkit import AMIS, synth_json
from typer.testing import CliRunner

from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack, UserDataPart
from perfops_cdk.app import synth
from perfops_cdk.cli.main import app
from perfops_cdk.effects import aws
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.errors import InvalidField
from perfops_cdk.planners import lifetime as plan
from perfops_cdk.planners.hosts import FleetHost, Instance, host_record
from perfops_cdk.planners.stacks import HostGroup
from perfops_cdk.planners.status import Host, status_rows
from perfops_cdk.props.lifetime import check_lifetime, lifetime_text, parse_lifetime, to_lifetime

REPO = Path(__file__).resolve().parent.parent
SHELLCHECK = shutil.which("shellcheck")
runner = CliRunner()
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "minutes", "canonical"),
    [
        ("8h", 480, "8h"),
        ("90m", 90, "1h30m"),
        ("1h30m", 90, "1h30m"),
        ("2d", 2880, "2d"),
        ("36h", 2160, "1d12h"),
        (" 10m ", 10, "10m"),
    ],
)
def test_lifetimes_parse_and_print_canonically(text: str, minutes: int, canonical: str) -> None:
    """Days, hours and minutes in any combination; printed in the shortest form."""
    parsed = parse_lifetime(text)
    assert parsed == timedelta(minutes=minutes)
    assert lifetime_text(parsed) == canonical


@pytest.mark.parametrize(
    "value",
    ["8", "8s", "h", "", "1h30", "0m", "9m", "15d", "14d1m", timedelta(seconds=90), 3.5, 480],
)
def test_rejects_lifetimes_that_are_not_whole_minutes_within_bounds(value: Any) -> None:
    """Bare numbers, seconds, less than 10 minutes, more than 14 days are refused."""
    with pytest.raises(InvalidField, match=r"lifetime: .* must be a duration such as '8h'"):
        check_lifetime(to_lifetime(value))


def _template(stacks: dict[str, Any], region: str, name: str) -> dict[str, Any]:
    template: dict[str, Any] = stacks[f"perf-ops-{region}"]["resource"]["aws_launch_template"][
        f"{name}_template"
    ]
    return template


def _instance_tags(template: dict[str, Any]) -> dict[str, str]:
    [spec] = [s for s in template["tag_specifications"] if s["resource_type"] == "instance"]
    tags: dict[str, str] = spec["tags"]
    return tags


def test_lifetime_sets_terminate_on_shutdown_a_tag_and_the_first_user_data_part(
    tmp_path: Path,
) -> None:
    """A deployment with a lifetime launches from a template that terminates on
    shutdown, tags its hosts with the lifetime and arms the timer before other parts;
    one without has none of it."""

    def declare(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(
            stack,
            "short",
            image=image,
            instance_type="t3.micro",
            regions={"eu-west-1": 1},
            lifetime="8h",
            user_data=[UserDataPart(name="early", script="echo early", order=0)],
        )
        Deployment(stack, "long", image=image, instance_type="t3.micro", regions={"eu-west-1": 1})

    stacks = synth_json(tmp_path, declare)
    short = _template(stacks, "eu-west-1", "short")
    assert short["instance_initiated_shutdown_behavior"] == "terminate"
    assert _instance_tags(short)[plan.LIFETIME_TAG] == "8h"
    script = base64.b64decode(short["user_data"]).decode()
    assert script.index("part 000 perfops-lifetime") < script.index("part 000 early")
    assert "--on-active=" in script
    long = _template(stacks, "eu-west-1", "long")
    assert "instance_initiated_shutdown_behavior" not in long
    assert plan.LIFETIME_TAG not in _instance_tags(long)
    assert "user_data" not in long
    note = stacks["perf-ops-eu-west-1"]["//"]["perfops"]["deployments"]
    assert (note["short"].get("lifetime"), note["long"].get("lifetime")) == ("8h", None)


def test_stack_lifetime_is_the_default_and_a_deployment_may_give_its_own(tmp_path: Path) -> None:
    """PerfOpsStack(lifetime=...) applies to deployments that give none."""

    def define(app: App) -> None:
        stack = PerfOpsStack(app, "perf-ops", uuid="uuid1", project_dir=tmp_path, lifetime="2d")
        image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=AMIS)
        Deployment(stack, "a", image=image, instance_type="t3.micro", regions={"eu-west-1": 1})
        Deployment(
            stack,
            "b",
            image=image,
            instance_type="t3.micro",
            regions={"eu-west-1": 1},
            lifetime=timedelta(minutes=45),
        )

    out = synth(define, tmp_path / "cdktf.out")
    region = json.loads((out / "stacks/perf-ops-eu-west-1/cdk.tf.json").read_text())
    stacks = {"perf-ops-eu-west-1": region}
    assert _instance_tags(_template(stacks, "eu-west-1", "a"))[plan.LIFETIME_TAG] == "2d"
    assert _instance_tags(_template(stacks, "eu-west-1", "b"))[plan.LIFETIME_TAG] == "45m"


def test_bad_lifetime_is_one_located_line(tmp_path: Path) -> None:
    """A lifetime that is not a duration names the construct, the value and the form."""
    app = App(outdir=str(tmp_path / "out"))
    with pytest.raises(InvalidField) as caught:
        PerfOpsStack(app, "perf-ops", uuid="uuid1", project_dir=tmp_path, lifetime="8")
    assert str(caught.value).startswith("perf-ops: lifetime: '8' is not allowed; must be")
    stack = PerfOpsStack(app, "ok", uuid="uuid1", project_dir=tmp_path)
    image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=AMIS)
    with pytest.raises(InvalidField) as caught:
        Deployment(
            stack,
            "d",
            image=image,
            instance_type="t3.micro",
            regions={"eu-west-1": 1},
            lifetime="3m",
        )
    assert str(caught.value).startswith("ok/d: lifetime: '3m' is not allowed;")


BAD_PROJECT = """
from datetime import timedelta

from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack
from perfops_cdk.app import main


def define(app: App) -> None:
    stack = PerfOpsStack(app, "perf-ops", uuid="lifeuuid1", lifetime={stack})
    image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids={{"eu-west-1": "{ami}"}})
    Deployment(stack, "web", image=image, instance_type="t3.micro", regions={{"eu-west-1": 1}},
               lifetime={deployment})


main(define)
"""


@pytest.mark.parametrize(
    ("command", "stack", "deployment", "where", "shown"),
    [
        ("synth", "None", "0", "perf-ops/web", "0"),
        ("synth", "None", "'0m'", "perf-ops/web", "'0m'"),
        ("synth", "None", "timedelta(hours=-1)", "perf-ops/web", "'-1h'"),
        ("synth", "None", "'-2h'", "perf-ops/web", "'-2h'"),
        ("synth", "None", "[8]", "perf-ops/web", "[8]"),
        ("synth", "480", "None", "perf-ops", "480"),
        ("deploy", "None", "8.5", "perf-ops/web", "8.5"),
    ],
)
def test_bad_lifetime_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, command: str, stack: str, deployment: str, where: str, shown: str
) -> None:
    """Zero, negative or mistyped lifetimes on a Deployment or a stack: `perfops synth`
    and `perfops deploy` print one line (construct path, field, value, what is
    allowed) and exit 2 before anything is asked of AWS."""
    (tmp_path / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
    (tmp_path / "deployments.py").write_text(
        BAD_PROJECT.format(stack=stack, deployment=deployment, ami=AMIS["eu-west-1"])
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "perfops_cdk.cli.main",
            command,
            *(["-y"] if command == "deploy" else []),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"error: {where}: lifetime: {shown} is not allowed; must be a duration such as "
        "'8h', '90m', '1h30m' or '2d' (or a timedelta) of whole minutes, from 10 minutes "
        "to 14 days"
    ]
    assert "Traceback" not in result.stdout


class Boot:
    """A host's first-boot environment: the lifetime part with its deadline file moved
    under a temporary root, and recording fakes for date, systemctl and systemd-run."""

    def __init__(self, root: Path, lifetime: timedelta) -> None:
        self.root = root
        self.calls = root / "calls"
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.calls.touch()
        self.active = root / "timer-active"
        fakes = {
            "date": 'echo "$FAKE_NOW"',
            "systemd-run": 'echo "systemd-run $*" >>"$FAKE_CALLS"',
            "systemctl": (
                'echo "systemctl $*" >>"$FAKE_CALLS"\n'
                '[ "$1" = is-active ] && { [ -e "$FAKE_ACTIVE" ] || exit 3; }\nexit 0'
            ),
        }
        for name, body in fakes.items():
            fake = self.bin / name
            fake.write_text(f"#!/bin/sh\n{body}\n")
            fake.chmod(0o755)
        folder = plan.DEADLINE_FILE.rsplit("/", 1)[0]
        self.deadline = root / "state" / "lifetime-deadline"
        self.script = plan.lifetime_part(lifetime).script.replace(folder, str(root / "state"))

    def run(self, now: int) -> list[str]:
        """Boot at epoch second ``now``; the calls the part made."""
        before = self.calls.read_text().splitlines()
        result = subprocess.run(
            ["sh", "-eu", "-c", self.script.replace("/run/current-system/sw/bin:", "")],
            env={
                "PATH": f"{self.bin}:/usr/bin:/bin",
                "FAKE_NOW": str(now),
                "FAKE_CALLS": str(self.calls),
                "FAKE_ACTIVE": str(self.active),
            },
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return self.calls.read_text().splitlines()[len(before) :]


def _timer(seconds: int) -> str:
    return (
        f"systemd-run --unit=perfops-lifetime --on-active={seconds}s "
        "--description=perfops lifetime 8h: power off (terminate) this host systemctl poweroff"
    )


def test_user_data_arms_a_poweroff_timer_for_the_lifetime_from_first_boot(tmp_path: Path) -> None:
    """First boot: a timer of the whole lifetime. A reboot an hour later: what is left of
    it (the deadline is kept). Again in the same boot: nothing new. After the deadline:
    power off within a minute."""
    boot = Boot(tmp_path, timedelta(hours=8))
    start = 1_800_000_000
    assert boot.run(start) == [
        "systemctl is-active --quiet perfops-lifetime.timer",
        _timer(8 * 3600),
    ]
    assert boot.deadline.read_text().strip() == str(start + 8 * 3600)
    assert boot.run(start + 3600)[-1] == _timer(7 * 3600)
    boot.active.touch()  # the timer of this boot is running: leave it alone
    assert boot.run(start + 3700) == ["systemctl is-active --quiet perfops-lifetime.timer"]
    boot.active.unlink()
    assert boot.run(start + 9 * 3600)[-1] == _timer(plan.GRACE_SECONDS)
    assert boot.deadline.read_text().strip() == str(start + 8 * 3600)


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed")
def test_lifetime_part_is_shellcheck_clean() -> None:
    """The rendered part passes shellcheck as POSIX sh."""
    assert SHELLCHECK is not None
    result = subprocess.run(
        [SHELLCHECK, "--shell=sh", "-"],
        input="#!/bin/sh\nset -eu\n" + plan.lifetime_part(timedelta(hours=8)).script,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("launched_ago", "tag", "left"),
    [
        (timedelta(hours=3), "8h", "5h00m"),
        (timedelta(hours=7, minutes=30), "8h", "30m"),
        (timedelta(seconds=7170), "2h", "<1m"),
        (timedelta(hours=9), "8h", "expired"),
        (timedelta(days=1), "3d", "2d0h"),
        (timedelta(hours=1), None, "-"),
        (timedelta(hours=1), "garbled", "-"),
    ],
)
def test_time_left_is_launch_time_plus_lifetime_minus_now(
    launched_ago: timedelta, tag: str | None, left: str
) -> None:
    """Expiry is EC2's launch time plus the lifetime tag; no (readable) tag, no expiry."""
    expires = plan.expires_at(NOW - launched_ago, tag)
    assert plan.left_text(plan.time_left(expires, NOW)) == left


def test_status_rows_show_the_time_left_of_the_first_host_to_expire() -> None:
    """A row's time left is its earliest expiry, computed with the injected clock."""
    group = HostGroup.from_note(
        "perf-ops",
        "eu-west-1",
        "u1",
        "web",
        {"hosts": 2, "ami": "ami-1", "instance_types": ["t3.micro"], "lifetime": "8h"},
    )
    hosts = [
        Host(
            instance_id=f"i-{n}",
            region="eu-west-1",
            app_stack="perf-ops",
            deployment="web",
            state="running",
            ami="ami-1",
            instance_type="t3.micro",
            launch_time=str(NOW - timedelta(hours=hours)),
            lifetime="8h",
        )
        for n, hours in ((1, 2), (2, 6))
    ]
    [row] = status_rows([group], hosts, NOW)
    assert row.left == timedelta(hours=2)
    [undated] = status_rows([group], hosts)
    assert undated.left is None


def test_hosts_json_carries_lifetime_and_expiry() -> None:
    """`perfops hosts --json` adds the lifetime tag and the expiry in UTC."""
    raw: dict[str, Any] = {
        "InstanceId": "i-0123456789abcdef0",
        "State": {"Name": "running"},
        "LaunchTime": NOW,
        "Tags": [
            {"Key": "perf-ops", "Value": "u1"},
            {"Key": "deployment", "Value": "web"},
            {"Key": plan.LIFETIME_TAG, "Value": "1h30m"},
        ],
    }
    record = host_record(FleetHost("perf-ops", 0, Instance.from_ec2("eu-west-1", raw)))
    assert (record["lifetime"], record["expires"]) == ("1h30m", "2026-11-28T13:30:00Z")
    raw["Tags"] = raw["Tags"][:2]
    plain = host_record(FleetHost("perf-ops", 0, Instance.from_ec2("eu-west-1", raw)))
    assert (plain["lifetime"], plain["expires"]) == (None, None)


PROJECT = """
from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack
from perfops_cdk.app import main


def define(app: App) -> None:
    stack = PerfOpsStack(app, "perf-ops", uuid="lifeuuid1", lifetime="2h")
    image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids={{"eu-west-1": "{ami}"}})
    Deployment(stack, "web", image=image, instance_type="t3.micro", regions={{"eu-west-1": 1}})


main(define)
"""


def test_status_and_hosts_show_the_time_left_of_a_live_host(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An emulated host tagged with a 2h lifetime (launched now, as moto does) shows
    about 2h left in `perfops status` and its expiry, launch time + 2h, in `perfops hosts`."""
    ec2 = aws.client("ec2", "eu-west-1")
    ami = ec2.register_image(Name="node-v1-x", RootDeviceName="/dev/xvda")["ImageId"]
    root = tmp_path / "proj"
    root.mkdir()
    (root / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
    (root / "deployments.py").write_text(PROJECT.format(ami=ami))
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    tags = {
        "perf-ops": "lifeuuid1",
        "perf-ops:stack": "perf-ops",
        "deployment": "web",
        "managed-by": "perfops_cdk",
        plan.LIFETIME_TAG: "2h",
    }
    [launched] = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )["Instances"]
    status = runner.invoke(app, ["status"])
    header, row = status.stdout.splitlines()
    cells = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert cells["left"] in ("1h59m", "2h00m")
    hosts = runner.invoke(app, ["hosts"])
    assert hosts.exit_code == 0, hosts.output
    header, row = hosts.stdout.splitlines()
    cells = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    expected = launched["LaunchTime"].astimezone(UTC) + timedelta(hours=2)
    assert cells["expires"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
