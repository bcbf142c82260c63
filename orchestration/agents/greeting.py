"""What the supervisor says first: the greeting for a new caller, or the welcome back for
a returning one (by name if memory has it), and their next appointment if one is booked."""

from __future__ import annotations

from datetime import date

from memory.router import Recall
from orchestration.agents.config import SupervisorConfig
from orchestration.agents.nlu.slots import speak_date, speak_time


def greeting_text(config: SupervisorConfig, recall: Recall, today: date) -> str:
    if recall.returning and recall.name:
        text = config.greeting_returning.format(name=recall.name)
    elif recall.returning:
        text = config.greeting_returning_anonymous
    else:
        text = config.greeting
    booking = recall.last_booking
    when = booking.data.get("date") if booking is not None else None
    if booking is None or not isinstance(when, str) or when < today.isoformat():
        return text
    if "{booking}" not in config.greeting_booking:
        return text
    spoken = (f"{speak_date(date.fromisoformat(when), today)} at "
              f"{speak_time(str(booking.data.get('time', '09:00')))}")
    return f"{text} {config.greeting_booking.format(booking=spoken)}"
