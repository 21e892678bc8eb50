"""``perfops demo``: the whole flow against the embedded AWS emulator.

Start the emulator, build the declared images with nix and sync them as AMIs to the
regions the deployments use (the same sync as ``perfops images sync``), synthesize,
``terraform apply``, print status, destroy, stop.
Everything the demo writes lives under ``.perfops/demo/``, apart from the user's
own state: a demo never touches a real deployment's state files.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from perfops_cdk import operations
from perfops_cdk.constructs.stack import PROJECT_DIR_ENV, UUID_ENV
from perfops_cdk.effects import state_file
from perfops_cdk.effects.emulator import running_emulator
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners import ami_sync
from perfops_cdk.project import Project
from perfops_cdk.publishing.requirements import project_requirements
from perfops_cdk.publishing.sync import SyncOptions, sync_images

DEMO_UUID = "perfopsdemo"

Say = Callable[[str], None]


def sync_demo_images(project: Project, say: Say) -> None:
    """Build the declared images with nix and publish them to the emulator as AMIs."""
    needed = project_requirements(project)
    selections = ami_sync.select(needed)
    for line in (r.summary() for r in sync_images(selections, options=SyncOptions(poll_s=0.2))):
        say(f"image {line}")


def _check(report: operations.Report, verb: str) -> None:
    failed = [
        f"{r.unit.name}: {r.error or (r.outcome and r.outcome.errors)}"
        for r in report.runs
        if not r.ok
    ]
    if failed or report.leftovers:
        left = ", ".join(r.line() for r in report.leftovers)
        raise PerfOpsError(f"demo {verb} failed: {'; '.join(failed) or left}")


def run_demo(project: Project, say: Say, show: Callable[[operations.Status], None]) -> None:
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
            say("nix-build the demo image, upload it (EBS direct), register, copy to regions")
            sync_demo_images(demo, say)
            say("synth, then terraform apply of each region's stack, concurrently")
            deployed = operations.deploy(demo, auto_approve=True, progress=say)
            _check(deployed, "deploy")
            show(operations.status(demo, synth=False))
            say("every region stack emptied through the API, then a look for anything left")
            destroyed = operations.destroy(demo, auto_approve=True, progress=say)
            _check(destroyed, "destroy")
            say("done: every host, fleet and group was created, listed and destroyed")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
