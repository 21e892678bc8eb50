"""A host's lifetime: how long after its first boot it terminates itself.

Written as ``"8h"``, ``"90m"``, ``"1h30m"``, ``"2d"`` (days, hours, minutes) or given as a
``timedelta``; whole minutes, from ``MIN_LIFETIME`` to ``MAX_LIFETIME``. Its canonical
text (``lifetime_text``) is what the hosts' ``perf-ops:lifetime`` tag carries, and what
``perfops status`` and ``perfops hosts`` read back (``parse_lifetime``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from perfops_cdk.errors import InvalidField

# Long enough that a host boots, runs its user data and does some work; a typo such as
# "8" (meant as hours) is refused instead of killing hosts after minutes.
MIN_LIFETIME = timedelta(minutes=10)
# A guard against forgetting, not a schedule: two weeks covers a long campaign.
MAX_LIFETIME = timedelta(days=14)
_UNITS = {"d": 1440, "h": 60, "m": 1}
_TEXT = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_ALLOWED = (
    "must be a duration such as '8h', '90m', '1h30m' or '2d' (or a timedelta) of whole "
    f"minutes, from {MIN_LIFETIME.seconds // 60} minutes to {MAX_LIFETIME.days} days"
)


def parse_lifetime(text: str) -> timedelta | None:
    """``"1h30m"`` -> 90 minutes; None when ``text`` is not such a duration."""
    match = _TEXT.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def lifetime_text(lifetime: timedelta) -> str:
    """The canonical text: 90 minutes -> ``"1h30m"``, 48 hours -> ``"2d"``."""
    minutes = int(lifetime.total_seconds()) // 60
    parts = []
    for unit, size in _UNITS.items():
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0m"


def to_lifetime(value: Any) -> Any:
    """Converter: text becomes a timedelta; anything else passes to the validator."""
    if isinstance(value, str):
        return parse_lifetime(value) or value
    return value


def check_lifetime(value: Any, field: str = "lifetime") -> None:
    """Raise InvalidField unless ``value`` is None or a timedelta within the bounds."""
    if value is None:
        return
    if (
        not isinstance(value, timedelta)
        or value.total_seconds() % 60
        or not MIN_LIFETIME <= value <= MAX_LIFETIME
    ):
        shown: Any = value
        if isinstance(value, timedelta):
            # "-1h" rather than Python's "-1 day, 23:00:00"; seconds as "0:01:30".
            sign = "-" if value < timedelta(0) else ""
            whole = not value.total_seconds() % 60
            shown = sign + lifetime_text(abs(value)) if whole else str(value)
        raise InvalidField(field, shown, _ALLOWED)
