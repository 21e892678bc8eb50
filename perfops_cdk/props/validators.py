"""Checks shared by every construct's props. Each raises InvalidField on bad input."""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from perfops_cdk.errors import InvalidField

# Patterns are checked with fullmatch: ``$`` alone also accepts a trailing newline.
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
MAX_KEY_NAME = 255
MAX_DESCRIPTION = 255
# What EC2 accepts in security group and rule descriptions (CreateSecurityGroup, IpRange).
_DESCRIPTION = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_STATE_KEY = 1024


def has_control_chars(text: str) -> bool:
    """Newlines, tabs, NUL and the like: invisible in the console, breaking one-line output."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def check_uuid(value: object, field: str = "uuid") -> str:
    if isinstance(value, str) and _UUID.fullmatch(value):
        return value
    raise InvalidField(field, value, "must be 4 to 32 lowercase letters and digits")


def check_construct_id(value: object, field: str = "id") -> str:
    if isinstance(value, str) and _CONSTRUCT_ID.fullmatch(value):
        return value
    raise InvalidField(
        field,
        value,
        "must start with a letter and hold at most 63 letters, digits, '_' or '-' "
        "(Terraform names derive from it)",
    )


def check_name(value: object, field: str) -> str:
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    raise InvalidField(field, value, "must be 1 to 63 lowercase letters, digits or '-'")


def check_instance_type(value: object, field: str = "instance_type") -> str:
    if isinstance(value, str) and _INSTANCE_TYPE.fullmatch(value):
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
    """AWS tag limits: 50 per resource (``reserved`` are ours), key 128, value 256.

    EC2 accepts any character in tags (other services accept fewer, so a tag value
    like ``${x}`` is fine here and reaches AWS literally); control characters are
    refused because they break every one-line listing of tags, ours included.
    """
    if not isinstance(tags, Mapping):
        raise InvalidField(field, tags, "must map tag keys to string values")
    if len(tags) + reserved > MAX_TAGS:
        raise InvalidField(
            field,
            f"{len(tags)} tags",
            f"at most {MAX_TAGS - reserved} user tags ({reserved} are set by perfops_cdk)",
        )
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY or has_control_chars(key):
            allowed = f"must be 1 to {MAX_TAG_KEY} characters without control characters"
            raise InvalidField(f"{field} key", key, allowed)
        if key.lower().startswith("aws:"):
            raise InvalidField(f"{field} key", key, "the 'aws:' prefix is reserved by AWS")
        if key.startswith("%") or key == "#":
            # Measured with provider 5.100.0: "%x" never reaches AWS and "#" never reaches
            # the state (its flatmap state uses them as map and list counters), so every
            # plan would show the tag as missing.
            allowed = "the Terraform AWS provider drops keys starting with '%' and the key '#'"
            raise InvalidField(f"{field} key", key, allowed)
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE or has_control_chars(value):
            allowed = (
                f"must be a string of at most {MAX_TAG_VALUE} characters without control "
                "characters (newlines, tabs)"
            )
            raise InvalidField(f"{field}[{key!r}]", value, allowed)
    return dict(tags)


def check_key_name(value: object, field: str = "key_name") -> str:
    """An EC2 key pair name: up to 255 ASCII characters."""
    if (
        isinstance(value, str)
        and 1 <= len(value) <= MAX_KEY_NAME
        and value.isascii()
        and value.isprintable()
    ):
        return value
    raise InvalidField(
        field, value, f"must be an EC2 key pair name: 1 to {MAX_KEY_NAME} ASCII characters"
    )


def check_description(value: object, field: str = "description") -> str:
    """A security group's or rule's description, as EC2 accepts it."""
    if isinstance(value, str) and len(value) <= MAX_DESCRIPTION and _DESCRIPTION.fullmatch(value):
        return value
    raise InvalidField(
        field,
        value,
        f"must be at most {MAX_DESCRIPTION} of a-z, A-Z, 0-9, spaces and "
        "._-:/()#,@[]+=&;{}!$* (what EC2 accepts)",
    )


def check_bucket(value: object, field: str = "bucket") -> str:
    if isinstance(value, str) and _BUCKET.fullmatch(value) and ".." not in value:
        return value
    raise InvalidField(
        field,
        value,
        "must be an S3 bucket name: 3 to 63 lowercase letters, digits, '.' or '-', "
        "starting and ending with a letter or digit",
    )


def check_state_key(value: object, field: str = "key") -> str:
    if (
        isinstance(value, str)
        and 1 <= len(value.encode()) <= MAX_STATE_KEY
        and not has_control_chars(value)
    ):
        return value
    raise InvalidField(
        field, value, f"must be an S3 object key of 1 to {MAX_STATE_KEY} bytes, one line"
    )


def check_path(value: Any, field: str, what: str) -> Any:
    """None, or a filesystem path given as str or os.PathLike (``what`` names its kind)."""
    if value is None or isinstance(value, str | os.PathLike):
        return value
    raise InvalidField(field, value, f"must be a {what} path (str or pathlib.Path)")
