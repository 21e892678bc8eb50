"""Benchmark: the whole ``python <app>`` synth process, small to 100,000 load clients.

Generates an app in a temporary project (a from_ami_ids image covering every region,
so no state file or AWS is needed), runs it as users do, and measures wall time and
peak memory of the process tree (python plus the jsii node runtime it starts), user
data bytes per host, and the ``extra-container create`` calls one host's user data
makes when run through the real spawner with the test fakes on PATH.
Writes the "## Synth" section of docs/benchmarks.md (other sections are kept).

    .venv/bin/python bench/synth.py [--runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import attrs

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "benchmarks.md"
SECTION = "## Synth"
SPAWNER = REPO / "nix" / "spawner" / "perfops-spawn-containers.sh"
FAKEBIN = REPO / "tests" / "data" / "spawner" / "fakebin"
REGIONS = (
    "eu-west-1",
    "us-east-1",
    "eu-central-1",
    "us-west-2",
    "ap-southeast-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-north-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-2",
    "us-west-1",
)


@attrs.frozen
class Case:
    label: str
    hosts: int
    regions: int
    deployments: int
    services_per_host: int  # 0: no HostContainers
    containers_per_service: int = 125

    @property
    def containers(self) -> int:
        return self.hosts * self.services_per_host * self.containers_per_service


CASES = (
    Case("a: 40 hosts / 5 regions", hosts=40, regions=5, deployments=2, services_per_host=0),
    Case("b: 400 hosts / 17 regions", hosts=400, regions=17, deployments=4, services_per_host=0),
    Case(
        "c: 400 hosts x 250 containers / 17 regions",
        hosts=400,
        regions=17,
        deployments=4,
        services_per_host=2,
    ),
)

APP = """\
from pathlib import Path

from perfops_cdk import (
    App, ContainerService, Deployment, HostContainers, ImageAsset, PerfOpsStack,
)
from perfops_cdk.app import main

CASE = {case}


def define(app: App) -> None:
    stack = PerfOpsStack(app, "perf-ops", uuid="benchuuid1", project_dir=Path(__file__).parent)
    regions = CASE["regions"]
    image = ImageAsset.from_ami_ids(
        stack, "image", name="bench-v1", container_modules=["k6"],
        ami_ids={{r: "ami-0123456789abcdef0" for r in regions}},
    )
    per_deployment = CASE["hosts"] // CASE["deployments"]
    for d in range(CASE["deployments"]):
        counts = {{r: per_deployment // len(regions) for r in regions}}
        for r in regions[: per_deployment % len(regions)]:
            counts[r] += 1
        deployment = Deployment(
            stack, f"load{{d}}", image=image, instance_type="r5d.2xlarge", regions=counts,
            security_groups=["allow-ssh", "allow-egress"], ssh_cidrs=["203.0.113.0/24"],
        )
        if CASE["services"]:
            size = CASE["containers_per_service"]
            HostContainers(deployment, "clients", nvme_raid0=True, services=[
                ContainerService(
                    name=f"k6-set-{{s + 1}}", entry_folder="k6", container_name_prefix="a",
                    host_address="10.254.0.1", network="10.254.1", container_count=size,
                    container_name_start_num=1 + s * size, ip_start_addr=1 + s * size,
                    environment={{"PERFOPS_K6_TARGET": "http://10.0.0.5:8080/"}},
                )
                for s in range(CASE["services"])
            ])


if __name__ == "__main__":
    main(define)
"""


@attrs.frozen
class Run:
    wall_s: float
    peak_rss_mb: float  # largest single process (getrusage of waited-for children)
    peak_tree_mb: float  # python + node together, sampled every 10 ms


@attrs.frozen
class Result:
    case: Case
    runs: tuple[Run, ...]
    hosts_synthesized: int
    user_data_bytes: int
    creates_per_host: int


def _tree_rss_kb(pid: int) -> int:
    """RSS of ``pid`` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        rss[int(entry.name)] = int(found.group(1)) if found else 0
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo.extend(children.get(current, []))
    return total


def run_once(project: Path) -> Run:
    env = {
        **os.environ,
        "CDKTF_OUTDIR": str(project / "cdktf.out"),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    env.pop("PERFOPS_AWS_ENDPOINT", None)
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py"], cwd=project, env=env)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, _tree_rss_kb(process.pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"app failed in {project} with exit code {process.returncode}")
    # ru_maxrss of wait4 covers the python process and the descendants it waited for.
    return Run(wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024, peak_tree_mb=peak_tree / 1024)


def spawner_creates(user_data: str, root: Path) -> int:
    """Run one host's user data through the real spawner with recording fakes."""
    bin_dir = root / "bin"
    shutil.copytree(FAKEBIN, bin_dir)
    (bin_dir / "perfops-spawn-containers").symlink_to(SPAWNER)
    entry = root / "modules" / "k6" / "modules" / "container-wrapper.nix"
    entry.parent.mkdir(parents=True)
    entry.write_text("{ ... }: { }\n")
    calls = root / "calls"
    calls.touch()
    script = user_data.split("# --- part 080 host-containers ---\n", 1)[1]
    script = script.replace("/run/current-system/sw/bin", str(bin_dir))
    script = script.replace("/etc/perfops", str(root / "etc"))
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PERFOPS_STATE_DIR": str(root / "state"),
        "PERFOPS_MODULES_DIR": str(root / "modules"),
        "FAKE_CALLS": str(calls),
    }
    subprocess.run(["sh", "-eu", "-c", script], env=env, check=True, capture_output=True)
    return sum(1 for line in calls.read_text().splitlines() if line.startswith("extra-container"))


def measure(case: Case, runs: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="perfops-bench-") as scratch:
        project = Path(scratch)
        settings = {
            "hosts": case.hosts,
            "deployments": case.deployments,
            "regions": list(REGIONS[: case.regions]),
            "services": case.services_per_host,
            "containers_per_service": case.containers_per_service,
        }
        (project / "app.py").write_text(APP.format(case=repr(settings)))
        measured = tuple(run_once(project) for _ in range(runs))
        region_stacks = [
            json.loads(path.read_text())
            for path in (project / "cdktf.out/stacks").glob("perf-ops-*/cdk.tf.json")
        ]
        templates = [
            t for s in region_stacks for t in s["resource"]["aws_launch_template"].values()
        ]
        user_data = [base64.b64decode(t.get("user_data", "")).decode() for t in templates]
        creates = 0
        if case.services_per_host:
            creates = spawner_creates(user_data[0], project / "host")
        hosts = sum(
            d["hosts"] for s in region_stacks for d in s["//"]["perfops"]["deployments"].values()
        )
        return Result(
            case=case,
            runs=measured,
            hosts_synthesized=hosts,
            user_data_bytes=max(len(u.encode()) for u in user_data),
            creates_per_host=creates,
        )


def render(results: list[Result], runs: int) -> str:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    rows = []
    for r in results:
        walls = [run.wall_s for run in r.runs]
        rows.append(
            f"| {r.case.label} | {r.hosts_synthesized} | {r.case.containers:,} "
            f"| {median(walls):.2f} | {', '.join(f'{w:.2f}' for w in walls)} "
            f"| {median([run.peak_rss_mb for run in r.runs]):.0f} "
            f"| {median([run.peak_tree_mb for run in r.runs]):.0f} "
            f"| {r.user_data_bytes:,} | {r.creates_per_host or '-'} |"
        )
    table = "\n".join(rows)
    header = (
        "| case | hosts | containers | median wall s | runs s | peak RSS MB | tree MB "
        "| user data B | creates/host |\n"
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
    )
    return (
        textwrap.dedent(f"""\
        {SECTION}

        `bench/synth.py` (run: `.venv/bin/python bench/synth.py`; `--runs {runs}`). Issues 2
        and 4: the whole `python app.py` process, as `cdktf synth` and `perfops synth` run it.

        - Machine: the project's machine kind, **2 cores**, 24 GiB RAM, Python
          {platform.python_version()}, cdktf 0.21.0 (core only, no prebuilt AWS bindings).
        - App: generated in a temporary project; one `ImageAsset.from_ami_ids` image with an
          AMI in every region; hosts split evenly over 2 (a) or 4 (b, c) deployments, each
          spanning every region with `allow-ssh` + `allow-egress`. Hosts are batched instant
          fleets behind one launch template per deployment and region, in one stack per
          region, so synth cost follows deployments x regions, not hosts.
        - c: every deployment has `HostContainers` with two k6 services of 125 containers
          (250 per host, 100,000 in all) and the NVMe RAID0 part.
        - wall: process start to exit; median of {runs} runs. peak RSS: `ru_maxrss` from
          `wait4` (the largest single process: python or the jsii node runtime); tree: python
          plus node summed, sampled every 10 ms.
        - user data: largest `user_data` of any host, bytes. creates: `extra-container create`
          calls when one host's user data runs through the real spawner with the test fakes.

        {{header}}
        {{table}}

        Targets: (a) < 1.5 s, (b) and (c) < 3 s, peak RSS < 250 MB, user data < 4 KB,
        creates per host = services per host (2). Load average when the runs started:
        {os.getloadavg()[0]:.1f} (other work shares the 2 cores; wall times move with it).
        """)
        .replace("{header}", header)
        .replace("{table}", table)
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
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results = []
    for case in CASES:
        result = measure(case, args.runs)
        print(case.label, [f"{r.wall_s:.2f}s/{r.peak_tree_mb:.0f}MB" for r in result.runs])
        results.append(result)
    section = render(results, args.runs)
    print(section)
    if not args.no_write:
        write_section(section)


if __name__ == "__main__":
    main()
