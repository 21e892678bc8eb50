"""What ``raw_attributes`` (perf-ops' ``customConfig``) may and may not set.

The rule, checked at any depth so that no nesting gets around it: no key that touches
a safe default (volume encryption, IMDSv2, network exposure, user data) and no
Terraform meta-argument; at the top level, none of the arguments Deployment sets itself.
Values are JSON-like (strings, numbers, booleans, None, lists, mappings) or Expression.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perfops_cdk.errors import InvalidField
from perfops_cdk.props.expression import Expression

_ENCRYPTION = "volumes are always encrypted; use root_volume"
_METADATA = "IMDSv2 is always required"
_EXPOSURE = "network exposure is Deployment's; use security_groups and ssh_cidrs"
_USER_DATA = "use user_data parts"
_META = "a Terraform meta-argument, which perfops sets itself"

# key -> why it is refused. Launch-template spellings are listed too, so that the rule
# holds whichever resource raw_attributes end up on.
GUARDED_KEYS: dict[str, str] = {
    **dict.fromkeys(
        (
            "encrypted",
            "kms_key_id",
            "root_block_device",
            "ebs_block_device",
            "block_device_mappings",
        ),
        _ENCRYPTION,
    ),
    **dict.fromkeys(
        (
            "metadata_options",
            "http_tokens",
            "http_endpoint",
            "http_put_response_hop_limit",
            "instance_metadata_tags",
        ),
        _METADATA,
    ),
    **dict.fromkeys(
        (
            "associate_public_ip_address",
            "network_interface",
            "network_interfaces",
            "security_groups",
            "vpc_security_group_ids",
            "security_group_names",
            "security_group_ids",
        ),
        _EXPOSURE,
    ),
    **dict.fromkeys(("user_data", "user_data_base64", "user_data_replace_on_change"), _USER_DATA),
    **dict.fromkeys(
        ("count", "for_each", "provider", "depends_on", "lifecycle", "provisioner", "connection"),
        _META,
    ),
}

# Top-level launch template arguments Deployment sets from its own props.
MANAGED_ATTRIBUTES = frozenset(
    {
        "name",
        "name_prefix",
        "image_id",
        "instance_type",
        "key_name",
        "tags",
        "tag_specifications",
        "instance_market_options",
        "instance_initiated_shutdown_behavior",
        "update_default_version",
        "default_version",
    }
)

_LEAVES = (str, int, float, bool, type(None), Expression)


def check_raw_attributes(value: Any, field: str) -> None:
    """Raise InvalidField unless ``value`` keeps to the rule in the module docstring."""
    if not isinstance(value, Mapping):
        raise InvalidField(field, value, "must map aws_launch_template argument names to values")
    clash = sorted(MANAGED_ATTRIBUTES.intersection(k for k in value if isinstance(k, str)))
    if clash:
        raise InvalidField(
            field,
            clash[0],
            "is set by Deployment; use its own prop (e.g. root_volume, capacity, user_data)",
        )
    _check_tree(value, field, "")


def _check_tree(value: Any, field: str, at: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidField(f"{field} key", key, "argument names are strings")
            path = f"{at}.{key}" if at else key
            if key in GUARDED_KEYS:
                raise InvalidField(
                    field, path, f"{GUARDED_KEYS[key]} (raw_attributes may not set it)"
                )
            _check_tree(item, field, path)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_tree(item, field, f"{at}[{index}]")
    elif not isinstance(value, _LEAVES):
        raise InvalidField(
            f"{field}[{at!r}]",
            value,
            "values must be strings, numbers, booleans, None, lists, mappings or Expression",
        )
