"""The tags perfops puts on every resource it creates, and finds its resources by.

Cleanup (``perfops destroy --sweep``, the orphan check before a deploy) touches only
resources that carry the deployer's uuid *and* the stack's id, so it never reaches
another deployer's or another stack's resources, nor anything untagged.
"""

from __future__ import annotations

TAG_UUID = "perf-ops"
TAG_STACK = "perf-ops:stack"
TAG_DEPLOYMENT = "deployment"
TAG_IMAGE = "image"
TAG_MANAGED_BY = "managed-by"
TAG_NAME = "Name"
MANAGED_BY = "perfops_cdk"

# Name, perf-ops, perf-ops:stack, deployment, image, managed-by
RESERVED_TAGS = 6


def resource_name(uuid: str, stack: str, *parts: str) -> str:
    """``perf-ops-<uuid>-<stack>-<parts...>``: unique per deployer and stack."""
    return "-".join(("perf-ops", uuid, stack, *parts))
