"""The lifetime guard: hosts that terminate themselves, and how long each has left.

A Deployment with a ``lifetime`` launches from a template whose
``instance_initiated_shutdown_behavior`` is ``terminate``, with a first user-data part
that arms a systemd timer to power the host off when its lifetime is over: powering
off then terminates it, on-demand or spot. The hosts carry the lifetime as a tag
(``perf-ops:lifetime=8h``); a tag is set at launch and cannot know the launch time, so
the expiry is computed here from EC2's ``LaunchTime`` plus that tag.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from perfops_cdk.props.deployment import UserDataPart
from perfops_cdk.props.lifetime import lifetime_text, parse_lifetime

LIFETIME_TAG = "perf-ops:lifetime"
SHUTDOWN_BEHAVIOR = "terminate"
# First of all parts: a later part that fails stops the script, the guard is armed.
LIFETIME_PART_ORDER = 0
LIFETIME_PART_NAME = "perfops-lifetime"
# Where the deadline of the first boot is kept, so that a reboot does not extend it.
DEADLINE_FILE = "/var/lib/perfops/lifetime-deadline"
TIMER_UNIT = "perfops-lifetime"
# A host found past its deadline at boot (stopped, then started again) still gets this
# long, so that it shuts down cleanly rather than mid-boot.
GRACE_SECONDS = 60


def lifetime_part(lifetime: timedelta) -> UserDataPart:
    """The user-data part that powers the host off ``lifetime`` after its first boot.

    Safe on every boot (NixOS' amazon-init runs user data at each one): the deadline is
    written once, and a timer already armed in this boot is left alone.
    """
    seconds = int(lifetime.total_seconds())
    text = lifetime_text(lifetime)
    folder = DEADLINE_FILE.rsplit("/", 1)[0]
    script = f"""\
# Lifetime guard ({text}): power off when the lifetime since the first boot is over;
# the launch template's instance_initiated_shutdown_behavior = "terminate" makes that
# a termination. `systemctl list-timers {TIMER_UNIT}` shows when.
PATH=/run/current-system/sw/bin:$PATH
deadline_file={DEADLINE_FILE}
if [ ! -s "$deadline_file" ]; then
  mkdir -p {folder}
  echo $(($(date +%s) + {seconds})) >"$deadline_file"
fi
left=$(($(cat "$deadline_file") - $(date +%s)))
[ "$left" -ge {GRACE_SECONDS} ] || left={GRACE_SECONDS}
if systemctl is-active --quiet {TIMER_UNIT}.timer; then
  echo "perfops: the lifetime timer is already armed"
else
  systemd-run --unit={TIMER_UNIT} --on-active="${{left}}s" \\
    --description="perfops lifetime {text}: power off (terminate) this host" \\
    systemctl poweroff
  echo "perfops: this host terminates in ${{left}} s (lifetime {text})"
fi
"""
    return UserDataPart(name=LIFETIME_PART_NAME, script=script, order=LIFETIME_PART_ORDER)


def expires_at(launch_time: datetime, lifetime_tag: str | None) -> datetime | None:
    """When a host launched at ``launch_time`` with this tag terminates itself; None
    without a (readable) lifetime tag. The host's own timer starts at its first boot,
    a little after launch, so this errs early by the boot time."""
    lifetime = parse_lifetime(lifetime_tag) if lifetime_tag else None
    return launch_time + lifetime if lifetime else None


def time_left(expires: datetime | None, now: datetime) -> timedelta | None:
    """Time until ``expires`` (zero once past); None when the host has no lifetime."""
    if expires is None:
        return None
    return max(expires - now, timedelta(0))


def left_text(left: timedelta | None) -> str:
    """``7h12m``, ``3d4h``, ``45m``, ``<1m``, ``expired``, or ``-`` without a lifetime."""
    if left is None:
        return "-"
    if left <= timedelta(0):
        return "expired"
    minutes = int(left.total_seconds()) // 60
    if minutes == 0:
        return "<1m"
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"
