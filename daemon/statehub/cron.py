"""Five-field cron expressions with their crontab(5) meaning, as APScheduler 3 triggers.

``CronTrigger.from_crontab`` of APScheduler 3 differs from cron in two ways that move fires
to other days without a word: it reads day-of-week 0 as Monday (cron: Sunday, and 7 is
Sunday too; APScheduler issue 286), and it joins day-of-month and day-of-week with AND
(cron runs on a day that matches either when both are restricted). :func:`cron_trigger`
translates the day-of-week field to day names and builds an ``OrTrigger`` for the second
case, so every user of the schedule (the daemon, ``schedule show``, reports of slots) sees
the fires cron would make. :func:`expand_shortcut` reads crontab's ``@hourly``-style
names as their five fields.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# How far back previous_fire_time looks: 4**k hours for k = 0..9, the last about 30 years,
# past the longest gap a cron can have (29 February of a leap year that skips a century).
_LOOKBACK_HOURS = tuple(4**power for power in range(10))


SHORTCUTS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""crontab(5)'s names for common schedules, as the five fields cron reads them as."""


def expand_shortcut(expression: str) -> str:
    """``expression`` with a crontab shortcut (``@hourly``) written as its five fields.

    Any other expression is returned unchanged. Raises ValueError for an ``@`` name that
    has no fire times here (``@reboot``) or that crontab does not know.
    """
    name = expression.strip()
    if not name.startswith("@"):
        return expression
    fields = SHORTCUTS.get(name.lower())
    if fields is not None:
        return fields
    known = ", ".join(SHORTCUTS)
    if name.lower() == "@reboot":
        raise ValueError(f"@reboot has no fire times: use one of {known} or five fields")
    raise ValueError(f"{name!r} is not a cron shortcut: use one of {known} or five fields")


def _day(text: str) -> int:
    name = text.lower()
    if name in _DAY_NAMES:
        return _DAY_NAMES.index(name)
    if text.isdigit() and int(text) <= 7:
        return int(text)
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun-sat)")


def _days_of_week(field: str) -> str:
    """A cron day-of-week field as APScheduler day names (0 and 7 are Sunday)."""
    days: set[int] = set()
    for item in field.split(","):
        base, slash, step_text = item.partition("/")
        if slash and not step_text.isdigit():
            raise ValueError(f"step {step_text!r} is not a whole number")
        step = int(step_text) if slash else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} must be at least 1")
        if base == "*":
            low, high = 0, 7
        elif "-" in base:
            first, last = base.split("-", 1)
            low, high = _day(first), _day(last)
            if high == 0 < low:
                high = 7  # 'mon-sun', '1-0': Sunday as the end of the week
        else:
            low = _day(base)
            high = 7 if slash else low
        if low > high:
            raise ValueError(f"day range {base!r} runs backwards")
        days.update(day % 7 for day in range(low, high + 1, step))
    return ",".join(_DAY_NAMES[day] for day in sorted(days))


def cron_trigger(expression: str, zone: ZoneInfo) -> Any:
    """The APScheduler trigger that fires when cron would fire ``expression`` in ``zone``.

    Raises ValueError (with the reason) for an expression that is not five valid fields.
    """
    fields = expand_shortcut(expression).split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has five fields, not {len(fields)}")
    minute, hour, day, month, weekday = fields

    def cron(day_field: str, weekday_field: str) -> CronTrigger:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day_field,
            month=month,
            day_of_week=weekday_field if weekday_field == "*" else _days_of_week(weekday_field),
            timezone=zone,
        )

    # Vixie cron: when either day field starts with '*' both must match, else either may.
    if day.startswith("*") or weekday.startswith("*"):
        return cron(day, weekday)
    return OrTrigger([cron(day, "*"), cron("*", weekday)])


def next_fire_times(trigger: Any, count: int, *, now: datetime | None = None) -> list[datetime]:
    """The next ``count`` fire times of ``trigger`` after ``now``, in the trigger's zone."""
    moment = now or datetime.now(UTC)
    times: list[datetime] = []
    previous: datetime | None = None
    while len(times) < count:
        upcoming: datetime | None = trigger.get_next_fire_time(previous, moment)
        if upcoming is None:
            break
        times.append(upcoming)
        previous = moment = upcoming
    return times


def previous_fire_time(trigger: Any, moment: datetime) -> datetime | None:
    """The newest fire time of ``trigger`` at or before ``moment`` (aware), or None.

    APScheduler 3 only looks forward, so this looks forward from ever earlier starts (one
    hour back, then four, sixteen, ...) and keeps the last fire that is not after
    ``moment``: a few dozen steps for any usual cron. In the trigger's zone.
    """
    for hours in _LOOKBACK_HOURS:
        start = moment - timedelta(hours=hours)
        fire: datetime | None = trigger.get_next_fire_time(None, start)
        if fire is None or fire > moment:
            continue
        while True:
            following: datetime | None = trigger.get_next_fire_time(fire, fire)
            if following is None or following > moment:
                return fire
            fire = following
    return None


def and_crons(expression: str) -> list[str]:
    """``expression`` as crons whose day fields must both match, day-of-week as 0-6.

    For a scheduler that joins the two day fields with AND and may not read 7 or day
    names as cron does (a Temporal Schedule): one cron when either day field starts with
    ``*``, else two (one per day field), which together fire when cron would. Raises
    ValueError for a bad day-of-week field.
    """
    minute, hour, day, month, weekday = expression.split()
    if weekday != "*":
        names = _days_of_week(weekday).split(",")
        weekday = ",".join(str(_DAY_NAMES.index(name)) for name in names)
    if day.startswith("*") or weekday.startswith("*"):
        return [f"{minute} {hour} {day} {month} {weekday}"]
    return [f"{minute} {hour} {day} {month} *", f"{minute} {hour} * {month} {weekday}"]
