"""Access-denied errors as one line naming the IAM action that is missing.

AWS says "not authorized" in several ways: EC2's ``UnauthorizedOperation`` (its message
names the action and the principal, followed by an encoded authorization message of a
few hundred characters), ``AccessDenied`` from IAM, STS and the emulator ("User: ARN is
not authorized to perform: ec2:CreateFleet"), and S3's bare "Access Denied". Terraform's
AWS provider wraps them as ``operation error EC2: CreateFleet, https response error
StatusCode: 403, ... api error UnauthorizedOperation: ...``. Whatever the wrapping, the
line a user needs is the action to grant, and whom to grant it to when AWS says.
"""

from __future__ import annotations

import re

import attrs

DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "Client.UnauthorizedOperation",
        "Forbidden",  # a 403 to a HEAD request, which has no body to say more
        "UnauthorizedAccess",
        "UnauthorizedOperation",
    }
)
POLICY_HINT = "grant it to the deployer (examples/iam/, docs/iam.md)"

_ACTION = re.compile(r"not authorized to perform:?\s+([a-z0-9-]+:[A-Za-z0-9*]+)")
_PRINCIPAL = re.compile(r"User:\s+(arn:\S+)\s+is not authorized")
_SDK_CALL = re.compile(r"operation error ([A-Za-z0-9 ]+?): (\w+)")
_SDK_CODE = re.compile(r"api error ([\w.]+):")
# The Go SDK's service ids (Terraform's errors) and botocore's signing names -> IAM prefix.
_PREFIXES = {"service quotas": "servicequotas"}
# S3 operations whose IAM action has another name.
_S3_ACTIONS = {
    "CompleteMultipartUpload": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "DeleteObjects": "s3:DeleteObject",
    "HeadBucket": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "UploadPart": "s3:PutObject",
}


@attrs.frozen
class Denial:
    """What an access-denied error says: the action, and the principal when named."""

    action: str
    principal: str = ""

    def line(self) -> str:
        who = f"{self.principal} is " if self.principal else ""
        return f"{who}not authorized to perform {self.action}; {POLICY_HINT}"


def iam_action(service: str, operation: str) -> str:
    """The IAM action behind an API call: ``("EC2", "CreateFleet")`` -> ``ec2:CreateFleet``,
    ``("s3", "HeadBucket")`` -> ``s3:ListBucket``."""
    prefix = _PREFIXES.get(service.lower(), service.lower().replace(" ", ""))
    if prefix == "s3" and operation in _S3_ACTIONS:
        return _S3_ACTIONS[operation]
    return f"{prefix}:{operation}"


def denial(text: str, *, code: str = "", service: str = "", operation: str = "") -> Denial | None:
    """The denial in an error (its ``text``; ``code``, ``service`` and ``operation`` when
    the caller knows them), or None when the error is not an access denial.

    The action named in the message wins; otherwise it is derived from the call.
    """
    named = _ACTION.search(text)
    sdk_code = _SDK_CODE.search(text)
    code = code or (sdk_code.group(1) if sdk_code else "")
    if named is None and code not in DENIED_CODES:
        return None
    principal = _PRINCIPAL.search(text)
    who = principal.group(1) if principal else ""
    if named is not None:
        return Denial(named.group(1), who)
    call = _SDK_CALL.search(text)
    if call is not None:
        return Denial(iam_action(call.group(1), call.group(2)), who)
    if service and operation:
        return Denial(iam_action(service, operation), who)
    return None
