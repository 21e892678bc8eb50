"""One rule for every table and summary at fleet scale: what is alike in many regions
is said once. Pure."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from perfops_cdk.props.regions import EVERY_REGION_FROM

T = TypeVar("T")


def fold(
    items: Sequence[T],
    key: Callable[[T], Hashable | None],
    merge: Callable[[Sequence[T]], T],
) -> list[T]:
    """``items`` in order, those with the same ``key`` EVERY_REGION_FROM times or more
    as one ``merge`` of them, in the first one's place; an item keyed None never folds."""
    alike: dict[Hashable, list[T]] = {}
    for item in items:
        found = key(item)
        if found is not None:
            alike.setdefault(found, []).append(item)
    shown = []
    for item in items:
        found = key(item)
        same = alike[found] if found is not None else []
        if len(same) < EVERY_REGION_FROM:
            shown.append(item)
        elif same[0] is item:
            shown.append(merge(same))
    return shown
