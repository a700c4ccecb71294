"""Time-based instances: the scaling kinds and weekly schedules in an IANA time zone."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, model_validator

from opsflow.spec.fields import (
    StrictModel,
)


class Scaling(StrEnum):
    ALWAYS = "always"  # 24/7: started by `stack apply`
    TIME = "time"  # runs in its schedule's hours, started and stopped by a Temporal Schedule
    LOAD = "load"  # started and stopped by its layer's load-based scaling


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS = re.compile(r"^\s*(\d{1,2})\s*(?:-\s*(\d{1,2})\s*)?$")


def _hours(value: Any) -> Any:
    """A day's hours: `[9, 10, 11]`, `["9-17"]`, `"9-17"` or `"0-23"`, each an hour the
    instance runs (9-17: from 9:00 until 17:59)."""
    items = value if isinstance(value, list) else [value]
    hours: set[int] = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise ValueError(f"{item!r} is not an hour (0-23) or a range like 9-17")
        if isinstance(item, int):
            first = last = item
        else:
            found = _HOURS.fullmatch(item)
            if found is None:
                raise ValueError(f"{item!r} is not an hour (0-23) or a range like 9-17")
            first = int(found.group(1))
            last = int(found.group(2)) if found.group(2) is not None else first
        if not (0 <= first <= 23 and 0 <= last <= 23):
            raise ValueError(f"{item!r}: hours are 0-23")
        if last < first:
            raise ValueError(f"{item!r}: a range goes from the earlier hour to the later")
        hours.update(range(first, last + 1))
    return sorted(hours)


Hours = Annotated[list[int], BeforeValidator(_hours)]


class WeeklySchedule(StrictModel):
    """When a time-based instance runs: per weekday, the hours it is up, in `timezone`
    (an IANA name; OpsWorks used UTC only). A day left out is a day it is off."""

    timezone: str = "UTC"
    monday: Hours = Field(default_factory=list)
    tuesday: Hours = Field(default_factory=list)
    wednesday: Hours = Field(default_factory=list)
    thursday: Hours = Field(default_factory=list)
    friday: Hours = Field(default_factory=list)
    saturday: Hours = Field(default_factory=list)
    sunday: Hours = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _known_days(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k != "timezone" and k not in WEEKDAYS]
            if unknown:
                raise ValueError(
                    f"unknown weekday(s) {unknown}: use {', '.join(WEEKDAYS)} (and timezone)"
                )
        return data

    @model_validator(mode="after")
    def _known_zone(self) -> WeeklySchedule:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone: {self.timezone!r} is not a known IANA time zone "
                "(like UTC, Europe/Paris, America/New_York)"
            ) from None
        return self

    def hours(self, weekday: int) -> list[int]:
        """The hours of a weekday (0 = Monday)."""
        hours: list[int] = getattr(self, WEEKDAYS[weekday])
        return hours
