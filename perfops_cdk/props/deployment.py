"""Props of a Deployment: hosts of one image across regions, bought per its Capacity."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs

from perfops_cdk.errors import InvalidField
from perfops_cdk.props.capacity import Capacity, check_price, price_text
from perfops_cdk.props.fields import (
    each,
    instance_of,
    int_range,
    is_list,
    one_of,
    optional,
    to_dict,
    to_tuple,
    using,
)
from perfops_cdk.props.lifetime import check_lifetime, to_lifetime
from perfops_cdk.props.network import SecurityGroup
from perfops_cdk.props.raw_attributes import check_raw_attributes
from perfops_cdk.props.regions import check_region
from perfops_cdk.props.tags import RESERVED_TAGS
from perfops_cdk.props.validators import (
    check_cidr,
    check_instance_type,
    check_key_name,
    check_tags,
)

ROOT_VOLUME_TYPES = frozenset({"gp2", "gp3", "io1", "io2"})
MAX_HOSTS_PER_REGION = 5000
_USER_DATA_PART_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@attrs.frozen
class RootVolume:
    """The host's root EBS volume. Always encrypted; deleted with the host."""

    size_gib: int = attrs.field(default=30, validator=int_range(8, 16384))
    volume_type: str = attrs.field(default="gp3", validator=one_of(ROOT_VOLUME_TYPES))


@attrs.frozen
class Spot:
    """Spot hosts of the deployment's one ``instance_type``; the same as
    ``capacity=Capacity.spot(instance_type, max_price=...)``.

    By default the price cap is the on-demand price.
    """

    max_price: str | None = attrs.field(
        default=None, converter=price_text, validator=using(check_price)
    )


def _check_part_name(value: Any, field: str) -> None:
    if not (isinstance(value, str) and _USER_DATA_PART_NAME.fullmatch(value)):
        raise InvalidField(field, value, "must be 1 to 63 lowercase letters, digits or '-'")


def _check_script(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidField(field, value, "must be a string holding a shell script")


@attrs.frozen
class UserDataPart:
    """A shell snippet run at first boot. Parts run in ``order``, then declaration order."""

    name: str = attrs.field(validator=using(_check_part_name))
    script: str = attrs.field(validator=using(_check_script))
    order: int = attrs.field(default=50, validator=int_range(0, 100))


def _check_regions(value: Any, field: str) -> dict[str, int]:
    if not isinstance(value, Mapping) or not value:
        raise InvalidField(field, value, "must map at least one region to a host count")
    for region, count in value.items():
        check_region(region, field)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidField(
                f"{field}[{region!r}]", count, "must be a whole number of hosts, 0 or more"
            )
        if count > MAX_HOSTS_PER_REGION:
            raise InvalidField(
                f"{field}[{region!r}]", count, f"at most {MAX_HOSTS_PER_REGION} hosts per region"
            )
    return dict(value)


def _check_security_groups(value: Any, field: str) -> None:
    if not isinstance(value, tuple):
        raise InvalidField(field, value, "must be a list of group names or SecurityGroups")
    seen: set[str] = set()
    for group in value:
        if isinstance(group, SecurityGroup):
            name = group.name
        elif isinstance(group, str):
            name = group
        else:
            raise InvalidField(field, group, "each item must be a group name or a SecurityGroup")
        if name in seen:
            raise InvalidField(field, name, "each security group may be listed once")
        seen.add(name)


@attrs.frozen
class DeploymentProps:
    """Everything a Deployment declares, validated; see Deployment for the meaning."""

    regions: dict[str, int] = attrs.field(converter=to_dict, validator=using(_check_regions))
    security_groups: tuple[str | SecurityGroup, ...] = attrs.field(
        default=("allow-egress",), converter=to_tuple, validator=using(_check_security_groups)
    )
    ssh_cidrs: tuple[str, ...] = attrs.field(
        default=(), converter=to_tuple, validator=each(check_cidr)
    )
    root_volume: RootVolume = attrs.field(
        factory=RootVolume, validator=instance_of(RootVolume, "RootVolume(size_gib=30)")
    )
    instance_type: str | None = attrs.field(
        default=None, validator=optional(using(check_instance_type))
    )
    spot: Spot | None = attrs.field(
        default=None, validator=optional(instance_of(Spot, "Spot(max_price='0.25')"))
    )
    capacity: Capacity | None = attrs.field(
        default=None,
        validator=optional(instance_of(Capacity, "Capacity.on_demand(...) or Capacity.spot(...)")),
    )
    user_data: tuple[UserDataPart, ...] = attrs.field(
        default=(), converter=to_tuple, validator=is_list
    )
    tags: dict[str, str] = attrs.field(
        factory=dict,
        converter=to_dict,
        validator=using(lambda v, f: check_tags(v, f, reserved=RESERVED_TAGS)),
    )
    key_name: str | None = attrs.field(default=None, validator=optional(using(check_key_name)))
    raw_attributes: dict[str, Any] = attrs.field(
        factory=dict, converter=to_dict, validator=using(check_raw_attributes)
    )
    lifetime: timedelta | None = attrs.field(
        default=None, converter=to_lifetime, validator=using(check_lifetime)
    )

    def __attrs_post_init__(self) -> None:
        if (self.instance_type is None) == (self.capacity is None):
            raise InvalidField(
                "capacity",
                self.capacity,
                "give instance_type='r5d.2xlarge' or capacity=Capacity.spot(...), not both",
            )
        if self.spot is not None and self.capacity is not None:
            raise InvalidField("spot", self.spot, "use Capacity.spot(...) in capacity instead")

    @property
    def buying(self) -> Capacity:
        """The capacity, with ``instance_type`` and ``spot`` read as a one-type Capacity."""
        if self.capacity is not None:
            return self.capacity
        assert self.instance_type is not None  # checked in __attrs_post_init__
        if self.spot is not None:
            return Capacity.spot(self.instance_type, max_price=self.spot.max_price)
        return Capacity.on_demand(self.instance_type)

    def warnings(self) -> list[str]:
        """Declarations that are allowed but probably not what was meant."""
        if self.ssh_cidrs and "allow-ssh" not in self.security_groups:
            return [
                f"ssh_cidrs: {list(self.ssh_cidrs)} admit nothing; add 'allow-ssh' to "
                "security_groups to open SSH to them"
            ]
        return []

    @property
    def used_regions(self) -> tuple[str, ...]:
        """Regions with at least one host, sorted."""
        return tuple(sorted(r for r, n in self.regions.items() if n > 0))

    @property
    def host_count(self) -> int:
        return sum(self.regions.values())
