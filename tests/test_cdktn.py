"""CDK Terrain (``cdktn``) as the core, in a cached venv without cdktf at all.

The venv (``.perfops/venvs/cdktn``) holds the project's runtime pins minus cdktf (and
moto, which synthesis never uses) plus the ``cdktn`` extra; made on a checkout's first
run (about a minute) and reused after. perfops_cdk itself comes from this checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from venvkit import ROOT, ensure_or_skip, extra_pins, runtime_pins

from perfops_cdk.effects.state_file import ImageRecord, RegionImage, SyncState, save
from perfops_cdk.effects.terraform import Workspace
from perfops_cdk.jsii_env import BACKEND_ENV, NODE_WARNING_ENV

pytestmark = [
    pytest.mark.slow,
    pytest.mark.terraform,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed"),
]

UUID = "cdktnuuid1"
# The example app's image (images.py) and the regions its demo fleet uses.
DEMO_IMAGE = "perfops-demo-v1"
DEMO_REGIONS = ("eu-central-1", "eu-west-1", "eu-west-2", "us-east-1")
REFERENCE_REGIONS = ("eu-west-1", "us-east-1", "ap-south-1", "sa-east-1")

# A reference fleet: 40 hosts in 4 regions, on-demand and spot capacity, containers.
REFERENCE = """
from perfops_cdk import (
    Capacity, ContainerService, Deployment, HostContainers, ImageAsset, PerfOpsStack,
    SecurityGroup, Rule,
)
from perfops_cdk.app import main

REGIONS = {regions!r}


def define(app):
    stack = PerfOpsStack(
        app, "reference", home_region="eu-west-1",
        security_groups=[SecurityGroup(name="metrics", ingress=[Rule(from_port=9100,
                                       cidrs=["10.0.0.0/8"])])],
    )
    image = ImageAsset.from_ami_ids(
        stack, "node", name="node-v1", ami_ids={{r: "ami-0123456789abcdef0" for r in REGIONS}}
    )
    Deployment(stack, "steady", image=image, instance_type="r5d.xlarge",
               regions={{r: 5 for r in REGIONS}}, security_groups=["allow-ssh", "metrics"],
               ssh_cidrs=["198.51.100.0/24"])
    burst = Deployment(
        stack, "burst", image=image,
        capacity=Capacity.spot("c5.xlarge", "c5a.xlarge", on_demand_base=1, on_demand_percent=20),
        regions={{r: 5 for r in REGIONS}}, tags={{"purpose": "burst"}},
    )
    HostContainers(burst, "clients", services=[ContainerService(
        name="k6-a", entry_folder="k6", container_name_prefix="a",
        host_address="10.254.0.1", network="10.254.1", container_count=50)])


main(define)
"""


def cdktn_python() -> Path:
    """The cdktn venv's python; the test is skipped, naming pip's error, only when cdktn
    cannot be installed here (it is on the package index: 38 s the first time)."""
    return ensure_or_skip("cdktn", [*runtime_pins(without=("cdktf", "moto")), *extra_pins("cdktn")])


def synthesize(python: Path, app: list[str], project: Path) -> Path:
    """Run ``app`` with ``python`` for ``project``; its cdktf.out."""
    env = {
        **NODE_WARNING_ENV,
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PERF_UUID": UUID,
        "PERFOPS_PROJECT_DIR": str(project),
        "CDKTF_OUTDIR": str(project / "cdktf.out"),
    }
    for key in ("PERFOPS_AWS_ENDPOINT", BACKEND_ENV):
        env.pop(key, None)
    done = subprocess.run(
        [str(python), *app], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return project / "cdktf.out"


def stacks(outdir: Path) -> dict[str, dict[str, Any]]:
    return {
        folder.name: json.loads((folder / "cdk.tf.json").read_text())
        for folder in sorted((outdir / "stacks").iterdir())
    }


def without_core_version(stack: dict[str, Any]) -> dict[str, Any]:
    """The stack with the one place the core names itself removed: "//".metadata.version."""
    metadata = {k: v for k, v in stack["//"]["metadata"].items() if k != "version"}
    return {**stack, "//": {**stack["//"], "metadata": metadata}}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Both apps synthesized by each core: outputs[core][app] is a cdktf.out."""
    cdktn = cdktn_python()
    base = tmp_path_factory.mktemp("cores")
    app_file = base / "reference.py"
    app_file.write_text(REFERENCE.format(regions=REFERENCE_REGIONS))
    found: dict[str, dict[str, Path]] = {}
    for core, python in (("cdktf", ROOT / ".venv" / "bin" / "python"), ("cdktn", cdktn)):
        found[core] = {}
        for app, argv in (("demo", ["deployments.py"]), ("reference", [str(app_file)])):
            # Same depth under base for both cores: relative paths in the JSON agree.
            project = base / app / core
            project.mkdir(parents=True)
            available = RegionImage(ami_id="ami-0123456789abcdef0", state="available")
            record = ImageRecord(
                f"{DEMO_IMAGE}-x", "eu-west-1", dict.fromkeys(DEMO_REGIONS, available)
            )
            save(project / "state.json", SyncState({DEMO_IMAGE: record}))
            found[core][app] = synthesize(python, argv, project)
    return found


def test_cdktn_venv_has_no_cdktf_and_picks_cdktn() -> None:
    """Without cdktf installed, perfops_cdk falls back to cdktn on its own."""
    python = cdktn_python()
    env = {**NODE_WARNING_ENV, **os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(BACKEND_ENV, None)
    probe = "import importlib.util as u; from perfops_cdk._cdktf import CORE; "
    probe += "print(CORE, u.find_spec('cdktf') is None)"
    done = subprocess.run(
        [str(python), "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cdktn", "True"]


def test_cdktn_output_equals_cdktf_output_but_for_the_core_version(
    outputs: dict[str, dict[str, Path]],
) -> None:
    """The example app and a 40-host reference fleet synthesize to the same Terraform JSON
    under both cores; only "//".metadata.version (the core's own version) differs."""
    for app in ("demo", "reference"):
        cdktf, cdktn = stacks(outputs["cdktf"][app]), stacks(outputs["cdktn"][app])
        assert sorted(cdktf) == sorted(cdktn)
        for name in cdktf:
            assert cdktf[name]["//"]["metadata"]["version"] == "0.21.0"
            assert cdktn[name]["//"]["metadata"]["version"] == "0.24.0"
            assert without_core_version(cdktn[name]) == without_core_version(cdktf[name]), name
    batches = [
        batch
        for data in stacks(outputs["cdktn"]["reference"]).values()
        for fleet in data.get("resource", {}).get("aws_ec2_fleet", {}).values()
        for batch in fleet["for_each"].values()
    ]
    assert sum(batch["hosts"] for batch in batches) == 40


def test_cdktn_output_validates_against_the_provider_schema(
    outputs: dict[str, dict[str, Path]],
) -> None:
    """`terraform validate` accepts every region stack cdktn wrote, both apps."""
    for app, regions in (("demo", DEMO_REGIONS), ("reference", REFERENCE_REGIONS)):
        outdir = outputs["cdktn"][app]
        stack = "perf-ops" if app == "demo" else "reference"
        for region in regions:
            workspace = Workspace(outdir / "stacks" / f"{stack}-{region}", outdir.parent)
            workspace.init()
            report = workspace.validate()
            assert report["valid"] is True, (app, region, report["diagnostics"])
