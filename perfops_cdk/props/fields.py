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
        if not isinstance(value, str) or value not in allowed:
            choices = ", ".join(sorted(allowed))
            raise InvalidField(attribute.name, value, f"must be one of {choices}")

    return check


def using(check_value: Callable[[Any, str], Any]) -> Validator:
    """Adapt a ``check_x(value, field)`` function to an attrs validator."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        check_value(value, attribute.name)

    return check


def instance_of(cls: type, example: str) -> Validator:
    """The value is a ``cls``; the error shows an ``example`` of one."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, cls):
            raise InvalidField(attribute.name, value, f"must be a {cls.__name__}, e.g. {example}")

    return check


def optional(validator: Validator) -> Validator:
    """``validator``, or None."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return check


def is_list(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """The value came as a list (``to_tuple`` leaves anything else as it was)."""
    if not isinstance(value, tuple):
        raise InvalidField(attribute.name, value, "must be a list")


def each(check_value: Callable[[Any, str], Any]) -> Validator:
    """A list, and ``check_x(item, field)`` holds for every item."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        is_list(instance, attribute, value)
        for item in value:
            check_value(item, attribute.name)

    return check


# Converters are typed with Any: the attrs mypy plugin cannot bind a generic
# converter's type variables, and the fields' own annotations say what comes out.
# They never raise: a value of the wrong kind passes through unchanged, and the field's
# validator refuses it with a one-line InvalidField instead of a TypeError.
def to_tuple(value: Any) -> Any:
    """Accept any sequence; a lone string is one item, not a sequence of characters."""
    if isinstance(value, str | bytes):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return tuple(value)
    return value


def to_dict(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def to_optional_dict(value: Any) -> Any:
    return None if value is None else to_dict(value)


def to_optional_tuple(value: Any) -> Any:
    return None if value is None else to_tuple(value)
