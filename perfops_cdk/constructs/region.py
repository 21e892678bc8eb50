"""Region stacks: where a PerfOpsStack's resources of one region live, and their state."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs

from perfops_cdk._cdktf import (
    App,
    AwsProvider,
    LocalBackend,
    S3Backend,
    StackNote,
    TerraformStack,
)
from perfops_cdk.props.fields import using
from perfops_cdk.props.regions import check_region
from perfops_cdk.props.validators import check_bucket, check_path, check_state_key

AWS_PROVIDER_VERSION = "5.100.0"


@attrs.frozen
class S3State:
    """Terraform state in S3, shared by a team; locked with an S3 lock file.

    ``key`` is the stack's own state; each region stack keeps its state beside it, at
    ``key`` with the region inserted before ``.tfstate`` (``fleet.tfstate`` ->
    ``fleet.eu-west-1.tfstate``).
    """

    bucket: str = attrs.field(validator=using(check_bucket))
    key: str = attrs.field(validator=using(check_state_key))
    region: str = attrs.field(validator=using(check_region))


@attrs.frozen
class LocalState:
    """Terraform state in local files. By default ``terraform.<stack id>.tfstate`` and,
    per region, ``terraform.<stack id>.<region>.tfstate`` in the project directory
    (under ``.perfops/emulator/`` for the local emulator). A ``path`` names the stack's
    own file; region files go beside it the same way."""

    path: str | None = attrs.field(
        default=None, validator=using(lambda v, f: check_path(v, f, "file"))
    )


class Parent(Protocol):
    """What a region stack needs from its PerfOpsStack."""

    @property
    def backend(self) -> S3State | LocalState: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def endpoint(self) -> str | None: ...
    @property
    def uuid(self) -> str: ...
    def provider_attributes(self, region: str) -> dict[str, Any]: ...


def region_stack_name(app_stack: str, region: str) -> str:
    """``perf-ops`` in ``eu-west-1`` -> ``perf-ops-eu-west-1`` (its cdktf.out directory)."""
    return f"{app_stack}-{region}"


def _with_region(name: str, region: str | None) -> str:
    if region is None:
        return name
    stem, dot, suffix = name.rpartition(".tfstate")
    return f"{stem}.{region}.tfstate{suffix}" if dot else f"{name}.{region}"


def configure_backend(
    stack: TerraformStack,
    backend: S3State | LocalState,
    state_dir: Path,
    endpoint: str | None,
    region: str | None = None,
    app_stack: str | None = None,
) -> None:
    """Give ``stack`` its backend: the app stack's own (``region`` None) or a region's."""
    owner = app_stack or stack.node.id
    if isinstance(backend, LocalState):
        chosen = Path(backend.path) if backend.path else state_dir / f"terraform.{owner}.tfstate"
        if not chosen.is_absolute():
            chosen = state_dir / chosen
        target = chosen.with_name(_with_region(chosen.name, region))
        LocalBackend(stack, path=relative_to_stack_dir(stack, target))
        return
    options: dict[str, Any] = {}
    if endpoint:
        options = dict(
            endpoints={"s3": endpoint},
            use_path_style=True,
            skip_credentials_validation=True,
            skip_requesting_account_id=True,
            skip_metadata_api_check=True,
            skip_region_validation=True,
        )
    key = _with_region(backend.key, region)
    S3Backend(stack, bucket=backend.bucket, key=key, region=backend.region, **options)
    # S3-native locking (Terraform >= 1.10); cdktf 0.21's S3Backend predates the flag.
    stack.add_override("terraform.backend.s3.use_lockfile", True)
    stack.add_override("terraform.backend.s3.encrypt", True)


def relative_to_stack_dir(stack: TerraformStack, target: Path) -> str:
    """The state path as Terraform in ``<outdir>/stacks/<stack>`` should open it.

    Relative when the state is in the same tree as the output, so a project moved or
    checked out elsewhere (with its cdktf.out) still finds its state.
    """
    outdir = Path(App.of(stack).outdir).resolve()
    working = outdir / "stacks" / stack.node.id
    try:
        return os.path.relpath(target, working)
    except ValueError:  # another drive (Windows): keep it absolute
        return str(target)


class RegionStack(TerraformStack):
    """The Terraform stack of one PerfOpsStack in one region: one provider, own state."""

    def __init__(self, parent: Any, region: str) -> None:
        scope: Parent = parent
        super().__init__(parent, region_stack_name(parent.node.id, region))
        self.region = region
        self.app_stack: str = parent.node.id
        self.path: str = self.node.path
        self.provider = AwsProvider(
            self,
            "aws",
            alias=None,
            attributes=scope.provider_attributes(region),
            version=AWS_PROVIDER_VERSION,
        )
        configure_backend(
            self, scope.backend, scope.state_dir, scope.endpoint, region, self.app_stack
        )
        self._summaries: dict[str, Callable[[], Mapping[str, Any]]] = {}
        StackNote(
            self,
            "perfops",
            lambda: {
                "kind": "region",
                "app_stack": self.app_stack,
                "region": region,
                "uuid": scope.uuid,
                "state_dir": relative_to_stack_dir(self, scope.state_dir),
                "deployments": {n: dict(f()) for n, f in sorted(self._summaries.items())},
            },
        )

    def add_summary(self, name: str, produce: Callable[[], Mapping[str, Any]]) -> None:
        """What a deployment declares here, for ``perfops status``, preflight and cost."""
        self._summaries[name] = produce
