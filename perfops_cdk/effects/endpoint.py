"""Which AWS perfops talks to: the local emulator (``PERFOPS_AWS_ENDPOINT``) or the
real one. No boto3 here: synthesis reads this too, and importing boto3 costs a third
of a second."""

from __future__ import annotations

import os

from perfops_cdk.errors import PerfOpsError

ENDPOINT_ENV = "PERFOPS_AWS_ENDPOINT"
# The account the emulator (moto) answers as; a rehearsal's providers allow only it.
EMULATOR_ACCOUNT_ID = "123456789012"


def endpoint_url() -> str | None:
    """The emulator endpoint from the environment, or None for real AWS.

    ``AWS_ENDPOINT_URL`` alone (a rehearsal's environment half cleared) is refused:
    boto3 and Terraform would follow it while perfops kept a real account's state."""
    value = os.environ.get(ENDPOINT_ENV, "").strip()
    stray = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    if stray and not value:
        raise PerfOpsError(
            f"AWS_ENDPOINT_URL is {stray} but {ENDPOINT_ENV} is not set: unset "
            f"AWS_ENDPOINT_URL for a real account, or set {ENDPOINT_ENV} to the same URL "
            "to rehearse against it"
        )
    return value or None
