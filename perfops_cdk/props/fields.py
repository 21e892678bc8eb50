"""attrs validators that raise InvalidField (so constructs can add their path)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import attrs

from perfops_cdk.errors import InvalidField

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def int_range(low: int, high: int) -> Validator:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            allowed = f"must be a whole number from {low} to {high}"
            raise InvalidField(attribute.name, value, allowed)

    return check


def one_of(allowed: Collection[str]) -> Validator:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in allowed:
            choices = ", ".join(sorted(allowed))
            raise InvalidField(attribute.name, value, f"must be one of {choices}")

    return check


def using(check_value: Callable[[Any, str], Any]) -> Validator:
    """Adapt a ``check_x(value, field)`` function to an attrs validator."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        check_value(value, attribute.name)

    return check


def each(check_value: Callable[[Any, str], Any]) -> Validator:
    """Apply ``check_x(item, field)`` to every item of a sequence."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        for item in value:
            check_value(item, attribute.name)

    return check


# Converters are typed with Any: the attrs mypy plugin cannot bind a generic
# converter's type variables, and the fields' own annotations say what comes out.
def to_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    """Accept any sequence; a lone string is one item, not a sequence of characters."""
    if isinstance(value, str | bytes):
        return (value,)
    return tuple(value)


def to_dict(value: Mapping[Any, Any]) -> dict[Any, Any]:
    return dict(value)


def to_optional_dict(value: Mapping[Any, Any] | None) -> dict[Any, Any] | None:
    return None if value is None else dict(value)


def to_optional_tuple(value: Iterable[Any] | None) -> tuple[Any, ...] | None:
    return None if value is None else to_tuple(value)
