"""HostContainers: load-client containers on every host of a Deployment."""

from __future__ import annotations

from collections.abc import Sequence

from perfops_cdk._cdktf import Construct
from perfops_cdk.constructs.base import check_new_child, located
from perfops_cdk.constructs.deployment import Deployment
from perfops_cdk.errors import InvalidField
from perfops_cdk.planners import containers as plan
from perfops_cdk.planners.user_data import check_user_data_size, render_user_data
from perfops_cdk.props.containers import ContainerService
from perfops_cdk.props.deployment import UserDataPart
from perfops_cdk.props.instance_types import memory_mib
from perfops_cdk.props.tags import RESERVED_TAGS
from perfops_cdk.props.validators import MAX_TAGS


class HostContainers(Construct):
    """Every host of ``deployment`` runs ``services``' containers, created after boot.

    User data carries the spec (docs/container-spec.md); the image's
    ``perfops-spawn-containers`` creates one service per ContainerService.

    :param services: the ContainerServices of each host.
    :param nvme_raid0: stripe the instance-store NVMe disks into a RAID0 mounted at
        ``raid_mount_point`` before any container exists. Default False.
    :param raid_mount_point: where the RAID0 is mounted. Default
        ``/var/lib/nixos-containers``, where containers keep their state.
    :param max_per_host: the most containers a host may run; must not exceed the
        image's ``perfops.containers.maxPerHost``. Default 250 (dbus's default limit).
    """

    def __init__(
        self,
        deployment: Deployment,
        id: str,
        *,
        services: Sequence[ContainerService],
        nvme_raid0: bool = False,
        raid_mount_point: str = plan.DEFAULT_RAID_MOUNT,
        max_per_host: int = plan.DEFAULT_MAX_PER_HOST,
    ) -> None:
        if not isinstance(deployment, Deployment):
            raise InvalidField("scope", type(deployment).__name__, "must be a Deployment").at(id)
        path = check_new_child(deployment, id)
        for child in deployment.node.children:
            if isinstance(child, HostContainers):
                raise InvalidField(
                    "scope",
                    deployment.node.path,
                    f"already has HostContainers {child.node.path}; a host has one spec, "
                    "so put every service in one HostContainers",
                ).at(path)
        if isinstance(services, ContainerService | str) or not isinstance(services, Sequence):
            raise InvalidField("services", services, "must be a list of ContainerService").at(path)
        self.services = tuple(services)
        located(path, lambda: self._check(deployment, nvme_raid0, max_per_host))
        parts: list[UserDataPart] = []
        if nvme_raid0:
            parts.append(located(path, lambda: plan.nvme_raid0_part(raid_mount_point)))
        parts.append(plan.containers_part(plan.spec(deployment.node.id, self.services)))
        for part in parts:
            if part.name in {p.name for p in deployment.user_data_parts}:
                raise InvalidField(
                    "user_data", part.name, "is HostContainers' part name; rename the other part"
                ).at(deployment.node.path)
        located(
            path,
            lambda: check_user_data_size(
                render_user_data([*deployment.user_data_parts, *parts]), "rendered user_data"
            ),
        )

        super().__init__(deployment, id)
        self.deployment = deployment
        for part in parts:
            deployment.add_user_data(part)
        deployment.instance_tags[plan.CONTAINERS_TAG] = str(self.containers_per_host)
        deployment.containers_per_host = self.containers_per_host

    @property
    def containers_per_host(self) -> int:
        return sum(s.container_count for s in self.services)

    def layout(self) -> dict[str, list[dict[str, str]]]:
        """Per service, the containers each host gets (names and addresses)."""
        return plan.layout(self.services)

    def _check(self, deployment: Deployment, nvme_raid0: bool, max_per_host: int) -> None:
        if not isinstance(nvme_raid0, bool):
            raise InvalidField("nvme_raid0", nvme_raid0, "must be True or False")
        if isinstance(max_per_host, bool) or not isinstance(max_per_host, int) or max_per_host < 1:
            raise InvalidField("max_per_host", max_per_host, "must be a whole number, 1 or more")
        plan.check_host(self.services, max_per_host)
        baked = deployment.image.props.container_modules
        if baked is not None:
            for index, service in enumerate(self.services):
                if service.entry_folder not in baked:
                    raise InvalidField(
                        f"services[{index}].entry_folder",
                        service.entry_folder,
                        f"is not baked into image {deployment.image.name!r} (container_modules: "
                        f"{', '.join(baked) or 'none'}); add it to the image's container_modules",
                    )
        # Every listed type must hold the containers: the smallest decides.
        instance_type = deployment.props.buying.smallest_type
        available = memory_mib(instance_type)
        needed = sum(s.memory_mib for s in self.services)
        if available is not None and needed > available:
            raise InvalidField(
                "services",
                f"{needed} MiB for {self.containers_per_host} containers",
                f"{instance_type} has {available} MiB; lower container_count or "
                "memory_per_client_mib, or pick a larger instance_type",
            )
        if len(deployment.props.tags) + RESERVED_TAGS + len(deployment.instance_tags) >= MAX_TAGS:
            raise InvalidField(
                "tags",
                f"{len(deployment.props.tags)} tags on {deployment.node.path}",
                f"HostContainers adds the {plan.CONTAINERS_TAG!r} tag; AWS allows {MAX_TAGS}",
            )
