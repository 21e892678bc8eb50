"""Benchmark: `perfops ssh` fan-out and `perfops hosts` against loopback stand-ins.

1. `perfops ssh web -- true` on 50 hosts, each a real sshd on a loopback port (the
   tests' stand-ins), with --parallel 32 and --parallel 1: the whole CLI process, and
   the fan-out alone (fleet.run_command in this process). Host keys are learned in an
   untimed warm-up run first.
2. `perfops hosts` for 400 hosts in 17 regions of a moto server in its own process:
   the whole CLI process (--json), and the AWS read alone with the regions in parallel
   versus one after the other.

    .venv/bin/python bench/ssh.py [--runs 3] [--hosts-runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sshkit import KEY_NAME, ec2, keygen, launch, stand_ins, write_project, write_ssh_config
from upload import moto_process

from perfops_cdk import fleet
from perfops_cdk.effects import aws, ec2_hosts
from perfops_cdk.effects.ssh import SSH_CONFIG_ENV
from perfops_cdk.fleet_scope import fleet_scope
from perfops_cdk.planners.hosts import index_hosts
from perfops_cdk.project import Project
from perfops_cdk.props.regions import DEFAULT_REGIONS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Fleet access: ssh fan-out and hosts"
SSH_HOSTS = 50
FLEET_HOSTS = 400


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def cli(args: list[str], cwd: Path) -> float:
    """Wall time of one `perfops ...` process; it must succeed."""
    command = [sys.executable, "-m", "perfops_cdk.cli.main", *args]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return wall


def median(values: list[float]) -> float:
    return statistics.median(values)


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def bench_ssh(work: Path, runs: int) -> list[tuple[str, list[float], str]]:
    """Rows (what, runs in s, load average at start) for both parallelisms."""
    key = keygen(work / "client")
    home = work / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(key, home / ".ssh" / KEY_NAME)
    os.environ["HOME"] = str(home)
    os.environ.pop("SSH_AUTH_SOCK", None)
    uuid = "benchssh1"
    launched = launch(ec2("eu-west-1"), uuid=uuid, deployment="web", count=SSH_HOSTS)
    project = write_project(work / "proj", uuid=uuid, regions=["eu-west-1"])
    rows: list[tuple[str, list[float], str]] = []
    with stand_ins(work / "standins", key, [f"h{i}" for i in range(SSH_HOSTS)]) as hosts:
        routes = write_ssh_config(
            work / "routes.conf",
            [(i["PublicIpAddress"], h.port) for i, h in zip(launched, hosts, strict=True)],
        )
        os.environ[SSH_CONFIG_ENV] = str(routes)
        cli(["ssh", "web", "--", "true"], project)  # learns 50 host keys; untimed
        found = fleet.resolve(Project.find(project), "web")
        access = fleet.Access()
        for parallel in (32, 1):
            starts = load()
            walls = [
                cli(["ssh", "web", "--parallel", str(parallel), "--", "true"], project)
                for _ in range(runs)
            ]
            rows.append(
                (f"`perfops ssh web -- true`, --parallel {parallel} (process)", walls, starts)
            )
            starts = load()
            fanouts = []
            for _ in range(runs):
                start = time.perf_counter()
                outcomes = fleet.run_command(
                    Project.find(project), found, "true", access, parallel=parallel
                )
                fanouts.append(time.perf_counter() - start)
                assert len(outcomes) == SSH_HOSTS and not any(o.exit_code for o in outcomes)
            rows.append((f"fan-out alone, --parallel {parallel}", fanouts, starts))
    return rows


def bench_hosts(work: Path, runs: int) -> tuple[list[tuple[str, list[float], str]], int]:
    """Rows for `perfops hosts` at 400 hosts / 17 regions, and DescribeInstances calls."""
    uuid = "benchhosts1"
    regions = list(DEFAULT_REGIONS)
    per_region = [FLEET_HOSTS // len(regions)] * len(regions)
    for i in range(FLEET_HOSTS - sum(per_region)):
        per_region[i] += 1
    for region, count in zip(regions, per_region, strict=True):
        half = count // 2
        launch(ec2(region), uuid=uuid, deployment="steady", count=count - half, containers=250)
        launch(ec2(region), uuid=uuid, deployment="burst", count=half, containers=250)
    project = write_project(work / "fleet", uuid=uuid, regions=regions)
    scopes = fleet_scope(Project.find(project))
    calls: list[str] = []
    real_client = aws.client

    def counting(service: str, region: str, **kwargs: Any) -> Any:
        made = real_client(service, region, **kwargs)
        made.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
        return made

    aws.client = counting
    try:
        hosts = fleet.load(Project.find(project)).hosts
    finally:
        aws.client = real_client
    assert len(hosts) == FLEET_HOSTS, len(hosts)
    rows: list[tuple[str, list[float], str]] = []
    starts = load()
    rows.append(
        (
            "`perfops hosts --json` (process)",
            [cli(["hosts", "--json"], project) for _ in range(runs)],
            starts,
        )
    )
    for workers, label in ((17, "regions in parallel"), (1, "regions one after the other")):
        starts = load()
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            index_hosts(ec2_hosts.describe_regions(regions, [uuid], workers=workers), scopes)
            walls.append(time.perf_counter() - start)
        rows.append((f"AWS read + index alone, {label}", walls, starts))
    return rows, calls.count("DescribeInstances")


def render(
    ssh_rows: list[tuple[str, list[float], str]],
    hosts_rows: list[tuple[str, list[float], str]],
    describe_calls: int,
    runs: int,
    hosts_runs: int,
) -> str:
    ssh_lines = [
        "| what | median s | ratio to --parallel 32 | runs s | load avg at start |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for what, walls, starts in ssh_rows:
        twin = next(w for t, w, _ in ssh_rows if t == what.replace("--parallel 1", "--parallel 32"))
        ssh_lines.append(
            f"| {what} | {median(walls):.2f} | {median(walls) / median(twin):.1f} "
            f"| {fmt(walls)} | {starts} |"
        )
    parallel_read = median(hosts_rows[1][1])
    hosts_lines = [
        "| what | median s | ratio to parallel read | runs s | load avg at start |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for what, walls, starts in hosts_rows:
        hosts_lines.append(
            f"| {what} | {median(walls):.2f} | {median(walls) / parallel_read:.1f} "
            f"| {fmt(walls)} | {starts} |"
        )
    return "\n".join(
        [
            SECTION,
            "",
            "`bench/ssh.py` (run: `.venv/bin/python bench/ssh.py`; `--runs 3 --hosts-runs 5`).",
            "Issue 9: reaching every host.",
            "",
            f"- Machine: the project's machine kind, **{os.cpu_count()} cores**, Python "
            f"{platform.python_version()}, OpenSSH client and server from Debian, moto 5.2.1 in",
            "  its own process; everything on loopback. Other sessions share the cores: the",
            "  load average at the start of each row is in the table.",
            f"- ssh: {SSH_HOSTS} emulated hosts, each routed (`PERFOPS_SSH_CONFIG`) to its own",
            "  `sshd` stand-in; the command is `true`; host keys learned in an untimed run",
            f"  first. Median of {runs}. '(process)' is the whole `perfops` process, Python and",
            "  package import included (about 2 s of it is `import cdktf`, which `perfops_cdk`",
            "  loads for every command); 'fan-out alone' is `fleet.run_command` in-process.",
            f"- hosts: {FLEET_HOSTS} hosts (2 deployments) over the 17 default regions of the",
            f"  emulator, warm. {describe_calls} DescribeInstances calls per listing (one per",
            f"  region; moto answers each in one page). Median of {hosts_runs}.",
            "",
            *ssh_lines,
            "",
            *hosts_lines,
        ]
    )


def write_section(section: str) -> None:
    """Replace (or add) this benchmark's section; keep every other section as it is."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts-runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, moto_process():
        work = Path(tmp)
        ssh_rows = bench_ssh(work, args.runs)
        for row in ssh_rows:
            print(row)
        hosts_rows, calls = bench_hosts(work, args.hosts_runs)
        for row in hosts_rows:
            print(row)
    section = render(ssh_rows, hosts_rows, calls, args.runs, args.hosts_runs)
    print(section)
    if not args.no_write:
        write_section(section)


if __name__ == "__main__":
    main()
