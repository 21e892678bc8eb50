"""ImageAsset: a machine image available as an AMI in each region that uses it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from perfops_cdk._cdktf import App, Construct, StackNote
from perfops_cdk.constructs.base import check_new_child, located
from perfops_cdk.constructs.region import relative_to_stack_dir
from perfops_cdk.constructs.stack import PerfOpsStack, owning_stack
from perfops_cdk.effects import state_file
from perfops_cdk.errors import InvalidField, PerfOpsError
from perfops_cdk.jsii_env import COLLECT_IMAGES_CONTEXT
from perfops_cdk.props.fields import (
    to_dict,
    to_optional_dict,
    to_optional_tuple,
    to_tuple,
    using,
)
from perfops_cdk.props.regions import check_region

# The AMI is named "<name>-<32-char store hash>"; AWS allows 128 characters.
_IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,90}$")
_AMI_ID = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
# Stands in while requirements are collected; synthesized only into a scratch directory.
PENDING_AMI = "ami-00000000"
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ATTR = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*(\.[A-Za-z_][A-Za-z0-9_'-]*)*$")
_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*$")
# The project's image entry point: mkImage with the construct's own name and modules.
DEFAULT_NIX_FILE = "nix/image.nix"
# The image manifest: what the image sync needs of each image, written at synthesis
# beside the stack's own summary, as "//"."perfops"."images" of the PerfOpsStack's
# cdk.tf.json (publishing/requirements.py reads it; paths are relative to that file).
# A dot: no perfops construct id can take it.
IMAGES_NOTE = "perfops.images"


def sync_command(name: str, regions: Sequence[str]) -> str:
    """The command that publishes ``name`` in ``regions``: it works for every app,
    run through ``perfops_cdk.app.main`` or a plain cdktf ``app.synth()``."""
    return f"perfops images sync --names {name} --regions {','.join(regions)}"


def _check_image_name(value: Any, field: str) -> None:
    if not (isinstance(value, str) and _IMAGE_NAME.fullmatch(value)):
        raise InvalidField(
            field, value, "must be 3 to 91 letters, digits, '.', '_' or '-', starting alnum"
        )


def _check_ami_ids(value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping) or not value:
        raise InvalidField(field, value, "must map at least one region to an AMI id")
    for region, ami in value.items():
        check_region(region, field)
        if not (isinstance(ami, str) and _AMI_ID.fullmatch(ami)):
            raise InvalidField(f"{field}[{region!r}]", ami, "must be an AMI id like 'ami-0abc1234'")


def _check_folders(value: Any, field: str) -> None:
    if value is not None and not isinstance(value, tuple):
        raise InvalidField(field, value, "must be a list of folders under container_modules/")
    for folder in value or ():
        if not (isinstance(folder, str) and _FOLDER.fullmatch(folder)):
            raise InvalidField(field, folder, "must be a folder name under container_modules/")


def _check_host_modules(value: Any, field: str) -> None:
    if not isinstance(value, tuple):
        raise InvalidField(field, value, "must be a list of NixOS module files")
    for module in value:
        if not (isinstance(module, str) and module.endswith(".nix") and "," not in module):
            raise InvalidField(
                field, module, "must be a NixOS module file relative to the project, e.g. 'h.nix'"
            )


def _check_nix_file(value: Any, field: str) -> None:
    if not (isinstance(value, str) and value.endswith(".nix")):
        raise InvalidField(field, value, "must be a path to a .nix file, relative to the project")


def _check_attr(value: Any, field: str) -> None:
    if value is not None and not (isinstance(value, str) and _ATTR.fullmatch(value)):
        raise InvalidField(field, value, "must be a nix attribute path like 'images.k6.image'")


def _check_args(value: Any, field: str) -> None:
    if not isinstance(value, Mapping):
        raise InvalidField(field, value, "must map argument names to strings")
    for key, arg in value.items():
        if not (isinstance(key, str) and _ARG.fullmatch(key) and isinstance(arg, str)):
            raise InvalidField(f"{field}[{key!r}]", arg, "must map argument names to strings")


@attrs.frozen
class ImageProps:
    name: str = attrs.field(validator=using(_check_image_name))
    host_modules: tuple[str, ...] = attrs.field(
        default=(), converter=to_tuple, validator=using(_check_host_modules)
    )
    container_modules: tuple[str, ...] | None = attrs.field(
        default=(),
        converter=to_optional_tuple,
        validator=using(_check_folders),
    )
    ami_ids: dict[str, str] | None = attrs.field(
        default=None,
        converter=to_optional_dict,
        validator=using(_check_ami_ids),
    )
    nix_file: str = attrs.field(default=DEFAULT_NIX_FILE, validator=using(_check_nix_file))
    attr: str | None = attrs.field(default=None, validator=using(_check_attr))
    args: dict[str, str] = attrs.field(
        factory=dict, converter=to_dict, validator=using(_check_args)
    )


class MissingAmi(PerfOpsError):
    """An image has no recorded AMI in a region a deployment uses."""


class ImageAsset(Construct):
    """A NixOS image built by nix and published as AMIs by ``perfops images sync``.

    Construction never builds or uploads: synthesis reads the AMI ids that the last
    sync recorded in the stack's ``state.json``.

    :param name: the image's name; AMIs are named ``<name>-<nix store hash>``.
    :param host_modules: extra NixOS module files for the host, relative to the project
        root. Default: none.
    :param container_modules: folders of ``container_modules/`` baked into the image;
        the first is also prebuilt as one standard container so its errors surface at
        build time. Default: none. ``None`` means unknown (only for ``from_ami_ids``).
    :param nix_file: the nix expression that builds the image; a relative path is
        relative to the directory the app runs in (where ``cdktf.json`` is). Default
        ``nix/image.nix``: ``mkImage`` given this image's name and modules.
    :param attr: the attribute of ``nix_file`` to build. Default: none (the file's
        top-level derivation).
    :param args: ``--argstr`` arguments for ``nix_file``. Default: for
        ``nix/image.nix``, the name and the modules above; otherwise none.

    The output's ``nix-support/image-info.json`` describes the disk, as NixOS image
    builders write it; ``nix/test-image`` is a small image that needs no nixpkgs.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        host_modules: Sequence[str] = (),
        container_modules: Sequence[str] | None = (),
        nix_file: str = DEFAULT_NIX_FILE,
        attr: str | None = None,
        args: Mapping[str, str] | None = None,
        _ami_ids: Mapping[str, str] | None = None,
    ) -> None:
        path = check_new_child(scope, id)
        stack = owning_stack(scope, path)
        self.props = located(
            path,
            lambda: ImageProps(
                name=name,
                host_modules=host_modules,
                container_modules=container_modules,
                ami_ids=_ami_ids,
                nix_file=nix_file,
                attr=attr,
                args=args or {},
            ),
        )
        builds_with_mkimage = _ami_ids is None and self.props.nix_file == DEFAULT_NIX_FILE
        if builds_with_mkimage and not self.props.container_modules:
            raise InvalidField(
                "container_modules",
                [],
                "name at least one folder of container_modules/ (mkImage prebuilds one "
                "standard container from the first), or give nix_file",
            ).at(path)
        for other in ImageAsset.all_in(stack):
            if other.name == self.props.name:
                raise InvalidField(
                    "name", name, f"already used by {other.node.path}; image names are unique"
                ).at(path)
        if stack.node.try_find_child(IMAGES_NOTE) is None:
            _check_collect_dir(stack)
            StackNote(stack, IMAGES_NOTE, lambda: {"images": _manifest(stack)})
        super().__init__(scope, id)
        self.stack = stack
        self.nix_path = (Path.cwd() / self.props.nix_file).resolve()
        self.required_regions: set[str] = set()

    @staticmethod
    def all_in(stack: PerfOpsStack) -> list[ImageAsset]:
        """Every image declared in ``stack``, in declaration order."""
        return [c for c in stack.node.find_all() if isinstance(c, ImageAsset)]

    @classmethod
    def from_ami_ids(
        cls,
        scope: Construct,
        id: str,
        *,
        name: str,
        ami_ids: Mapping[str, str],
        container_modules: Sequence[str] | None = None,
    ) -> ImageAsset:
        """An image that already exists as AMIs (one id per region); nothing is built.

        :param container_modules: the ``container_modules/`` folders the AMI holds, if
            known. Default ``None``: unknown, so HostContainers does not check them.
        """
        return cls(scope, id, name=name, container_modules=container_modules, _ami_ids=ami_ids)

    @property
    def name(self) -> str:
        return self.props.name

    @property
    def nix_attr(self) -> str | None:
        """The attribute built from ``nix_file`` (see ``attr``)."""
        return self.props.attr

    @property
    def nix_args(self) -> dict[str, str]:
        """The ``--argstr`` arguments for ``nix_file`` (see ``args``)."""
        if self.props.nix_file != DEFAULT_NIX_FILE:
            return dict(self.props.args)
        return {
            "name": self.name,
            "containerModules": ",".join(self.props.container_modules or ()),
            "hostModules": ",".join(self.props.host_modules),
            **self.props.args,
        }

    @property
    def is_prebuilt(self) -> bool:
        """True for ``from_ami_ids`` images, which nix does not build."""
        return self.props.ami_ids is not None

    def requirement(self) -> dict[str, Any]:
        """What the image sync needs of this image, as ``--list-images`` prints it:
        the regions deployments use it in (known once every construct is declared)."""
        modules = self.props.container_modules
        return {
            "stack": self.stack.node.id,
            "id": self.node.id,
            "name": self.name,
            "regions": sorted(self.required_regions),
            "home_region": self.stack.home_region,
            "uuid": self.stack.uuid,
            "prebuilt": self.is_prebuilt,
            "host_modules": list(self.props.host_modules),
            "container_modules": None if modules is None else list(modules),
            # Where the image state lives: per emulator endpoint, or the project.
            "project_dir": str(self.stack.state_dir),
            "nix_file": None if self.is_prebuilt else str(self.nix_path),
            "attr": self.nix_attr,
            "args": self.nix_args,
        }

    def ami_ids(self) -> dict[str, str]:
        """The AMI per region: declared, or recorded by the last sync."""
        if self.props.ami_ids is not None:
            return dict(self.props.ami_ids)
        return state_file.load(self.stack.state_file).ami_ids(self.name)

    def check_regions(self, regions: Sequence[str], user: str) -> dict[str, str]:
        """The AMI for each of ``regions``; raises naming every region without one.

        While the stack collects image requirements, missing AMIs are recorded instead.
        """
        self.required_regions.update(regions)
        if self.stack.collecting_images:
            # Listing requirements never reads state.json: they do not depend on it,
            # and a corrupt file must not stop `images list --rebuild-state`.
            return {r: PENDING_AMI for r in regions}
        known = self.ami_ids()
        missing = [r for r in regions if r not in known]
        if missing:
            if self.is_prebuilt:
                fix = f"add them to ami_ids of {self.node.path}"
            else:
                fix = f"run: {sync_command(self.name, missing)}"
            raise MissingAmi(
                f"{user}: image: {self.name!r} has no AMI in {', '.join(missing)}; {fix}"
            )
        return {r: known[r] for r in regions}


def _manifest(stack: PerfOpsStack) -> list[dict[str, Any]]:
    """Every image of ``stack`` with its paths relative to the stack's directory, as
    the stack's summary keeps them: a project moved with its cdktf.out still reads."""
    entries = []
    for image in ImageAsset.all_in(stack):
        entry = image.requirement()
        for key in ("project_dir", "nix_file"):
            if entry[key] is not None:
                entry[key] = relative_to_stack_dir(stack, Path(entry[key]))
        entries.append(entry)
    return entries


def _check_collect_dir(stack: PerfOpsStack) -> None:
    """While perfops collects images (``perfops images ...`` synthesizes the app into a
    scratch directory, with ``$CDKTF_OUTDIR``), refuse an app that writes elsewhere:
    its output would hold placeholder AMIs."""
    scratch = stack.node.try_get_context(COLLECT_IMAGES_CONTEXT)
    if not isinstance(scratch, str):
        return
    outdir = Path(App.of(stack).outdir).resolve()
    if not outdir.is_relative_to(Path(scratch).resolve()):
        raise PerfOpsError(
            f"{stack.node.path}: the app synthesizes into {outdir}, not into $CDKTF_OUTDIR, "
            "so perfops cannot list its images; create the App without outdir= (the cdktf "
            "CLI sets CDKTF_OUTDIR too)"
        )
