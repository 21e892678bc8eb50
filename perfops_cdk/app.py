"""Run a perfops app: ``python deployments.py`` and the ``cdktf.json`` app command.

Synthesis is atomic: the app synthesizes into a fresh directory beside the output
directory, which replaces the old one only when synthesis succeeded, so a mistake in
a declaration never leaves a half-written ``cdktf.out``. Bad input exits 2 with one
line on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from perfops_cdk.errors import PerfOpsError
from perfops_cdk.jsii_env import COLLECT_IMAGES_CONTEXT

if TYPE_CHECKING:
    # Imported where an app is built: cdktf starts its jsii runtime on import, and the
    # CLI reads ImageRequirement and the constants here without synthesizing anything.
    from perfops_cdk._cdktf import Annotation, App

DEFAULT_OUTDIR = "cdktf.out"
OUTDIR_ENV = "CDKTF_OUTDIR"  # set by the cdktf CLI when it runs the app

Define = Callable[["App"], object]


@attrs.frozen
class ImageRequirement:
    """An image some deployment uses, and the regions it must be available in."""

    stack: str
    id: str
    name: str
    regions: tuple[str, ...]
    home_region: str
    uuid: str
    prebuilt: bool
    host_modules: tuple[str, ...]
    container_modules: tuple[str, ...] | None
    project_dir: str
    nix_file: str | None = None  # absolute; None for prebuilt images
    attr: str | None = None
    args: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> ImageRequirement:
        """One entry of ``--list-images`` output."""
        modules = entry.get("container_modules")
        return cls(
            **{
                **entry,
                "regions": tuple(entry["regions"]),
                "host_modules": tuple(entry["host_modules"]),
                "container_modules": None if modules is None else tuple(modules),
                "args": dict(entry.get("args") or {}),
            }
        )


def print_annotation(annotation: Annotation) -> None:
    """One line on stderr, e.g. ``warning: perf-ops/steady: ...``."""
    print(f"{annotation.level}: {annotation.path}: {annotation.message}", file=sys.stderr)


def synth(
    define: Define,
    outdir: str | Path | None = None,
    *,
    on_annotation: Callable[[Annotation], object] = print_annotation,
) -> Path:
    """Declare the app with ``define`` and synthesize it into ``outdir`` atomically.

    Warning and info annotations go to ``on_annotation`` (default: one line each on
    stderr); an error annotation fails synthesis with a one-line PerfOpsError.
    """
    from perfops_cdk._cdktf import App, synthesize

    target = Path(outdir or os.environ.get(OUTDIR_ENV) or DEFAULT_OUTDIR).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would make cdktf.out private to its writer
    try:
        app = App(outdir=str(staging))
        define(app)
        annotations = synthesize(app)
        _replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for annotation in annotations:
        on_annotation(annotation)
    return target


# Terraform's working files in a stack directory outlive a synth, as they do under the
# cdktf CLI: the provider lock file pins checksums, and `cdktf deploy` with a local
# provider mirror fails without one (hashicorp/terraform-cdk#3568).
KEPT_STACK_FILES = (".terraform.lock.hcl", ".terraform")


def _replace_dir(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        for stack in (new / "stacks").glob("*"):
            for name in KEPT_STACK_FILES:
                kept = target / "stacks" / stack.name / name
                if kept.exists() and not (stack / name).exists():
                    kept.rename(stack / name)
        target.rename(old)
    _share_lock_files(new / "stacks")
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _share_lock_files(stacks: Path) -> None:
    """A stack new to the output (a region just added) gets the provider lock file of a
    stack that requires exactly the same providers, so ``cdktf deploy`` offline works
    for it too instead of asking the registry (hashicorp/terraform-cdk#3568)."""
    lock_name = KEPT_STACK_FILES[0]
    has_lock = {(stack / lock_name).is_file() for stack in stacks.glob("*")}
    if has_lock != {True, False}:
        return  # every stack has one (the usual synth), or none has: nothing to share
    locks: dict[str, Path] = {}
    missing: list[tuple[str, Path]] = []
    for stack in sorted(stacks.glob("*")):
        try:
            config = json.loads((stack / "cdk.tf.json").read_text())
        except (OSError, ValueError):
            continue
        providers = json.dumps(
            config.get("terraform", {}).get("required_providers"), sort_keys=True
        )
        lock = stack / lock_name
        if lock.is_file():
            locks.setdefault(providers, lock)
        else:
            missing.append((providers, lock))
    for providers, lock in missing:
        if providers in locks:
            shutil.copyfile(locks[providers], lock)


def image_requirements(define: Define) -> list[ImageRequirement]:
    """Every declared image with the regions its deployments use, read from the image
    manifest of a synthesis into a scratch directory, as ``perfops images`` reads any
    app's (missing AMIs are placeholders there); the app's own output is not touched."""
    from perfops_cdk._cdktf import App, synthesize

    with tempfile.TemporaryDirectory(prefix="perfops-collect-") as scratch:
        outdir = Path(scratch) / "out"
        app = App(outdir=str(outdir), context={COLLECT_IMAGES_CONTEXT: scratch})
        define(app)
        synthesize(app)  # its warnings are printed by the synthesis that follows
        return requirements_from_outdir(outdir)


def requirements_from_outdir(outdir: Path) -> list[ImageRequirement]:
    """The images the stacks of a synthesis output list in their image manifest
    (``"//"."perfops"."images"``, constructs/image.py), in synthesis order."""
    try:
        manifest = json.loads((outdir / "manifest.json").read_text())
        stacks = [outdir / entry["synthesizedStackPath"] for entry in manifest["stacks"].values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise PerfOpsError(f"{outdir}: no synthesized stacks ({error})") from None
    requirements = []
    for path in stacks:
        try:
            note = json.loads(path.read_text()).get("//", {}).get("perfops", {})
            for entry in note.get("images", []):
                requirements.append(_from_manifest(entry, path.parent))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise PerfOpsError(f"{path}: not an image manifest ({error})") from None
    return requirements


def _from_manifest(entry: dict[str, Any], stack_dir: Path) -> ImageRequirement:
    """An image of the manifest; its paths are relative to the stack's directory."""
    paths = {
        key: str((stack_dir / entry[key]).resolve())
        for key in ("project_dir", "nix_file")
        if entry.get(key) is not None
    }
    return ImageRequirement.from_json({**entry, **paths})


def main(define: Define, argv: Sequence[str] | None = None) -> None:
    """Entry point of a user's ``deployments.py``.

    No arguments: synthesize. ``--list-images``: print the image requirements as JSON.
    ``--sync-amis [--names ...] [--regions ...] [--home R] [--force] [--dry-run]``:
    publish the images as AMIs (runs ``perfops images sync``), then synthesize (not
    after ``--dry-run``). Bad input exits 2 with one line on stderr.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args == ["--list-images"]:
            listing: list[dict[str, Any]] = [attrs.asdict(r) for r in image_requirements(define)]
            print(json.dumps(listing, indent=2))
        elif args and args[0] == "--sync-amis":
            options = _sync_arguments(args[1:])
            _run_image_sync(image_requirements(define), options)
            if not options["dry_run"]:
                synth(define)
        elif args:
            raise PerfOpsError(
                f"unknown arguments {' '.join(args)!r}; allowed: --list-images, --sync-amis"
            )
        else:
            synth(define)
    except PerfOpsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None


def _run_image_sync(requirements: Sequence[ImageRequirement], options: dict[str, Any]) -> None:
    """``perfops images sync`` as a program, given the requirements this app declares.

    The CLI sits above this module on the package ladder, so it is run, never imported;
    it shares this terminal for its live view and prints its own one-line errors.
    """
    argv = [sys.executable, "-m", "perfops_cdk.cli.main", "images", "sync"]
    for name in ("names", "regions"):
        for value in options[name] or ():
            argv += [f"--{name}", value]
    if options["home"]:
        argv += ["--home", options["home"]]
    argv += ["--method", options["method"]]
    if options["force"]:
        argv.append("--force")
    if options["dry_run"]:
        argv.append("--dry-run")
    # The child imports the same perfops_cdk as this app, wherever that came from.
    package_root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="perfops-sync-") as scratch:
        listing = Path(scratch) / "images.json"
        listing.write_text(json.dumps([attrs.asdict(r) for r in requirements]))
        argv += ["--requirements", str(listing)]
        done = subprocess.run(argv, env={**os.environ, "PYTHONPATH": path}, check=False)
    if done.returncode != 0:
        raise SystemExit(done.returncode)  # the sync has printed its one line


def _sync_arguments(args: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="deployments.py --sync-amis", add_help=False, exit_on_error=False
    )
    parser.add_argument("--names", nargs="+")
    parser.add_argument("--regions", nargs="+")
    parser.add_argument("--home")
    parser.add_argument("--method", choices=("ebs", "import"), default="ebs")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--dry-run", action="store_true")
    try:
        parsed, unknown = parser.parse_known_args(args)
    except argparse.ArgumentError as error:
        raise PerfOpsError(f"--sync-amis: {error}") from None
    if unknown:
        raise PerfOpsError(
            f"--sync-amis: unknown arguments {' '.join(unknown)!r}; allowed: --names, "
            "--regions, --home, --method, --force, --dry-run"
        )
    return vars(parsed)
