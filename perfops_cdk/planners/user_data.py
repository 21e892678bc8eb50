"""Render a host's EC2 user data from ordered parts."""

from __future__ import annotations

from collections.abc import Sequence

from perfops_cdk.errors import InvalidField
from perfops_cdk.props.deployment import UserDataPart

# EC2 rejects more than 16 KB of user data before base64 encoding.
USER_DATA_LIMIT = 16 * 1024

_HEADER = """#!/bin/sh
# perfops_cdk user data. Parts run in order; the first failing part stops the rest.
set -eu
"""


def render_user_data(parts: Sequence[UserDataPart]) -> str | None:
    """One POSIX shell script from ``parts`` sorted by order (stable), or None if empty.

    NixOS' amazon-init runs user data that starts with ``#!`` as a script.
    """
    if not parts:
        return None
    ordered = sorted(enumerate(parts), key=lambda item: (item[1].order, item[0]))
    sections = [_HEADER]
    for _, part in ordered:
        body = part.script if part.script.endswith("\n") else part.script + "\n"
        sections.append(f"# --- part {part.order:03d} {part.name} ---\n{body}")
    return "".join(sections)


def check_user_data_size(user_data: str | None, field: str = "user_data") -> None:
    size = len(user_data.encode()) if user_data else 0
    if size > USER_DATA_LIMIT:
        raise InvalidField(
            field, f"{size} bytes", f"EC2 accepts at most {USER_DATA_LIMIT} bytes of user data"
        )
