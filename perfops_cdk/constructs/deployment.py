"""Deployment: hosts of one image across regions, bought per its Capacity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from perfops_cdk._cdktf import Construct, warn
from perfops_cdk.constructs.base import check_new_child, located
from perfops_cdk.constructs.fleet import RegionFleet
from perfops_cdk.constructs.fleet_hosts import RegionHosts
from perfops_cdk.constructs.image import ImageAsset
from perfops_cdk.constructs.stack import name_in_stack, owning_stack
from perfops_cdk.errors import InvalidField
from perfops_cdk.planners.lifetime import LIFETIME_TAG, lifetime_part
from perfops_cdk.planners.user_data import check_user_data_size, render_user_data
from perfops_cdk.props.capacity import Capacity
from perfops_cdk.props.deployment import DeploymentProps, RootVolume, Spot, UserDataPart
from perfops_cdk.props.lifetime import lifetime_text
from perfops_cdk.props.network import ALLOW_EGRESS, SecurityGroup, allow_ssh
from perfops_cdk.props.tags import (
    MANAGED_BY,
    RESERVED_TAGS,
    TAG_DEPLOYMENT,
    TAG_IMAGE,
    TAG_MANAGED_BY,
    TAG_NAME,
    TAG_STACK,
    TAG_UUID,
    resource_name,
)
from perfops_cdk.props.validators import MAX_TAGS

# Launch template names are at most 128 characters; ours end in "-<10-char hash>".
_MAX_PREFIX = 128 - 11


class Deployment(Construct):
    """Hosts running one image, ``regions[r]`` of them in each region ``r``.

    Its resources live in the stack's region stacks (``<stack>-<region>``): per region,
    its security groups, a launch template and instant EC2 Fleets (docs/design.md).

    :param image: the ImageAsset the hosts boot.
    :param regions: region -> host count (0 keeps the region declared but empty).
    :param instance_type: e.g. ``r5d.2xlarge``: on-demand hosts of one type. Give this
        or ``capacity``.
    :param capacity: ``Capacity.on_demand(...)`` or ``Capacity.spot(...)``: market,
        acceptable instance types, on-demand share and fallback. Give this or
        ``instance_type``.
    :param security_groups: names from the catalog (``allow-ssh``, ``allow-egress``),
        names declared on the stack, or SecurityGroup values. Default: ``allow-egress``.
    :param ssh_cidrs: where ``allow-ssh`` admits SSH from. Default: nowhere; SSH from
        ``0.0.0.0/0`` only if written here.
    :param root_volume: size and type of the encrypted root volume. Default 30 GiB gp3.
    :param spot: ``Spot(...)``: spot hosts of ``instance_type``. Default: on-demand.
    :param user_data: extra first-boot shell parts. Default: none.
    :param tags: extra tags on hosts and their volumes. Default: only perfops' own.
    :param key_name: an EC2 key pair for SSH. Default: none.
    :param lifetime: ``"8h"``, ``"90m"``, ``"2d"`` or a timedelta (10 minutes to 14
        days): every host powers itself off, and so terminates, that long after its
        first boot, and carries the tag ``perf-ops:lifetime``. A deploy after that
        launches fresh hosts for another lifetime (docs/operations.md). Default: the
        stack's ``lifetime``, else none: hosts run until destroyed.
    :param raw_attributes: extra ``aws_launch_template`` arguments (perf-ops'
        ``customConfig``).
        Strings in them reach Terraform literally, as every string perfops emits does;
        ``Expression("${...}")`` is the way to pass Terraform syntax on purpose. They
        cannot weaken the safe defaults: no key, at any depth, that touches volume
        encryption (``encrypted``, ``ebs_block_device``, ...), instance metadata
        (``metadata_options``, ``http_tokens``, ...), network exposure
        (``associate_public_ip_address``, ``network_interface``, security group keys) or
        user data, and no Terraform meta-argument (``provisioner``, ``lifecycle``, ...);
        see ``props/raw_attributes.py``. Default: none.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        image: ImageAsset,
        regions: Mapping[str, int],
        instance_type: str | None = None,
        capacity: Capacity | None = None,
        security_groups: Sequence[str | SecurityGroup] = ("allow-egress",),
        ssh_cidrs: Sequence[str] = (),
        root_volume: RootVolume | None = None,
        spot: Spot | None = None,
        user_data: Sequence[UserDataPart] = (),
        tags: Mapping[str, str] | None = None,
        key_name: str | None = None,
        raw_attributes: Mapping[str, Any] | None = None,
        lifetime: str | timedelta | None = None,
    ) -> None:
        path = check_new_child(scope, id)
        stack = owning_stack(scope, path)
        self.props = located(
            path,
            lambda: DeploymentProps(
                instance_type=instance_type,
                capacity=capacity,
                regions=regions,
                security_groups=security_groups,
                ssh_cidrs=ssh_cidrs,
                root_volume=root_volume or RootVolume(),
                spot=spot,
                user_data=user_data,
                tags=tags or {},
                key_name=key_name,
                raw_attributes=raw_attributes or {},
                lifetime=stack.lifetime if lifetime is None else lifetime,
            ),
        )
        if not isinstance(image, ImageAsset) or image.stack is not stack:
            allowed = f"must be an ImageAsset of {stack.node.path}"
            raise InvalidField("image", getattr(image, "name", image), allowed).at(path)
        self.name = name_in_stack(stack, scope, id)
        # Plain copies of what every region fleet reads: each construct attribute read
        # is a round trip to the jsii runtime.
        self.stack_id: str = stack.node.id
        self.image_path: str = image.node.path
        prefix = resource_name(stack.uuid, self.stack_id, self.name)
        if len(prefix) > _MAX_PREFIX:
            raise InvalidField(
                "id",
                self.name,
                f"'{prefix}' names its resources and may be at most {_MAX_PREFIX} "
                "characters; use a shorter deployment or stack id",
            ).at(path)
        groups = located(path, lambda: self._resolve_groups(stack))
        self.amis = image.check_regions(self.props.used_regions, path)
        self._parts: list[UserDataPart] = []
        if self.props.lifetime is not None:
            located(path, self._check_lifetime_tag)
            self._parts.append(lifetime_part(self.props.lifetime))
        located(path, lambda: self._check_parts(self.props.user_data))
        self._parts.extend(self.props.user_data)
        stack.claim_name(self.name, path)

        super().__init__(scope, id)
        self.stack = stack
        self.image = image
        self.groups = groups
        # Tags only the hosts carry, added by constructs that extend the deployment
        # (HostContainers records its container count for ``perfops status``).
        self.instance_tags: dict[str, str] = {}
        if self.props.lifetime is not None:
            self.instance_tags[LIFETIME_TAG] = lifetime_text(self.props.lifetime)
        self.containers_per_host = 0
        for message in self.props.warnings():
            warn(self, message)
        self.fleets = {
            region: RegionFleet(self, stack.region_stack(region))
            for region in self.props.used_regions
        }

    def hosts(self, region: str) -> RegionHosts:
        """This deployment's live hosts in ``region`` as Terraform expressions: ``ids``,
        ``public_ips`` and ``private_ips``, each a list token for other constructs'
        attributes, in any stack (cdktf adds the cross-stack reference). The region
        stack also outputs them as ``<name>_instance_ids``, ``<name>_public_ips`` and
        ``<name>_private_ips``; ``output_names`` gives those names."""
        fleet = self.fleets.get(region)
        if fleet is None:
            used = ", ".join(self.fleets) or "none"
            raise InvalidField("hosts(region)", region, f"this deployment has hosts in: {used}").at(
                self.node.path
            )
        return fleet.live_hosts.record()

    def add_user_data(self, part: UserDataPart) -> None:
        """Add a first-boot part; the rendered whole must stay within EC2's 16 KB."""
        located(self.node.path, lambda: self._check_parts([part]))
        self._parts.append(part)

    @property
    def user_data(self) -> str | None:
        return render_user_data(self._parts)

    @property
    def user_data_parts(self) -> tuple[UserDataPart, ...]:
        """The parts added so far, in the order they were added."""
        return tuple(self._parts)

    def _check_parts(self, new: Sequence[UserDataPart]) -> None:
        names = {p.name for p in self._parts}
        for part in new:
            if not isinstance(part, UserDataPart):
                raise InvalidField("user_data", part, "each part must be a UserDataPart")
            if part.name in names:
                raise InvalidField("user_data", part.name, "part names must be unique")
            names.add(part.name)
        check_user_data_size(render_user_data([*self._parts, *new]))

    def _check_lifetime_tag(self) -> None:
        if len(self.props.tags) + RESERVED_TAGS + 1 > MAX_TAGS:
            raise InvalidField(
                "tags",
                f"{len(self.props.tags)} tags",
                f"lifetime adds the {LIFETIME_TAG!r} tag to hosts; AWS allows {MAX_TAGS}",
            )

    def tags_for(self, name: str) -> dict[str, str]:
        """Our tags (which user tags may not replace) over the user's."""
        return {
            **self.props.tags,
            TAG_NAME: name,
            TAG_UUID: self.stack.uuid,
            TAG_STACK: self.stack_id,
            TAG_DEPLOYMENT: self.name,
            TAG_IMAGE: self.image.name,
            TAG_MANAGED_BY: MANAGED_BY,
        }

    def _resolve_groups(self, stack: Any) -> list[SecurityGroup]:
        resolved: list[SecurityGroup] = []
        for group in self.props.security_groups:
            if isinstance(group, SecurityGroup):
                resolved.append(group)
            elif group == "allow-egress":
                resolved.append(ALLOW_EGRESS)
            elif group == "allow-ssh":
                if not self.props.ssh_cidrs:
                    raise InvalidField(
                        "security_groups",
                        "allow-ssh",
                        "needs ssh_cidrs, e.g. ssh_cidrs=['203.0.113.0/24'] "
                        "(write '0.0.0.0/0' to admit everyone)",
                    )
                resolved.append(allow_ssh(self.props.ssh_cidrs))
            elif (declared := stack.security_group(group)) is not None:
                resolved.append(declared)
            else:
                known = ", ".join(["allow-egress", "allow-ssh", *stack.security_group_names])
                allowed = f"must be one of {known} or a SecurityGroup"
                raise InvalidField("security_groups", group, allowed)
        return resolved
