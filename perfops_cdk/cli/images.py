"""``perfops images``: sync, list, delete, purge, purge-s3, upload-raw."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import attrs
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from perfops_cdk.app import ImageRequirement
from perfops_cdk.cli.console import console, errors
from perfops_cdk.effects import state_file
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners import ami_sync
from perfops_cdk.project import Project
from perfops_cdk.props.regions import DEFAULT_REGIONS, check_region
from perfops_cdk.publishing import cleanup
from perfops_cdk.publishing.requirements import project_requirements, requirements_from_file
from perfops_cdk.publishing.sync import (
    ImageResult,
    ProgressEvent,
    SyncOptions,
    plan_all,
    sync_images,
)

images_app = typer.Typer(no_args_is_help=True, help="Nix-built images as AMIs in every region.")

Names = Annotated[
    list[str] | None,
    typer.Option("--names", help="Images: 'all' or names. Default: those deployments use."),
]
Regions = Annotated[
    list[str] | None,
    typer.Option("--regions", help="Regions (comma lists allowed). Default: those in use."),
]
Home = Annotated[
    str | None, typer.Option(help="Register here, copy from here. Default: the stack's.")
]
Method = Annotated[
    str, typer.Option(help="'ebs' (EBS direct, raw images) or 'import' (S3 + import, VHD).")
]
Yes = Annotated[bool, typer.Option("--yes", help="Remove without asking.")]


def _fail(error: PerfOpsError) -> typer.Exit:
    if str(error):
        errors.print(f"error: {error}", markup=False, highlight=False)
    return typer.Exit(error.exit_code)


class LiveProgress:
    """A live table per image and region: step, bytes uploaded, AMI or snapshot."""

    def __init__(self, out: Console) -> None:
        self._rows: dict[tuple[str, str], ProgressEvent] = {}
        self._lock = threading.Lock()
        self._live = Live(get_renderable=self.render, console=out, refresh_per_second=8)

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            previous = self._rows.get((event.image, event.region))
            if event.detail == "" and previous is not None and event.stage == previous.stage:
                event = attrs.evolve(event, detail=previous.detail)
            self._rows[(event.image, event.region)] = event

    def render(self) -> Table:
        table = Table(box=None, pad_edge=False)
        for column in ("image", "region", "step", "progress", "AMI / snapshot"):
            table.add_column(column)
        with self._lock:
            rows = sorted(self._rows.items())
        for (image, region), event in rows:
            amount = ""
            if event.total:
                unit = "%" if event.total == 100 else "MiB"
                scale = 1 if unit == "%" else 1024**2
                done = (event.done or 0) / scale
                amount = f"{done:.0f}/{event.total / scale:.0f} {unit}"
            style = {"failed": "red", "available": "green", "ready": "green"}.get(event.stage, "")
            table.add_row(image, region, Text(event.stage, style=style), amount, event.detail)
        return table

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()


def run_sync(
    requirements: Sequence[ImageRequirement],
    *,
    names: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    home: str | None = None,
    method: str = "ebs",
    force: bool = False,
    dry_run: bool = False,
    out: Console | None = None,
) -> list[ImageResult]:
    """Select, then print the plan (``dry_run``) or sync with a live view and summaries.

    Raises ``PerfOpsError`` when any region failed, after every region had its turn.
    """
    out = out or console
    if method not in ("ebs", "import"):
        raise PerfOpsError(f"--method: {method!r} is not allowed; use 'ebs' or 'import'")
    selections = ami_sync.select(requirements, names=names, regions=regions, home=home)
    if not selections:
        out.print("no images to sync: no deployment uses a nix-built image (try --names all)")
        return []
    if dry_run:
        for identity, plan in plan_all(selections, force=force):
            for line in ami_sync.describe(plan, built=identity.built):
                out.print(line, markup=False, highlight=False)
        return []
    options = SyncOptions(method=method, force=force)
    with LiveProgress(out) as progress:
        results = sync_images(selections, options=options, progress=progress)
    for result in results:
        out.print(result.summary(), markup=False, highlight=False)
    failed = [r for r in results if r.failed]
    if failed:
        raise PerfOpsError(f"{len(failed)} image(s) not available everywhere; rerun to finish")
    return results


def _requirements() -> list[ImageRequirement]:
    return project_requirements(Project.find())


@images_app.command("sync")
def sync(
    names: Names = None,
    regions: Regions = None,
    home: Home = None,
    method: Method = "ebs",
    force: Annotated[bool, typer.Option(help="Replace this uuid's existing AMIs.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the plan; change nothing.")] = False,
    requirements: Annotated[
        Path | None,
        typer.Option(hidden=True, help="The app's --list-images output, given by --sync-amis."),
    ] = None,
) -> None:
    """Build what is missing with nix and publish it as AMIs in every region that needs it."""
    try:
        run_sync(
            requirements_from_file(requirements) if requirements else _requirements(),
            names=names,
            regions=regions,
            home=home,
            method=method,
            force=force,
            dry_run=dry_run,
        )
    except PerfOpsError as error:
        raise _fail(error) from None


@images_app.command("upload-raw")
def upload_raw(
    path: Annotated[Path, typer.Argument(help="A raw disk image file.")],
    name: Annotated[str, typer.Option(help="Image name; the AMI is <name>-<content hash>.")],
    regions: Regions = None,
    home: Home = None,
) -> None:
    """Publish a raw disk image that nix did not build, the same way as sync does."""
    try:
        requirement = _home_requirement(_requirements())
        if not path.is_file():
            raise PerfOpsError(f"{path}: no such disk image file")
        home_region = check_region(home, "--home") if home else requirement.home_region
        targets = ami_sync.split_list(regions) or []
        selection = ami_sync.Selection(
            name=name,
            home_region=home_region,
            regions=tuple(sorted({home_region, *(check_region(r, "--regions") for r in targets)})),
            uuid=requirement.uuid,
            project_dir=requirement.project_dir,
            raw_path=str(path.resolve()),
        )
        with LiveProgress(console) as progress:
            results = sync_images([selection], progress=progress)
        console.print(results[0].summary(), markup=False, highlight=False)
        if results[0].failed:
            raise PerfOpsError("not available everywhere; rerun to finish")
    except PerfOpsError as error:
        raise _fail(error) from None


def _home_requirement(requirements: Sequence[ImageRequirement]) -> ImageRequirement:
    if not requirements:
        raise PerfOpsError("the app declares no PerfOpsStack with images; nothing to act for")
    return requirements[0]


def _regions(regions: Sequence[str] | None) -> list[str]:
    """Explicit regions, or every default region (where delete, purge and list look)."""
    chosen = ami_sync.split_list(regions)
    if chosen is None or chosen == ["all"]:
        return list(DEFAULT_REGIONS)
    return [check_region(r, "--regions") for r in chosen]


def _state_path(requirement: ImageRequirement) -> Path:
    return Path(requirement.project_dir) / state_file.DEFAULT_STATE_FILE


@images_app.command("list")
def list_images(
    regions: Regions = None,
    rebuild_state: Annotated[
        bool,
        typer.Option(
            help="Rewrite state.json from the AMIs' tags (lost or unreadable: a copy is kept)."
        ),
    ] = False,
) -> None:
    """Per image and region: AMI, snapshot, state (this uuid's, looked up in AWS)."""
    try:
        requirement = _home_requirement(_requirements())
        found = cleanup.find_images(_regions(regions), requirement.uuid)
        kept = None
        if rebuild_state:
            path = _state_path(requirement)
            with state_file.locked(path):
                kept = state_file.rebuild(path, cleanup.state_from_tags(found, requirement.uuid))
    except PerfOpsError as error:
        raise _fail(error) from None
    if kept is not None:
        console.print(f"kept the unreadable state as {kept}", markup=False, highlight=False)
    table = Table(title=f"images of {requirement.uuid}", box=None)
    for column in ("image", "region", "AMI", "name", "snapshot", "state"):
        # Ids stay whole (people copy them); the long AMI name wraps instead.
        table.add_column(column, no_wrap=column != "name", overflow="fold")
    for item in sorted(found, key=lambda f: (f.image, f.region, f.kind)):
        ami = item.resource_id if item.kind == "ami" else "-"
        snapshot = ", ".join(item.snapshot_ids) if item.kind == "ami" else item.resource_id
        table.add_row(item.image or "?", item.region, ami, item.name, snapshot or "-", item.state)
    console.print(table)


def _confirm_and_remove(found: list[cleanup.Found], path: Path, yes: bool, what: str) -> None:
    if not found:
        console.print(f"nothing to remove: no {what} found")
        return
    cleanup.refuse_pending(found, path)
    console.print(f"will remove {len(found)} {what}:")
    for item in found:
        extra = f" (+ {', '.join(item.snapshot_ids)})" if item.snapshot_ids else ""
        console.print(
            f"  {item.region} {item.kind} {item.resource_id} {item.name} uuid={item.uuid}{extra}",
            markup=False,
            highlight=False,
        )
    if not yes:
        raise PerfOpsError("nothing removed; add --yes to remove the above")
    for line in cleanup.remove(found, path):
        console.print(line, markup=False, highlight=False)


@images_app.command("delete")
def delete(regions: Regions = None, yes: Yes = False) -> None:
    """Remove the AMIs and snapshots this uuid's syncs made (never another uuid's, never a
    host's snapshot)."""
    try:
        requirement = _home_requirement(_requirements())
        found = cleanup.find_images(_regions(regions), requirement.uuid)
        _confirm_and_remove(found, _state_path(requirement), yes, f"image(s) of {requirement.uuid}")
    except PerfOpsError as error:
        raise _fail(error) from None


@images_app.command("purge")
def purge(regions: Regions = None, yes: Yes = False) -> None:
    """Remove every AMI and snapshot an image sync made in the account, whichever uuid."""
    try:
        requirement = _home_requirement(_requirements())
        found = cleanup.find_images(_regions(regions), None)
        _confirm_and_remove(found, _state_path(requirement), yes, "perf-ops image(s)")
    except PerfOpsError as error:
        raise _fail(error) from None


@images_app.command("purge-s3")
def purge_s3(
    bucket: Annotated[
        str | None, typer.Option(help="Default: perfops-images-<uuid>, as sync uses.")
    ] = None,
    yes: Yes = False,
    force: Annotated[
        bool, typer.Option(help="Also a bucket that no sync of this uuid created.")
    ] = False,
) -> None:
    """Remove the images bucket that ``--method import`` uploads to, with its objects."""
    try:
        requirement = _home_requirement(_requirements())
        name = bucket or f"perfops-images-{requirement.uuid}"
        if not force:
            cleanup.check_images_bucket(name, requirement.home_region, requirement.uuid)
        keys = cleanup.s3_objects(name, requirement.home_region)
        console.print(
            Group(*(Text(f"  s3://{name}/{k}") for k in keys))
            if keys
            else Text(f"s3://{name}: no objects")
        )
        if not yes:
            raise PerfOpsError("nothing removed; add --yes to remove the above")
        for line in cleanup.purge_s3(name, requirement.home_region, keys):
            console.print(line, markup=False, highlight=False)
    except PerfOpsError as error:
        raise _fail(error) from None
