"""``perfops demo``: the whole flow against the embedded AWS emulator.

Start the emulator, make the declared images available as AMIs in the regions the
deployments use, synthesize, ``terraform apply``, print status, destroy, stop.
Everything the demo writes lives under ``.perfops/demo/``, apart from the user's
own state: a demo never touches a real deployment's state files.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfops_cdk import operations
from perfops_cdk.app import ImageRequirement
from perfops_cdk.constructs.stack import PROJECT_DIR_ENV, UUID_ENV
from perfops_cdk.effects import aws, state_file
from perfops_cdk.effects.emulator import running_emulator
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners.status import StatusRow
from perfops_cdk.project import Project

DEMO_UUID = "perfopsdemo"

Say = Callable[[str], None]


def requirements(project: Project) -> list[ImageRequirement]:
    """Ask the project's app which images and regions its deployments need."""
    result = subprocess.run(
        [*project.app, "--list-images"],
        cwd=project.root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PerfOpsError(result.stderr.strip().removeprefix("error: ") or "app failed")
    raw: list[dict[str, Any]] = json.loads(result.stdout)
    return [
        ImageRequirement(
            **{
                **entry,
                "regions": tuple(entry["regions"]),
                "host_modules": tuple(entry["host_modules"]),
                "container_modules": None
                if entry["container_modules"] is None
                else tuple(entry["container_modules"]),
            }
        )
        for entry in raw
    ]


def register_placeholder_amis(needed: list[ImageRequirement], state_path: Path, say: Say) -> None:
    """Stand-in for the nix image pipeline (issue 3) in the demo only: register an AMI
    per image in its home region, copy it to the other regions, record them."""
    state = state_file.load(state_path)
    images = dict(state.images)
    for image in needed:
        if image.prebuilt or not image.regions:
            continue
        ami_name = f"{image.name}-demo"
        home = aws.client("ec2", image.home_region)
        home_ami = home.register_image(
            Name=ami_name,
            Architecture="x86_64",
            RootDeviceName="/dev/xvda",
            VirtualizationType="hvm",
            EnaSupport=True,
        )["ImageId"]
        regions = {image.home_region: state_file.RegionImage(ami_id=home_ami, state="available")}
        for region in image.regions:
            if region == image.home_region:
                continue
            copy = aws.client("ec2", region).copy_image(
                Name=ami_name, SourceImageId=home_ami, SourceRegion=image.home_region
            )
            regions[region] = state_file.RegionImage(ami_id=copy["ImageId"], state="available")
        images[image.name] = state_file.ImageRecord(
            ami_name=ami_name, home_region=image.home_region, regions=regions
        )
        say(f"image {image.name}: AMIs in {', '.join(sorted(regions))}")
    state_file.save(state_path, state_file.SyncState(images=images))


def run_demo(
    project: Project, say: Say, show: Callable[[dict[str, list[StatusRow]]], None]
) -> None:
    work = project.root / ".perfops" / "demo"
    work.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in (PROJECT_DIR_ENV, UUID_ENV)}
    os.environ[PROJECT_DIR_ENV] = str(work)
    os.environ[UUID_ENV] = DEMO_UUID
    demo = Project(root=project.root, app=project.app, outdir=work / "cdktf.out")
    try:
        with running_emulator(export=True) as emulator:
            say(f"AWS emulator (moto) at {emulator.url}")
            (work / state_file.DEFAULT_STATE_FILE).unlink(missing_ok=True)
            needed = requirements(demo)
            register_placeholder_amis(needed, work / state_file.DEFAULT_STATE_FILE, say)
            say("synth + terraform apply (about a minute: moto starts hosts like EC2 does)")
            for summary in operations.deploy(demo, auto_approve=True, quiet=True):
                say(f"terraform: {summary}")
            show(operations.status(demo, synth=False))
            say("terraform destroy")
            for summary in operations.destroy(demo, auto_approve=True, quiet=True):
                say(f"terraform: {summary}")
            say("done: every host and security group was created, listed and destroyed")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
