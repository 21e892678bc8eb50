"""The perfops command line, driven with typer's CliRunner and as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perfops_cdk.cli.main import app
from perfops_cdk.effects import aws
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.effects.terraform import cli_config

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

DEPLOYMENTS = """
from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack
from perfops_cdk.app import main

AMIS = {amis}


def define(app: App) -> None:
    stack = PerfOpsStack(app, "perf-ops", uuid="cliuuid1")
    image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=AMIS)
    Deployment(stack, "steady", image=image, instance_type="t3.micro",
               regions={regions})


main(define)
"""


def project(
    root: Path, regions: str = '{"eu-west-1": 2}', amis: dict[str, str] | None = None
) -> Path:
    """A minimal perfops project: cdktf.json and a deployments.py."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
    amis = amis or {"eu-west-1": "ami-0123456789abcdef0"}
    (root / "deployments.py").write_text(
        textwrap.dedent(DEPLOYMENTS).format(amis=repr(amis), regions=regions)
    )
    return root


@pytest.fixture
def in_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = project(tmp_path / "proj")
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return root


def test_synth_writes_the_stack(in_project: Path) -> None:
    """`perfops synth` runs the app from cdktf.json and reports the stacks written."""
    result = runner.invoke(app, ["synth"])
    assert result.exit_code == 0, result.output
    assert "synthesized perf-ops, perf-ops-eu-west-1" in result.output
    stack = json.loads((in_project / "cdktf.out/stacks/perf-ops-eu-west-1/cdk.tf.json").read_text())
    assert stack["resource"]["aws_ec2_fleet"]["steady_hosts"]["for_each"]["0"]["hosts"] == 2


def test_synth_bad_input_exits_2_and_keeps_output(in_project: Path) -> None:
    """A typo exits 2 with one line and no traceback; the previous output survives."""
    assert runner.invoke(app, ["synth"]).exit_code == 0
    before = (in_project / "cdktf.out/stacks/perf-ops/cdk.tf.json").read_text()
    project(in_project, regions='{"eu-west-1": -3}')
    result = subprocess.run(
        [sys.executable, "-m", "perfops_cdk.cli.main", "synth"],
        cwd=in_project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: perf-ops/steady: regions['eu-west-1']: -3 is not allowed; "
        "must be a whole number of hosts, 0 or more"
    )
    assert (in_project / "cdktf.out/stacks/perf-ops/cdk.tf.json").read_text() == before


def test_outside_a_project_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Running perfops where no cdktf.json is found says so and exits 2."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["synth"])
    assert result.exit_code == 2
    assert "no cdktf.json here or above" in result.output


def test_status_shows_planned_and_running_hosts(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status joins the declared hosts with what EC2 runs under this uuid."""
    ec2 = aws.client("ec2", "eu-west-1")
    ami = ec2.register_image(Name="node-v1-x", RootDeviceName="/dev/xvda")["ImageId"]
    root = project(tmp_path / "proj", amis={"eu-west-1": ami})
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    tags = [
        {"Key": "perf-ops", "Value": "cliuuid1"},
        {"Key": "perf-ops:stack", "Value": "perf-ops"},
        {"Key": "deployment", "Value": "steady"},
    ]
    launched = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"]
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1, result.output  # 2 planned, 1 live: reality differs
    header, *rows = result.output.splitlines()
    [cells] = [dict(zip(header.split("\t"), row.split("\t"), strict=True)) for row in rows]
    assert (cells["stack"], cells["deployment"], cells["region"]) == (
        "perf-ops",
        "steady",
        "eu-west-1",
    )
    assert (cells["planned"], cells["live"], cells["AMI"]) == ("2", "1", ami)
    assert cells["instances"] == launched[0]["InstanceId"]


def test_local_aws_serves_until_interrupted(tmp_path: Path) -> None:
    """`perfops local-aws` prints the environment of a live emulator and stops on SIGINT."""
    env_file = tmp_path / "env"
    process = subprocess.Popen(
        [sys.executable, "-m", "perfops_cdk.cli.main", "local-aws", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines()
        )
        assert exports["PERFOPS_AWS_ENDPOINT"].startswith("http://127.0.0.1:")
        ec2 = aws.client("ec2", "us-east-1", endpoint=exports["PERFOPS_AWS_ENDPOINT"])
        assert ec2.describe_regions()["Regions"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0
    assert os.path.exists(env_file)


@pytest.mark.terraform
def test_deploy_then_destroy_through_the_cli(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`perfops deploy -y` creates the declared hosts; `perfops destroy -y` removes them."""
    ec2 = aws.client("ec2", "eu-west-1")
    ami = ec2.register_image(Name="node-v1-x", RootDeviceName="/dev/xvda")["ImageId"]
    root = project(tmp_path / "proj", regions='{"eu-west-1": 1}', amis={"eu-west-1": ami})
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYTHONPATH", str(REPO))

    def live() -> list[str]:
        reservations = ec2.describe_instances(
            Filters=[
                {"Name": "tag:perf-ops", "Values": ["cliuuid1"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )["Reservations"]
        return [i["ImageId"] for r in reservations for i in r["Instances"]]

    deployed = runner.invoke(app, ["deploy", "-y"])
    assert deployed.exit_code == 0, deployed.output
    assert live() == [ami]
    destroyed = runner.invoke(app, ["destroy", "-y"])
    assert destroyed.exit_code == 0, destroyed.output
    assert live() == []


CDKTF = REPO / "node_modules" / ".bin" / "cdktf"


@pytest.mark.skipif(not CDKTF.exists(), reason="cdktf CLI not installed (run: npm ci)")
def test_cdktf_cli_synth_runs_the_app(tmp_path: Path) -> None:
    """`cdktf synth` (the pinned cdktf CLI) runs the app and gets our Terraform JSON."""
    root = project(tmp_path / "proj")
    (root / "cdktf.json").write_text(
        json.dumps({"language": "python", "app": f"{sys.executable} deployments.py"})
    )
    result = subprocess.run(
        [str(CDKTF), "synth"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "CHECKPOINT_DISABLE": "1", "CI": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stack = json.loads((root / "cdktf.out/stacks/perf-ops-eu-west-1/cdk.tf.json").read_text())
    assert stack["resource"]["aws_ec2_fleet"]["steady_hosts"]["for_each"]["0"]["hosts"] == 2


@pytest.mark.slow
@pytest.mark.terraform
@pytest.mark.skipif(not CDKTF.exists(), reason="cdktf CLI not installed (run: npm ci)")
def test_cdktf_cli_deploys_and_destroys_the_region_stacks(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Plain `cdktf deploy '*'` applies the region stacks, a region added since the last
    `perfops deploy` included (its stack gets the provider lock file offline), and
    `cdktf destroy '*'` empties them: judged by what EC2 holds."""
    amis = {"eu-west-1": "ami-03cf127a", "us-east-1": "ami-03cf127a"}
    root = project(tmp_path / "proj", amis=amis)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CHECKPOINT_DISABLE": "1",
        "CI": "1",
        **cli_config(root),
    }

    def run(*argv: str) -> None:
        done = subprocess.run(
            argv, cwd=root, env=env, capture_output=True, text=True, check=False, timeout=900
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def live() -> dict[str, int]:
        counts = {}
        for region in amis:
            pages = (
                aws.client("ec2", region)
                .get_paginator("describe_instances")
                .paginate(
                    Filters=[
                        {"Name": "tag:perf-ops", "Values": ["cliuuid1"]},
                        {"Name": "instance-state-name", "Values": ["pending", "running"]},
                    ]
                )
            )
            counts[region] = sum(len(r["Instances"]) for p in pages for r in p["Reservations"])
        return counts

    run(sys.executable, "-m", "perfops_cdk.cli.main", "deploy", "-y")
    assert live() == {"eu-west-1": 2, "us-east-1": 0}
    project(root, regions='{"eu-west-1": 2, "us-east-1": 1}', amis=amis)
    (root / "cdktf.json").write_text(
        json.dumps({"language": "python", "app": f"{sys.executable} deployments.py"})
    )
    run(str(CDKTF), "deploy", "*", "--auto-approve")
    assert live() == {"eu-west-1": 2, "us-east-1": 1}
    run(str(CDKTF), "destroy", "*", "--auto-approve")
    assert live() == {"eu-west-1": 0, "us-east-1": 0}


def test_ctrl_c_on_local_aws_stops_without_a_traceback() -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops
    `perfops local-aws` with exit 0 and nothing but its own line on stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "perfops_cdk.cli.main", "local-aws"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stderr is not None
    try:
        ready = process.stderr.readline()  # printed once the emulator serves
    finally:
        os.killpg(process.pid, signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    assert ready.endswith("Ctrl-C stops it.\n")
    assert process.returncode == 0
    assert rest == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["doctor"],
        ["status", "--no-synth"],
        ["images", "--help"],
        ["local-aws", "--help"],
    ],
)
def test_commands_that_do_not_synthesize_never_load_cdktf(
    in_project: Path, argv: list[str]
) -> None:
    """Only synthesis starts the jsii runtime (cdktf's node process); other commands never
    import it, so they start fast and Ctrl-C cannot break its pipe."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "perfops_cdk.cli.main", *argv],
        cwd=in_project,
        capture_output=True,
        text=True,
        check=False,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert imported, result.stderr
    assert not {m for m in imported if m.split(".")[0] in ("jsii", "cdktf", "constructs")}


BROKEN = """
from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack
from perfops_cdk.app import main


def define(app: App) -> None:
    stack = PerfOpsStack(app, "perf-ops", uuid={uuid})
    image = {image}
    deployment = Deployment(stack, "steady", image=image, instance_type="t3.micro", {props})
    {extra}


main(define)
"""
PREBUILT = (
    'ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids={"eu-west-1": "ami-0123abcd"})'
)
NIX_BUILT = 'ImageAsset(stack, "node", name="node-v1", container_modules=["k6"])'


@pytest.mark.parametrize(
    ("case", "files", "expected"),
    [
        (
            {"props": 'regions=["eu-west-1"]'},
            {},
            "error: perf-ops/steady: regions: ['eu-west-1'] is not allowed; must map at least one "
            "region to a host count",
        ),
        (
            {"props": 'regions={"eu-west-1": 1}, tags=["a"]'},
            {},
            "error: perf-ops/steady: tags: ['a'] is not allowed; must map tag keys to string "
            "values",
        ),
        (
            {"image": NIX_BUILT, "props": 'regions={"eu-west-1": 1}'},
            {"state.json": '{"version": 1, "images": []}'},
            "error: {root}/state.json: 'images' must be an object, not list; run: perfops "
            "images list --rebuild-state",
        ),
        (
            {"uuid": "None", "props": 'regions={"eu-west-1": 1}'},
            {"perf-uuid.txt/": ""},
            "error: {root}/perf-uuid.txt: cannot read the deployer uuid (Is a "
            "directory); it must be a file holding one id such as 'k3j9x0a2qz', or set PERF_UUID",
        ),
        (
            {
                "props": 'regions={"eu-west-1": 1}',
                "extra": "__import__('cdktf').Annotations.of(deployment).add_error('no capacity')",
            },
            {},
            "error: perf-ops/steady: no capacity",
        ),
    ],
)
def test_broken_input_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, case: dict[str, str], files: dict[str, str], expected: str
) -> None:
    """`perfops synth` of a broken declaration or project file prints one error line,
    exits 2, shows no traceback and writes no cdktf.out."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
    fields = {"uuid": '"cliuuid1"', "image": PREBUILT, "extra": "", **case}
    (root / "deployments.py").write_text(textwrap.dedent(BROKEN).format(**fields))
    for name, text in files.items():
        if name.endswith("/"):
            (root / name).mkdir()
        else:
            (root / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "PERF_UUID"}
    result = subprocess.run(
        [sys.executable, "-m", "perfops_cdk.cli.main", "synth"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**env, "PYTHONPATH": str(REPO)},
    )
    assert (result.returncode, result.stderr) == (2, expected.replace("{root}", str(root)) + "\n")
    assert not (root / "cdktf.out").exists()


def test_warning_annotations_are_one_line_each_and_synth_succeeds(tmp_path: Path) -> None:
    """Warnings (perfops' own and a user's cdktf Annotations) are printed as one
    `warning: <path>: <message>` line each, as `cdktf synth` shows them, and the output
    is still written."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
    fields = {
        "uuid": '"cliuuid1"',
        "image": PREBUILT,
        "props": 'regions={"eu-west-1": 1}, ssh_cidrs=["203.0.113.0/24"]',
        "extra": "__import__('cdktf').Annotations.of(deployment).add_warning('mind\\nthe gap')",
    }
    (root / "deployments.py").write_text(textwrap.dedent(BROKEN).format(**fields))
    result = subprocess.run(
        [sys.executable, "-m", "perfops_cdk.cli.main", "synth"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: perf-ops/steady: ssh_cidrs: ['203.0.113.0/24'] admit nothing; add "
        "'allow-ssh' to security_groups to open SSH to them",
        "warning: perf-ops/steady: mind the gap",
    ]
    assert (root / "cdktf.out/stacks/perf-ops/cdk.tf.json").exists()


def test_messages_stay_one_line_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    """Piped into a log, rich wraps at 80 columns: a preflight warning at 17 regions came
    out as three lines. Every message perfops prints is one line, however long, on
    stdout and stderr; the terminal wraps it, not perfops."""
    from perfops_cdk.cli import console as consoles
    from perfops_cdk.cli import report

    long = "eu-west-1: on-demand vCPU quota " + "word " * 40 + "not checked"
    report.say(long)
    consoles.console.print(long, markup=False)
    consoles.errors.print(long, markup=False)
    out, err = capsys.readouterr()
    assert out.splitlines() == [long]
    assert err.splitlines() == [long, long]


def test_progress_lines_print_their_text_as_is(capsys: pytest.CaptureFixture[str]) -> None:
    """Progress and preflight lines are text, not rich markup: brackets in them (an
    address, a list) are printed, not taken for styles and dropped."""
    from perfops_cdk.cli import report

    line = 'replace aws_ec2_fleet.web_hosts["0"] in [eu-west-1] [/]'
    report.say(line)
    assert capsys.readouterr().err.splitlines() == [line]
