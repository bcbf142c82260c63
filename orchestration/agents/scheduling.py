"""Scheduling: the appointment book (SQLite, or PostgreSQL shared by every replica) and
its tools.

One appointment per slot. Slots are ``slot_minutes`` long within ``open``-``close`` on
the configured weekdays. A request for a taken or closed slot gets the nearest free
slots the same day (earlier or later), else the next open day's first ones.

Tools (registered by ``register``): ``calendar.check`` (is it free, and if not the
alternatives), ``calendar.book``, ``calendar.find`` (a caller's next appointments),
``calendar.cancel``, ``calendar.move``, ``calendar.release`` (a booking's compensation:
the slot is free again when its confirmation cannot be sent). Every output carries
``spoken`` text so flows can read it back as is.

Exactly once, on one node or several: a unique index allows one ``booked`` row per slot,
and a booking is one ``INSERT ... ON CONFLICT DO NOTHING``; whoever loses the race for a
slot finds the winner's row, and gets it back if it carries the same idempotency key (the
same step, run again on another node), else "not free" (tests/orchestration/
test_agent_stores.py books one slot from two processes at once).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from orchestration.agents.nlu.slots import WEEKDAYS, speak_date, speak_time
from orchestration.log.tables import Tables, open_tables
from orchestration.patterns.tools import ToolError, ToolRegistry


class HoursConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    open: str = "09:00"
    close: str = "17:00"
    slot_minutes: int = Field(30, ge=5, le=240)
    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS[:5]))
    alternatives: int = Field(2, ge=1, le=5)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_SQLITE = """
CREATE TABLE IF NOT EXISTS bookings (id INTEGER PRIMARY KEY, caller TEXT, name TEXT,
    day TEXT NOT NULL, time TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS bookings_slot ON bookings (day, time)
    WHERE status = 'booked';
"""


class Calendar:
    def __init__(self, tables: Path | str | Tables, hours: HoursConfig | None = None,
                 today: Callable[[], date] = date.today) -> None:
        """``tables``: open ``Tables``, a SQLite file or a ``postgresql://`` URL."""
        self.hours = hours or HoursConfig()
        self.today = today
        self._t = open_tables(tables)
        self._t.ensure(_SQLITE)
        if self._t.dialect == "sqlite":
            columns = {row[1] for row in self._t.rows("PRAGMA table_info(bookings)")}
            if "key" not in columns:  # a book made before idempotency keys
                self._t.change("ALTER TABLE bookings ADD COLUMN key TEXT")

    def spoken(self, day: str, time: str) -> str:
        return f"{speak_date(date.fromisoformat(day), self.today())} at {speak_time(time)}"

    def _open(self, day: date, minute: int) -> bool:
        h = self.hours
        return (WEEKDAYS[day.weekday()] in h.days and _minutes(h.open) <= minute
                and minute + h.slot_minutes <= _minutes(h.close)
                and minute % h.slot_minutes == 0 and day >= self.today())

    def _taken(self, day: str, time: str) -> bool:
        return bool(self._t.rows("SELECT 1 FROM bookings WHERE day=%s AND time=%s AND "
                                 "status='booked'", (day, time)))

    def is_free(self, day: str, time: str) -> bool:
        return self._open(date.fromisoformat(day), _minutes(time)) and not self._taken(day, time)

    def alternatives(self, day: str, time: str) -> list[tuple[str, str]]:
        h = self.hours
        want = _minutes(time)
        d = date.fromisoformat(day)
        slots = range(_minutes(h.open), _minutes(h.close) - h.slot_minutes + 1, h.slot_minutes)
        same = sorted((s for s in slots if s != want and self.is_free(day, _hhmm(s))),
                      key=lambda s: (abs(s - want), s))
        found = [(day, _hhmm(s)) for s in same[: h.alternatives]]
        probe = d
        for _ in range(14):
            if len(found) >= h.alternatives:
                break
            probe += timedelta(days=1)
            for s in slots:
                if self.is_free(probe.isoformat(), _hhmm(s)):
                    found.append((probe.isoformat(), _hhmm(s)))
                    if len(found) >= h.alternatives:
                        break
        return sorted(found)

    def book(self, day: str, time: str, caller: str | None, name: str | None,
             now: float, key: str | None = None) -> int:
        """Book a free slot. ``key`` makes it idempotent: the same key books once (a step
        run again after a resume, on this node or another, gets the booking it made the
        first time). Raises ``ValueError`` for a closed or taken slot."""
        mine = self._keyed(key, day, time)
        if mine is not None:
            return mine
        if not self._open(date.fromisoformat(day), _minutes(time)):
            raise ValueError(f"{day} {time} is not free")
        rows = self._t.rows(
            "INSERT INTO bookings (caller, name, day, time, status, created, key) VALUES "
            "(%s, %s, %s, %s, 'booked', %s, %s) ON CONFLICT (day, time) "
            "WHERE status = 'booked' DO NOTHING RETURNING id",
            (caller, name, day, time, now, key))
        if rows:
            return int(rows[0][0])
        # taken: by this very key on another node at the same moment (the same booking,
        # then), or by someone else
        mine = self._keyed(key, day, time)
        if mine is not None:
            return mine
        raise ValueError(f"{day} {time} is not free")

    def _keyed(self, key: str | None, day: str, time: str) -> int | None:
        if not key:
            return None
        rows = self._t.rows("SELECT id FROM bookings WHERE key=%s AND day=%s AND time=%s AND "
                            "status='booked'", (key, day, time))
        return int(rows[0][0]) if rows else None

    def move(self, booking_id: int, day: str, time: str, now: float) -> int:
        """Book the new slot for the same caller, then mark the old one moved."""
        rows = self._t.rows("SELECT caller, name FROM bookings WHERE id=%s AND "
                            "status='booked'", (booking_id,))
        if not rows:
            raise ValueError(f"no booked appointment {booking_id}")
        ident = self.book(day, time, rows[0][0], rows[0][1], now)
        self.set_status(booking_id, "moved")
        return ident

    def upcoming(self, caller: str) -> list[tuple[int, str, str]]:
        rows = self._t.rows(
            "SELECT id, day, time FROM bookings WHERE caller=%s AND status='booked' AND "
            "day >= %s ORDER BY day, time", (caller, self.today().isoformat()))
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def set_status(self, booking_id: int, status: str) -> bool:
        return bool(self._t.change("UPDATE bookings SET status=%s WHERE id=%s AND "
                                   "status='booked'", (status, booking_id)))

    def get(self, booking_id: int) -> tuple[str, str, str] | None:
        rows = self._t.rows("SELECT day, time, status FROM bookings WHERE id=%s",
                            (booking_id,))
        return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def all(self) -> list[dict[str, object]]:
        rows = self._t.rows("SELECT id, caller, name, day, time, status FROM bookings "
                            "ORDER BY id")
        keys = ("id", "caller", "name", "day", "time", "status")
        return [dict(zip(keys, r, strict=True)) for r in rows]


# --- tools ---------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SlotIn(_In):
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    time: str = Field(pattern=r"^\d{2}:\d{2}$")


class CheckOut(BaseModel):
    free: bool
    spoken: str
    alternatives: list[dict[str, str]]
    alternatives_spoken: str


class BookIn(SlotIn):
    caller: str | None = None
    name: str | None = None
    key: str | None = None  # idempotency: the same key books once


class BookingOut(BaseModel):
    id: int
    date: str
    time: str
    spoken: str
    ref: str = ""  # names the booking: the key of its confirmation message
    message: str = ""  # the confirmation sent to the caller


class ReleaseOut(BaseModel):
    released: bool


class CallerIn(_In):
    caller: str | None = None


class FindOut(BaseModel):
    found: bool
    count: int
    id: int | None = None
    date: str | None = None
    time: str | None = None
    spoken: str = ""
    list_spoken: str = ""


class IdIn(_In):
    id: int


class CancelOut(BaseModel):
    cancelled: bool
    spoken: str


class MoveIn(SlotIn):
    id: int


def register(registry: ToolRegistry, cal: Calendar, clock: Callable[[], float]) -> None:
    @registry.tool("calendar.check", permissions=["calendar.read"], timeout=2)
    def check(inp: SlotIn) -> CheckOut:
        """Is the slot free; if not, the nearest free ones."""
        free = cal.is_free(inp.date, inp.time)
        alts = [] if free else cal.alternatives(inp.date, inp.time)
        return CheckOut(
            free=free, spoken=cal.spoken(inp.date, inp.time),
            alternatives=[{"date": d, "time": t} for d, t in alts],
            alternatives_spoken=" or ".join(cal.spoken(d, t) for d, t in alts))

    @registry.tool("calendar.book", permissions=["calendar.write"], timeout=2)
    def book(inp: BookIn) -> BookingOut:
        """Book a free slot for the caller."""
        try:
            ident = cal.book(inp.date, inp.time, inp.caller, inp.name, clock(), inp.key)
        except ValueError as exc:
            raise ToolError("calendar.book", f"slot not available: {exc}") from None
        return BookingOut(id=ident, date=inp.date, time=inp.time,
                          spoken=cal.spoken(inp.date, inp.time), ref=f"booking-{ident}",
                          message=f"Your appointment on {inp.date} at {inp.time} is booked.")

    @registry.tool("calendar.release", permissions=["calendar.write"], timeout=2)
    def release(inp: IdIn) -> ReleaseOut:
        """Free a booked slot again (idempotent: a released slot stays released)."""
        return ReleaseOut(released=cal.set_status(inp.id, "released"))

    @registry.tool("calendar.find", permissions=["calendar.read"], timeout=2)
    def find(inp: CallerIn) -> FindOut:
        """The caller's upcoming appointments, next first."""
        rows = cal.upcoming(inp.caller) if inp.caller else []
        if not rows:
            return FindOut(found=False, count=0)
        ident, day, time = rows[0]
        return FindOut(found=True, count=len(rows), id=ident, date=day, time=time,
                       spoken=cal.spoken(day, time),
                       list_spoken=" and ".join(cal.spoken(d, t) for _, d, t in rows[:3]))

    @registry.tool("calendar.cancel", permissions=["calendar.write"], timeout=2)
    def cancel(inp: IdIn) -> CancelOut:
        """Cancel one appointment."""
        row = cal.get(inp.id)
        ok = cal.set_status(inp.id, "cancelled")
        return CancelOut(cancelled=ok, spoken=cal.spoken(row[0], row[1]) if row else "")

    @registry.tool("calendar.move", permissions=["calendar.write"], timeout=2)
    def move(inp: MoveIn) -> BookingOut:
        """Move an appointment to a free slot (book the new one, cancel the old)."""
        try:
            ident = cal.move(inp.id, inp.date, inp.time, clock())
        except ValueError as exc:
            raise ToolError("calendar.move", str(exc)) from None
        return BookingOut(id=ident, date=inp.date, time=inp.time,
                          spoken=cal.spoken(inp.date, inp.time))
