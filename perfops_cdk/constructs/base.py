"""What every perfops construct does before it exists: check its id and props."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from perfops_cdk._cdktf import Construct
from perfops_cdk.errors import InvalidField
from perfops_cdk.props.validators import check_construct_id

T = TypeVar("T")


def child_path(scope: Construct, id: str) -> str:
    parent = scope.node.path
    return f"{parent}/{id}" if parent else id


def check_new_child(scope: Construct, id: str) -> str:
    """The path the new construct will have; raises on a bad or duplicate id."""
    path = child_path(scope, id)
    try:
        check_construct_id(id)
    except InvalidField as error:
        raise error.at(path) from None
    if scope.node.try_find_child(id) is not None:
        raise InvalidField(
            "id", id, f"another construct in {scope.node.path or 'the app'} already has this id"
        ).at(path)
    return path


def located(path: str, build: Callable[[], T]) -> T:
    """Run ``build`` (usually a props constructor), locating any InvalidField at ``path``."""
    try:
        return build()
    except InvalidField as error:
        raise error.at(path) from None
