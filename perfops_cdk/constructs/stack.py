"""PerfOpsStack: one deployer's stack: uuid, regions' providers, state backend."""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from perfops_cdk._cdktf import AwsProvider, Construct, LocalBackend, S3Backend, TerraformStack
from perfops_cdk.constructs.base import check_new_child, located
from perfops_cdk.effects.aws import endpoint_url
from perfops_cdk.effects.state_file import DEFAULT_STATE_FILE
from perfops_cdk.errors import InvalidField, PerfOpsError
from perfops_cdk.props.fields import using
from perfops_cdk.props.network import SecurityGroup
from perfops_cdk.props.regions import check_region, provider_alias
from perfops_cdk.props.validators import check_bucket, check_path, check_state_key, check_uuid

if TYPE_CHECKING:
    from perfops_cdk.constructs.deployment import Deployment
    from perfops_cdk.constructs.image import ImageAsset

UUID_ENV = "PERF_UUID"
PROJECT_DIR_ENV = "PERFOPS_PROJECT_DIR"
# App context key: declare everything, but collect missing AMIs instead of failing
# (how ``--sync-amis`` and ``--list-images`` learn which images and regions are needed).
COLLECT_IMAGES_CONTEXT = "perfops:collect-images"
UUID_FILE = "perf-uuid.txt"
AWS_PROVIDER_VERSION = "5.100.0"
MANAGED_BY = "perfops_cdk"


@attrs.frozen
class S3State:
    """Terraform state in S3, shared by a team; locked with an S3 lock file."""

    bucket: str = attrs.field(validator=using(check_bucket))
    key: str = attrs.field(validator=using(check_state_key))
    region: str = attrs.field(validator=using(check_region))


@attrs.frozen
class LocalState:
    """Terraform state in a local file. By default ``terraform.<stack id>.tfstate``
    in the project directory."""

    path: str | None = attrs.field(
        default=None, validator=using(lambda v, f: check_path(v, f, "file"))
    )


def resolve_uuid(explicit: str | None, project_dir: Path) -> str:
    """The deployer uuid: explicit, else ``$PERF_UUID``, else ``perf-uuid.txt``
    (created with a random 10-character id, as perf-ops did)."""
    if explicit is not None:
        return check_uuid(explicit)
    from_env = os.environ.get(UUID_ENV, "").strip()
    if from_env:
        return check_uuid(from_env, UUID_ENV)
    path = project_dir / UUID_FILE
    if path.exists():
        try:
            return check_uuid(path.read_text().strip(), str(path))
        except OSError as error:
            raise PerfOpsError(
                f"{path}: cannot read the deployer uuid ({error.strerror}); it must be a file "
                "holding one id such as 'k3j9x0a2qz', or set PERF_UUID"
            ) from None
    alphabet = string.ascii_lowercase + string.digits
    value = "".join(secrets.choice(alphabet) for _ in range(10))
    try:
        path.write_text(value + "\n")
    except OSError as error:
        raise PerfOpsError(
            f"{path}: cannot create the deployer uuid file ({error.strerror}); "
            "set PERF_UUID or pass uuid="
        ) from None
    return value


class PerfOpsStack(TerraformStack):
    """A deployer's Terraform stack.

    :param uuid: the deployer id in every resource name and tag. Default:
        ``$PERF_UUID``, else ``perf-uuid.txt`` in ``project_dir`` (created if absent).
    :param home_region: where images are registered before being copied. Default
        ``eu-west-1``.
    :param backend: ``S3State(...)`` for a team-shared state. Default: ``LocalState()``.
    :param project_dir: where ``perf-uuid.txt``, ``state.json`` and local Terraform
        state live. Default: ``$PERFOPS_PROJECT_DIR``, else the current directory.
    :param security_groups: named groups that deployments can list by name, beside the
        built-in ``allow-ssh`` and ``allow-egress``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        uuid: str | None = None,
        home_region: str = "eu-west-1",
        backend: S3State | LocalState | None = None,
        project_dir: str | Path | None = None,
        security_groups: Sequence[SecurityGroup] = (),
    ) -> None:
        path = check_new_child(scope, id)
        located(path, lambda: check_path(project_dir, "project_dir", "directory"))
        if backend is not None and not isinstance(backend, S3State | LocalState):
            allowed = "must be S3State(...) or LocalState(...)"
            raise InvalidField("backend", backend, allowed).at(path)
        self.project_dir = Path(
            project_dir or os.environ.get(PROJECT_DIR_ENV) or Path.cwd()
        ).resolve()
        self.home_region = located(path, lambda: check_region(home_region, "home_region"))
        self.uuid = located(path, lambda: resolve_uuid(uuid, self.project_dir))
        self._groups = located(path, lambda: _named_groups(security_groups))
        self.endpoint = endpoint_url()
        super().__init__(scope, id)
        self._providers: dict[str, AwsProvider] = {}
        self.images: list[ImageAsset] = []
        self.deployments: list[Deployment] = []
        self.collecting_images = bool(self.node.try_get_context(COLLECT_IMAGES_CONTEXT))
        self.add_override("terraform.required_providers.aws.version", AWS_PROVIDER_VERSION)
        self._configure_backend(backend or LocalState())

    @property
    def state_file(self) -> Path:
        """The image sync state this stack reads AMI ids from."""
        return self.project_dir / DEFAULT_STATE_FILE

    def security_group(self, name: str) -> SecurityGroup | None:
        """A group declared on the stack by name (built-ins are per deployment)."""
        return self._groups.get(name)

    @property
    def security_group_names(self) -> list[str]:
        return sorted(self._groups)

    def provider_for(self, region: str) -> AwsProvider:
        """The aws provider aliased for ``region``; created on first use."""
        provider = self._providers.get(region)
        if provider is None:
            alias = provider_alias(region)
            provider = AwsProvider(
                self, f"aws_{alias}", alias=alias, attributes=self._provider_attributes(region)
            )
            self._providers[region] = provider
        return provider

    @property
    def regions(self) -> list[str]:
        return sorted(self._providers)

    def _provider_attributes(self, region: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {"region": region}
        if self.endpoint:
            # The emulator: every service at one URL. No credentials here: the
            # provider reads them from the environment like anywhere else.
            services = ("ec2", "s3", "sts", "iam", "ebs")
            attributes.update(
                endpoints=[{s: self.endpoint for s in services if s != "ebs"}],
                skip_credentials_validation=True,
                skip_requesting_account_id=True,
                skip_metadata_api_check="true",
                skip_region_validation=True,
                s3_use_path_style=True,
            )
        return attributes

    def _configure_backend(self, backend: S3State | LocalState) -> None:
        if isinstance(backend, LocalState):
            default = self.project_dir / f"terraform.{self.node.id}.tfstate"
            LocalBackend(self, path=str(backend.path or default))
            return
        options: dict[str, Any] = {}
        if self.endpoint:
            options = dict(
                endpoints={"s3": self.endpoint},
                use_path_style=True,
                skip_credentials_validation=True,
                skip_requesting_account_id=True,
                skip_metadata_api_check=True,
                skip_region_validation=True,
            )
        S3Backend(self, bucket=backend.bucket, key=backend.key, region=backend.region, **options)
        # S3-native locking (Terraform >= 1.10); cdktf 0.21's S3Backend predates the flag.
        self.add_override("terraform.backend.s3.use_lockfile", True)
        self.add_override("terraform.backend.s3.encrypt", True)


def check_stack_child(scope: Construct, id: str) -> str:
    """The path of a new construct directly in a PerfOpsStack; raises on anything else."""
    path = check_new_child(scope, id)
    if not isinstance(scope, PerfOpsStack):
        raise InvalidField("scope", type(scope).__name__, "must be a PerfOpsStack").at(path)
    return path


def _named_groups(groups: Iterable[SecurityGroup]) -> dict[str, SecurityGroup]:
    if isinstance(groups, str) or not isinstance(groups, Sequence):
        raise InvalidField("security_groups", groups, "must be a list of SecurityGroup")
    named: dict[str, SecurityGroup] = {}
    for group in groups:
        if not isinstance(group, SecurityGroup):
            raise InvalidField("security_groups", group, "each item must be a SecurityGroup")
        if group.name in ("allow-ssh", "allow-egress") or group.name in named:
            raise InvalidField("security_groups", group.name, "group names must be unique")
        named[group.name] = group
    return named
