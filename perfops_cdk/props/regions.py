"""AWS regions a deployment may use, a helpful error for typos, and how a list of
regions reads in one line."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence

from perfops_cdk.errors import InvalidField

# Regions enabled by default in every account (the ones a fleet usually spans).
DEFAULT_REGIONS: tuple[str, ...] = (
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
)

# Opt-in regions: valid, but the account must enable them first.
OPT_IN_REGIONS: tuple[str, ...] = (
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-west-1",
    "eu-central-2",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
)

AWS_REGIONS: frozenset[str] = frozenset(DEFAULT_REGIONS + OPT_IN_REGIONS)


def check_region(value: object, field: str = "region") -> str:
    """Return ``value`` if it names an AWS region, else raise with the closest match."""
    if isinstance(value, str) and value in AWS_REGIONS:
        return value
    text = value if isinstance(value, str) else str(value)
    close = difflib.get_close_matches(text.lower(), sorted(AWS_REGIONS), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "e.g. 'eu-west-1', 'us-east-1'"
    raise InvalidField(field, value, f"must be an AWS region name; {hint}")


def provider_alias(region: str) -> str:
    """The Terraform provider alias for a region: ``eu-west-1`` -> ``euwest1``."""
    return region.replace("-", "")


# From this many regions on, a list that covers all of them reads "every region (N)".
EVERY_REGION_FROM = 5


def regions_text(where: Sequence[str], among: Collection[str]) -> str:
    """``where`` as it prefixes a line said of several regions: their names, or
    ``every region (17)`` when they are every one of ``among`` (the regions in
    question) and at least EVERY_REGION_FROM."""
    if len(where) >= EVERY_REGION_FROM and set(where) >= set(among):
        return f"every region ({len(where)})"
    return ", ".join(where)
