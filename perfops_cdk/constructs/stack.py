"""PerfOpsStack: one deployer's stack: uuid, regions' providers, state backend."""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from perfops_cdk._cdktf import AwsProvider, Construct, IConstruct, StackNote, TerraformStack
from perfops_cdk.constructs.base import check_new_child, located
from perfops_cdk.constructs.region import (
    AWS_PROVIDER_VERSION,
    LocalState,
    RegionStack,
    S3State,
    configure_backend,
    region_stack_name,
    relative_to_stack_dir,
)
from perfops_cdk.effects import ledger
from perfops_cdk.effects.endpoint import EMULATOR_ACCOUNT_ID, endpoint_url
from perfops_cdk.effects.ledger import state_dir_for
from perfops_cdk.effects.state_file import DEFAULT_STATE_FILE
from perfops_cdk.errors import InvalidField, PerfOpsError
from perfops_cdk.jsii_env import COLLECT_IMAGES_CONTEXT
from perfops_cdk.props.lifetime import check_lifetime, to_lifetime
from perfops_cdk.props.network import SecurityGroup
from perfops_cdk.props.regions import check_region, provider_alias
from perfops_cdk.props.validators import check_path, check_uuid

UUID_ENV = "PERF_UUID"
PROJECT_DIR_ENV = "PERFOPS_PROJECT_DIR"
UUID_FILE = "perf-uuid.txt"


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
    """A deployer's stack: its hosts, one Terraform stack per region beneath it.

    Each region's resources live in their own region stack (``<id>-<region>`` in
    ``cdktf.out/stacks/``): one provider per Terraform process, regions applied
    concurrently, a failed region alone, and a region the code no longer declares kept
    as an empty stack until Terraform has destroyed what it holds (docs/design.md).
    This stack itself holds what users add to it (see ``provider_for``).

    :param uuid: the deployer id in every resource name and tag. Default:
        ``$PERF_UUID``, else ``perf-uuid.txt`` in ``project_dir`` (created if absent).
    :param home_region: where images are registered before being copied. Default
        ``eu-west-1``.
    :param backend: ``S3State(...)`` for a team-shared state. Default: ``LocalState()``.
    :param project_dir: where ``perf-uuid.txt`` lives, and ``state.json``, the stack
        ledger and local Terraform state for a real account. Default:
        ``$PERFOPS_PROJECT_DIR``, else the current directory. Against the local
        emulator (``$PERFOPS_AWS_ENDPOINT``) those three live under
        ``.perfops/emulator/<host>_<port>/`` instead, so a rehearsal never leaks into a
        real deploy.
    :param security_groups: named groups that deployments can list by name, beside the
        built-in ``allow-ssh`` and ``allow-egress``.
    :param lifetime: the ``lifetime`` of every Deployment in this stack that does not
        give its own (``"8h"``, a timedelta; see Deployment). Default: none, hosts run
        until destroyed.
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
        lifetime: str | timedelta | None = None,
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
        self.lifetime: timedelta | None = to_lifetime(lifetime)
        located(path, lambda: check_lifetime(self.lifetime))
        self.endpoint = endpoint_url()
        self.state_dir = state_dir_for(self.project_dir, self.endpoint)
        self.backend = backend or LocalState()
        super().__init__(scope, id)
        self._providers: dict[str, AwsProvider] = {}
        self._region_stacks: dict[str, RegionStack] = {}
        self._names: dict[str, str] = {}
        self.collecting_images = bool(self.node.try_get_context(COLLECT_IMAGES_CONTEXT))
        configure_backend(self, self.backend, self.state_dir, self.endpoint)
        StackNote(
            self,
            "perfops",
            lambda: {
                "kind": "app",
                "uuid": self.uuid,
                "state_dir": relative_to_stack_dir(self, self.state_dir),
                "regions": self.regions,
            },
        )
        # Regions that once had hosts keep their (possibly empty) stack until perfops
        # has seen Terraform empty them: Terraform needs their provider to destroy.
        self._ledger = ledger.load(self.ledger_file)
        for region in self._ledger.regions_of(id):
            self.region_stack(region)

    @property
    def state_file(self) -> Path:
        """The image sync state this stack reads AMI ids from."""
        return self.state_dir / DEFAULT_STATE_FILE

    @property
    def ledger_file(self) -> Path:
        """The record of this project's region stacks (see effects/ledger.py)."""
        return self.state_dir / ledger.LEDGER_FILE

    def security_group(self, name: str) -> SecurityGroup | None:
        """A group declared on the stack by name (built-ins are per deployment)."""
        return self._groups.get(name)

    @property
    def security_group_names(self) -> list[str]:
        return sorted(self._groups)

    def fallback_hosts(self, region: str, deployment: str) -> int:
        """On-demand hosts a deploy found spot short of (planners/capacity.py), to be
        declared as the deployment's fallback batch in ``region``."""
        entry = self._ledger.stacks.get(region_stack_name(self.node.id, region))
        return entry.fallback.get(deployment, 0) if entry else 0

    def claim_name(self, name: str, path: str) -> None:
        """Reserve a deployment's name (its resources' names derive from it)."""
        other = self._names.get(name)
        if other is not None:
            raise InvalidField(
                "id", name, f"{other} already names its resources so in {self.node.path}"
            ).at(path)
        self._names[name] = path

    def region_stack(self, region: str) -> RegionStack:
        """The stack that holds this stack's resources in ``region``; made on first use
        and recorded in the ledger, so it outlives its last declaration."""
        stack = self._region_stacks.get(region)
        if stack is None:
            stack = RegionStack(self, region)
            self._region_stacks[region] = stack
            if not self.collecting_images:
                ledger.record_regions(
                    self.ledger_file, self.node.id, {region: stack.node.id}, self.uuid
                )
        return stack

    def provider_for(self, region: str) -> AwsProvider:
        """An aws provider in *this* stack aliased for ``region``, for resources users
        add here themselves; created on first use. Deployments use their region stacks.

        Resources of the prebuilt bindings (``cdktf-cdktf-provider-aws``) take it as
        ``provider=``, beside generic ``TerraformResource``s and perfops constructs; the
        stack keeps requiring hashicorp/aws at the version perfops validates against."""
        provider = self._providers.get(region)
        if provider is None:
            alias = provider_alias(region)
            provider = AwsProvider(
                self,
                f"aws_{alias}",
                alias=alias,
                attributes=self.provider_attributes(region),
                version=AWS_PROVIDER_VERSION,
            )
            self._providers[region] = provider
        return provider

    @property
    def regions(self) -> list[str]:
        """Regions with a region stack: declared now, or still recorded in the ledger."""
        return sorted(self._region_stacks)

    def provider_attributes(self, region: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {"region": region}
        if self.endpoint:
            # A rehearsal. The endpoint reaches Terraform as AWS_ENDPOINT_URL (perfops
            # sets it; effects/terraform.py), not as an ``endpoints`` block, which costs
            # the provider ~3 CPU-seconds per start. Pinned to the emulator's account,
            # this output applied without the emulator fails before creating anything.
            # No credentials here: the provider reads them from the environment.
            attributes.update(
                allowed_account_ids=[EMULATOR_ACCOUNT_ID],
                skip_metadata_api_check="true",
                skip_region_validation=True,
                s3_use_path_style=True,
            )
        return attributes


def owning_stack(scope: Construct, path: str) -> PerfOpsStack:
    """The PerfOpsStack ``scope`` is in (itself or an ancestor); raises if there is none.

    Any construct under a PerfOpsStack is a valid scope, so users can group their
    deployments in constructs of their own.
    """
    node: IConstruct | None = scope
    while node is not None:
        if isinstance(node, PerfOpsStack):
            return node
        node = node.node.scope
    raise InvalidField(
        "scope", type(scope).__name__, "must be a PerfOpsStack or a construct within one"
    ).at(path)


def name_in_stack(stack: PerfOpsStack, scope: Construct, id: str) -> str:
    """``id`` prefixed with the construct ids between ``stack`` and ``scope``, joined by
    '-': unique within the stack, and the same as ``id`` for a direct child."""
    parts = [id]
    node: IConstruct | None = scope
    while node is not None and node is not stack:
        parts.append(node.node.id)
        node = node.node.scope
    return "-".join(reversed(parts))


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
