"""Checks shared by every construct's props. Each raises InvalidField on bad input."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from perfops_cdk.errors import InvalidField

_UUID = re.compile(r"^[a-z0-9]{4,32}$")
_CONSTRUCT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# family (letters, generation digit, attributes) "." size, e.g. r5d.2xlarge, c7gn.metal-48xl
_INSTANCE_TYPE = re.compile(
    r"^[a-z]+[0-9][a-z0-9-]*\."
    r"(nano|micro|small|medium|large|xlarge|[0-9]+xlarge|metal|metal-[0-9]+xl)$"
)

MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256


def check_uuid(value: object, field: str = "uuid") -> str:
    if isinstance(value, str) and _UUID.match(value):
        return value
    raise InvalidField(field, value, "must be 4 to 32 lowercase letters and digits")


def check_construct_id(value: object, field: str = "id") -> str:
    if isinstance(value, str) and _CONSTRUCT_ID.match(value):
        return value
    raise InvalidField(
        field,
        value,
        "must start with a letter and hold at most 63 letters, digits, '_' or '-' "
        "(Terraform names derive from it)",
    )


def check_name(value: object, field: str) -> str:
    if isinstance(value, str) and _NAME.match(value):
        return value
    raise InvalidField(field, value, "must be 1 to 63 lowercase letters, digits or '-'")


def check_instance_type(value: object, field: str = "instance_type") -> str:
    if isinstance(value, str) and _INSTANCE_TYPE.match(value):
        return value
    raise InvalidField(
        field, value, "must be an EC2 instance type such as 'r5d.2xlarge' or 'c7g.metal'"
    )


def check_cidr(value: object, field: str) -> str:
    """An IPv4 or IPv6 network in CIDR form with no host bits set."""
    if not isinstance(value, str) or "/" not in value:
        raise InvalidField(field, value, "must be a CIDR block such as '203.0.113.0/24'")
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        try:
            fixed = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise InvalidField(
                field, value, "must be a CIDR block such as '203.0.113.0/24'"
            ) from None
        raise InvalidField(
            field, value, f"has host bits set; did you mean {str(fixed)!r}?"
        ) from None


def check_tags(tags: Mapping[str, str], field: str = "tags", reserved: int = 0) -> dict[str, str]:
    """AWS tag limits: 50 per resource (``reserved`` are ours), key 128, value 256."""
    if len(tags) + reserved > MAX_TAGS:
        raise InvalidField(
            field,
            f"{len(tags)} tags",
            f"at most {MAX_TAGS - reserved} user tags ({reserved} are set by perfops_cdk)",
        )
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY:
            raise InvalidField(f"{field} key", key, f"must be 1 to {MAX_TAG_KEY} characters")
        if key.lower().startswith("aws:"):
            raise InvalidField(f"{field} key", key, "the 'aws:' prefix is reserved by AWS")
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            allowed = f"must be a string of at most {MAX_TAG_VALUE} characters"
            raise InvalidField(f"{field}[{key!r}]", value, allowed)
    return dict(tags)
