"""Benchmark: deploy, no-change deploy, status and destroy at fleet scale, against the
local emulator with real Terraform, side by side with the 0.1 shape.

- new: ``perfops deploy -y`` / ``perfops deploy -y`` again / ``perfops status
  --no-synth`` / ``perfops destroy -y`` of an app of N hosts over R regions and D
  deployments (region stacks, batched instant fleets; docs/design.md).
- 0.1: the same fleet as 0.1 synthesized it (one stack, an aliased provider per region,
  a counted ``aws_instance`` and two security groups per deployment and region),
  ``terraform apply`` / ``apply`` again / ``destroy`` at Terraform's default
  parallelism of 10. Written here as Terraform JSON, as 0.1 emitted it.

Per step: wall time, API calls the emulator served (counted in its own process), and
peak memory of the whole process tree (python, terraform, providers; RSS summed,
sampled every 100 ms). Run: ``.venv/bin/python bench/deploy.py [--runs 3] [--old-runs 1]
[--cases 40,400]``; results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import attrs

from perfops_cdk.effects.aws import ENDPOINT_ENV
from perfops_cdk.effects.emulator import EMULATOR_ENV, Emulator
from perfops_cdk.effects.terraform import cli_config
from perfops_cdk.props.regions import DEFAULT_REGIONS

REPO = Path(__file__).resolve().parent.parent
SECTION = "## Deploy"
AMI = "ami-03cf127a"  # served by moto in every region

APP = """\
from perfops_cdk import App, Capacity, Deployment, ImageAsset, PerfOpsStack
from perfops_cdk.app import main

CASE = {case}


def define(app: App) -> None:
    stack = PerfOpsStack(app, "perf-ops", uuid="benchuuid1")
    regions = CASE["regions"]
    image = ImageAsset.from_ami_ids(stack, "image", name="bench-v1",
                                    ami_ids={{r: "{ami}" for r in regions}})
    for d, counts in enumerate(CASE["counts"]):
        Deployment(stack, f"load{{d}}", image=image, capacity=Capacity.on_demand("r5d.2xlarge"),
                   regions=counts, security_groups=["allow-ssh", "allow-egress"],
                   ssh_cidrs=["203.0.113.0/24"])


main(define)
"""


def split(hosts: int, regions: list[str], deployments: int) -> list[dict[str, int]]:
    """Hosts spread evenly over deployments, and each deployment's over the regions."""
    per_deployment = [
        hosts // deployments + (1 if d < hosts % deployments else 0) for d in range(deployments)
    ]
    result = []
    for total in per_deployment:
        counts = {r: total // len(regions) for r in regions}
        for r in regions[: total % len(regions)]:
            counts[r] += 1
        result.append(counts)
    return result


@contextmanager
def counting_moto() -> Iterator[tuple[str, Connection]]:
    """A moto server in its own process that counts the requests it serves."""
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    url: str = parent.recv()
    os.environ.update({ENDPOINT_ENV: url, **EMULATOR_ENV})
    try:
        yield url, parent
    finally:
        parent.send("stop")
        server.join(timeout=10)


def _serve(conn: Connection) -> None:
    count = [0]

    class Counter(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            count[0] += 1

    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(Counter())
    emulator = Emulator().start()
    werkzeug.setLevel(logging.INFO)  # one record per request: the count
    werkzeug.propagate = False
    conn.send(emulator.url)
    while True:
        message = conn.recv()
        if message == "count":
            usage = resource.getrusage(resource.RUSAGE_SELF)  # the server's threads
            conn.send((count[0], usage.ru_utime + usage.ru_stime))
        elif message == "reset":
            emulator.reset()
            _warm(emulator.url)
            count[0] = 0
            conn.send("ok")
        else:
            break
    emulator.stop()


def _warm(url: str) -> None:
    """Build every region's EC2 backend before the steps are timed: moto builds its
    models on the first EC2 request after a reset (about 1.2 CPU-s) and a region's
    backend on that region's first (about 0.1 CPU-s each, more under contention), a
    cost of the emulator a real account does not have (bench/sync.py does the same)."""
    import boto3

    for region in DEFAULT_REGIONS:
        client = boto3.client(
            "ec2",
            region_name=region,
            endpoint_url=url,
            aws_access_key_id=EMULATOR_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=EMULATOR_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        client.describe_availability_zones()


def served(conn: Connection) -> tuple[int, float]:
    """Requests the emulator served so far, and the CPU seconds its process used."""
    conn.send("count")
    count, cpu = conn.recv()
    return int(count), float(cpu)


@attrs.frozen
class Step:
    wall_s: float
    calls: int
    peak_mb: float  # RSS summed: each process's shared pages (program text) counted again
    peak_pss_mb: float = 0.0  # proportional set size summed: shared pages counted once
    cpu_s: float = 0.0  # the process tree's (perfops or Terraform, providers, synthesis)
    emulator_cpu_s: float = 0.0  # the emulator's, serving the step's requests


def timed(argv: list[str], cwd: Path, conn: Connection, env: dict[str, str]) -> Step:
    """Run ``argv`` to the end; wall, API calls, the process tree's peak RSS and CPU,
    and the emulator's CPU."""
    before, emulator_before = served(conn)
    cpu_before = os.times()
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = peak_pss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_pss
        while not done.is_set():
            rss, pss = tree_memory_kb(process.pid)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = process.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {cwd}: {err[-2000:]}")
    cpu_after = os.times()
    count, emulator_cpu = served(conn)
    return Step(
        wall_s=wall,
        calls=count - before,
        peak_mb=peak / 1024,
        peak_pss_mb=peak_pss / 1024,
        cpu_s=(cpu_after.children_user + cpu_after.children_system)
        - (cpu_before.children_user + cpu_before.children_system),
        emulator_cpu_s=emulator_cpu - emulator_before,
    )


def tree_memory_kb(pid: int) -> tuple[int, int]:
    """RSS and PSS of ``pid`` and every descendant, summed, from /proc. Four providers
    of one binary share its ~180 MB of program text: RSS counts it four times, PSS
    once (each process its share)."""
    members, todo = [], [pid]
    while todo:
        current = todo.pop()
        members.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    rss = pss = 0
    for member in members:
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                value = int(rest.split()[0])
                rss, pss = (rss + value, pss) if name == "Rss" else (rss, pss + value)
    return rss, pss


def run_new(case: dict[str, Any], conn: Connection, work: Path) -> dict[str, Step]:
    project = work / "new"
    project.mkdir()
    (project / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
    (project / "deployments.py").write_text(APP.format(case=repr(case), ami=AMI))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    perfops = [sys.executable, "-m", "perfops_cdk.cli.main"]
    steps = {
        "deploy": timed([*perfops, "deploy", "-y"], project, conn, env),
        "no-change deploy": timed([*perfops, "deploy", "-y"], project, conn, env),
        "status": timed([*perfops, "status", "--no-synth"], project, conn, env),
        "destroy": timed([*perfops, "destroy", "-y"], project, conn, env),
    }
    return steps


def old_shape(case: dict[str, Any]) -> dict[str, Any]:
    """The fleet as 0.1 synthesized it: one stack, counted aws_instance per region.

    Without 0.1's ``endpoints`` block: both shapes reach the emulator through
    AWS_ENDPOINT_URL, as a real account's providers have no such block (validating it
    costs the provider ~3 CPU-seconds per start; docs/design.md)."""
    providers, groups, instances = [], {}, {}
    for region in case["regions"]:
        alias = region.replace("-", "")
        providers.append(
            {
                "region": region,
                "alias": alias,
                "skip_credentials_validation": True,
                "skip_requesting_account_id": True,
                "skip_metadata_api_check": "true",
                "skip_region_validation": True,
            }
        )
        for d, counts in enumerate(case["counts"]):
            name = f"load{d}_{alias}"
            refs = []
            for group, rule in (("ssh", "ingress"), ("egress", "egress")):
                groups[f"{name}_{group}"] = {
                    "provider": f"aws.{alias}",
                    "name": f"perf-ops-bench-load{d}-{group}",
                    "description": group,
                    rule: [
                        {
                            "from_port": 22 if group == "ssh" else 0,
                            "to_port": 22 if group == "ssh" else 0,
                            "protocol": "tcp" if group == "ssh" else "-1",
                            "cidr_blocks": ["203.0.113.0/24" if group == "ssh" else "0.0.0.0/0"],
                            "ipv6_cidr_blocks": [],
                            "prefix_list_ids": [],
                            "security_groups": [],
                            "self": False,
                            "description": "",
                        }
                    ],
                    "tags": {"perf-ops": "benchold"},
                }
                refs.append(f"${{aws_security_group.{name}_{group}.id}}")
            instances[name] = {
                "provider": f"aws.{alias}",
                "count": counts[region],
                "ami": AMI,
                "instance_type": "r5d.2xlarge",
                "vpc_security_group_ids": refs,
                "metadata_options": {
                    "http_endpoint": "enabled",
                    "http_tokens": "required",
                    "http_put_response_hop_limit": 2,
                },
                "root_block_device": {
                    "volume_size": 30,
                    "volume_type": "gp3",
                    "encrypted": True,
                    "delete_on_termination": True,
                },
                "tags": {"perf-ops": "benchold", "Name": f"bench-{name}-${{count.index}}"},
            }
    return {
        "terraform": {
            "required_providers": {"aws": {"source": "hashicorp/aws", "version": "5.100.0"}}
        },
        "provider": {"aws": providers},
        "resource": {"aws_security_group": groups, "aws_instance": instances},
    }


def run_old(case: dict[str, Any], url: str, conn: Connection, work: Path) -> dict[str, Step]:
    stack = work / "old"
    stack.mkdir()
    (stack / "main.tf.json").write_text(json.dumps(old_shape(case)))
    env = {**os.environ, **cli_config(work), "AWS_ENDPOINT_URL": url}
    subprocess.run(
        ["terraform", "init", "-input=false"], cwd=stack, env=env, check=True, capture_output=True
    )
    apply = ["terraform", "apply", "-auto-approve", "-input=false", "-no-color"]
    return {
        "deploy": timed(apply, stack, conn, env),
        "no-change deploy": timed(apply, stack, conn, env),
        "destroy": timed([*apply, "-destroy"], stack, conn, env),
    }


def measure(
    hosts: int, regions: int, deployments: int, runs: int, old_runs: int, url: str, conn: Connection
) -> dict[str, Any]:
    chosen = list(DEFAULT_REGIONS[:regions])
    case = {"regions": chosen, "counts": split(hosts, chosen, deployments)}
    new: list[dict[str, Step]] = []
    old: list[dict[str, Step]] = []
    for kind, count, runner in (("new", runs, run_new), ("old", old_runs, None)):
        for _ in range(count):
            conn.send("reset")
            conn.recv()
            with tempfile.TemporaryDirectory(prefix=f"perfops-bench-{kind}-") as scratch:
                if runner is not None:
                    new.append(runner(case, conn, Path(scratch)))
                else:
                    old.append(run_old(case, url, conn, Path(scratch)))
    return {"hosts": hosts, "regions": regions, "deployments": deployments, "new": new, "old": old}


def render(results: list[dict[str, Any]], load: float) -> str:
    def med(steps: list[dict[str, Step]], step: str, field: str) -> float | None:
        values = [getattr(s[step], field) for s in steps if step in s]
        return statistics.median(values) if values else None

    lines = [
        SECTION,
        "",
        "`bench/deploy.py` (issue 8). Against the local emulator (moto 5.2.1 in its own process,",
        "counting the requests it serves) with real Terraform 1.11 and hashicorp/aws 5.100.0;",
        f"the project's machine kind, 2 cores. Load average when it started: {load:.1f}.",
        "",
        "new: this shape (region stacks, batched instant fleets, `perfops deploy -y`). "
        "0.1: one stack,",
        "counted `aws_instance`, Terraform at parallelism 10. Median of the runs; memory is the",
        "peak of the whole process tree, summed as PSS (shared program text counted once) and",
        "as RSS (counted per process); CPU is the process tree's, and the emulator's own (it",
        "shares the 2 cores: a real account's API costs the machine none).",
        "",
        "| case | step | new s | 0.1 s | ratio | new calls | 0.1 calls | calls/host (new) "
        "| new PSS MB | 0.1 PSS MB | new RSS MB | 0.1 RSS MB | new CPU-s | 0.1 CPU-s "
        "| emulator CPU-s (new) |",
        "| --- | --- " + "| ---: " * 13 + "|",
    ]
    for r in results:
        label = f"{r['hosts']} hosts / {r['regions']} regions / {r['deployments']} dep."
        for step in ("deploy", "no-change deploy", "status", "destroy"):
            nw, ow = med(r["new"], step, "wall_s"), med(r["old"], step, "wall_s")
            nc, oc = med(r["new"], step, "calls"), med(r["old"], step, "calls")
            nm, om = med(r["new"], step, "peak_mb"), med(r["old"], step, "peak_mb")
            nps, ops = med(r["new"], step, "peak_pss_mb"), med(r["old"], step, "peak_pss_mb")
            nu, ou = med(r["new"], step, "cpu_s"), med(r["old"], step, "cpu_s")
            ne = med(r["new"], step, "emulator_cpu_s")
            ratio = f"{ow / nw:.1f}x" if nw and ow else "-"
            per_host = f"{nc / r['hosts']:.2f}" if nc is not None and step == "deploy" else ""

            def show(value: float | None, fmt: str) -> str:
                return "-" if value is None else format(value, fmt)

            lines.append(
                f"| {label} | {step} | {show(nw, '.1f')} | {show(ow, '.1f')} | {ratio} | "
                f"{show(nc, '.0f')} | {show(oc, '.0f')} | {per_host} | {show(nps, '.0f')} | "
                f"{show(ops, '.0f')} | {show(nm, '.0f')} | {show(om, '.0f')} | "
                f"{show(nu, '.0f')} | {show(ou, '.0f')} | {show(ne, '.0f')} |"
            )
        runs = ", ".join(f"{s['deploy'].wall_s:.1f}" for s in r["new"])
        lines.append(f"| {label} | deploy runs (new) | {runs} |" + " |" * 12)
    return "\n".join(lines) + "\n"


def raw(result: dict[str, Any]) -> dict[str, Any]:
    """A result as JSON: its runs' steps as plain dicts."""
    runs = {
        k: [{step: attrs.asdict(v) for step, v in run.items()} for run in result[k]]
        for k in ("new", "old")
    }
    return {**result, **runs}


def cooked(result: dict[str, Any]) -> dict[str, Any]:
    runs = {
        k: [{step: Step(**v) for step, v in run.items()} for run in result[k]]
        for k in ("new", "old")
    }
    return {**result, **runs}


def merged(results: list[dict[str, Any]], more: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of the same case (hosts, regions, deployments) put together."""
    by_case = {(r["hosts"], r["regions"], r["deployments"]): r for r in results}
    for r in more:
        key = (r["hosts"], r["regions"], r["deployments"])
        if key in by_case:
            mine = by_case[key]
            by_case[key] = {**mine, "new": mine["new"] + r["new"], "old": mine["old"] + r["old"]}
        else:
            by_case[key] = r
    return sorted(by_case.values(), key=lambda r: r["hosts"])


def write_section(section: str) -> None:
    path = REPO / "docs" / "benchmarks.md"
    text = path.read_text()
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or ""))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--old-runs", type=int, default=1)
    parser.add_argument("--cases", default="40,400")
    parser.add_argument(
        "--save", type=Path, help="Also write the raw results (JSON) here, for --add."
    )
    parser.add_argument(
        "--add",
        type=Path,
        action="append",
        default=[],
        help="Raw results of earlier runs (--save) to report together with these.",
    )
    options = parser.parse_args()
    shapes = {40: (40, 4, 2), 400: (400, 17, 4)}
    load = os.getloadavg()[0]
    with counting_moto() as (url, conn):
        results = [
            measure(*shapes[int(c)], options.runs, options.old_runs, url, conn)
            for c in options.cases.split(",")
        ]
    if options.save:
        options.save.write_text(json.dumps([raw(r) for r in results], indent=1))
    for path in options.add:
        results = merged(results, [cooked(r) for r in json.loads(path.read_text())])
    section = render(results, load)
    print(section)
    write_section(section)


if __name__ == "__main__":
    main()
