"""Expression: Terraform expression syntax, passed on purpose.

Everything else perfops puts into Terraform JSON is made literal where it is emitted
(``RawResource`` escapes ``${`` and ``%{``), so a tag value such as ``${file("x")}``
reaches AWS as written. An Expression is the one way to ask Terraform to evaluate one.
"""

from __future__ import annotations

from typing import Any

import attrs

from perfops_cdk.errors import InvalidField
from perfops_cdk.props.fields import using


def _check_text(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidField(field, value, "must be Terraform expression text such as '${var.x}'")


@attrs.frozen
class Expression:
    """Terraform syntax emitted as written, e.g. ``Expression("${var.subnet_id}")``."""

    text: str = attrs.field(validator=using(_check_text))
