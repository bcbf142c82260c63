"""Slots from normalized text: dates, times, names, services, numbers, note text.

Everything here reads the canonical form of ``nlu_text.normalize`` (number words already
digits, "p.m." already "pm"), so "three thirty p.m.", "3:30pm" and "3 30 pm" are one case.
Dates are resolved against an injected ``today`` so tests need no real calendar. Times
without am/pm follow office hours: 1-7 is afternoon, 8-11 morning, as a receptionist
would hear "at three".
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta

from orchestration.agents.nlu.text import normalize, similarity

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_SHORT = {"mon": 0, "tue": 1, "tues": 1, "wed": 2, "weds": 2, "thu": 3, "thur": 3,
                  "thurs": 3, "fri": 4, "sat": 5, "sun": 6}
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
_MONTH_SHORT = {m[:3]: i + 1 for i, m in enumerate(MONTHS)} | {"sept": 9}
_NOT_A_NAME_WORDS = (
    "a an the having trying calling looking not just still so very here there good fine "
    "ok sorry afraid unable locked unhappy interested wondering going getting about in on "
    "at with from your my calling back checking sure glad happy done ready new also the "
    "really actually having no yes yeah hi hello hey well um uh who what where when why how "
    "which it is this that nobody everyone everybody someone somebody anyone anybody you "
    "me us them him her customer human person agent operator manager "
    # "I'm being overcharged", "I'm good-bye": a state or a farewell, not a name
    "being still waiting hoping phoning ringing stuck charged billed overcharged goodbye bye"
)
_NOT_A_NAME = frozenset(_NOT_A_NAME_WORDS.split())
_TIME_STOP = ("people", "person", "days", "day", "minutes", "minute", "hours", "hour",
              "weeks", "week", "times", "tickets", "of")


def weekday_of(word: str) -> int | None:
    """0 = Monday; tolerant of recognition slips ("tuesdays", "wensday", "thurs")."""
    if word in _WEEKDAY_SHORT:
        return _WEEKDAY_SHORT[word]
    if len(word) < 5:
        return None
    best = max(range(7), key=lambda i: similarity(word, WEEKDAYS[i]))
    return best if similarity(word, WEEKDAYS[best]) >= 0.75 else None


def month_of(word: str) -> int | None:
    if word in _MONTH_SHORT:
        return _MONTH_SHORT[word]
    if word in MONTHS:
        return MONTHS.index(word) + 1
    if len(word) >= 5:
        for i, m in enumerate(MONTHS):
            if similarity(word, m) >= 0.8:
                return i + 1
    return None


def _day_number(token: str) -> int | None:
    m = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)?", token)
    if m is None:
        return None
    n = int(m.group(1))
    return n if 1 <= n <= 31 else None


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_date(text: str, today: date) -> date | None:
    """The day a normalized utterance names, or None; never a day in the past."""
    words = text.split()
    if "day after tomorrow" in text:
        return today + timedelta(days=2)
    if re.search(r"\b(tomorrow)\b", text):
        return today + timedelta(days=1)
    if re.search(r"\b(today|tonight|this afternoon|this morning|this evening)\b", text):
        return today
    m = re.search(r"\bin (\d{1,2}) days?\b", text)
    if m:
        return today + timedelta(days=int(m.group(1)))
    if re.search(r"\bnext week\b", text) and not any(weekday_of(w) is not None for w in words):
        return today + timedelta(days=7 - today.weekday())  # next Monday
    # month and day: "march 3rd", "3rd of march", "the 3rd of march"
    for i, w in enumerate(words):
        month = month_of(w) if not (w == "may" and i + 1 < len(words)
                                    and _day_number(words[i + 1]) is None) else None
        if month is None:
            continue
        day = _day_number(words[i + 1]) if i + 1 < len(words) else None
        if day is None and i >= 2 and words[i - 1] == "of":
            day = _day_number(words[i - 2])
        if day is not None:
            found = _safe_date(today.year, month, day)
            if found is not None and found < today:
                found = _safe_date(today.year + 1, month, day)
            if found is not None:
                return found
    m = re.search(r"\b(\d{1,2})/(\d{1,2})\b", text)
    if m:
        found = _safe_date(today.year, int(m.group(1)), int(m.group(2)))
        if found is not None and found < today:
            found = _safe_date(today.year + 1, int(m.group(1)), int(m.group(2)))
        if found is not None:
            return found
    for i, w in enumerate(words):
        wd = weekday_of(w)
        if wd is None:
            continue
        ahead = (wd - today.weekday()) % 7
        prev = words[i - 1] if i else ""
        if ahead == 0 and prev != "this":
            ahead = 7
        return today + timedelta(days=ahead)
    m = re.search(r"\bthe (\d{1,2})(?:st|nd|rd|th)\b", text)
    if m:
        day = int(m.group(1))
        found = _safe_date(today.year, today.month, day)
        if found is None or found < today:
            month = today.month % 12 + 1
            found = _safe_date(today.year + (month == 1), month, day)
        return found
    return None


def _clock(hour: int, minute: int, meridiem: str | None, text: str) -> str | None:
    if not (0 <= minute < 60):
        return None
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    elif meridiem is None and hour <= 12:
        if re.search(r"\b(morning)\b", text):
            hour = 0 if hour == 12 else hour
        elif re.search(r"\b(afternoon|evening|tonight)\b", text) and hour < 12:
            hour += 12
        elif 1 <= hour <= 7:
            hour += 12  # office hours: "at three" is 15:00
    if not (0 <= hour < 24):
        return None
    return f"{hour:02d}:{minute:02d}"


def parse_time(text: str) -> str | None:
    """"HH:MM" (24 h) for the time a normalized utterance names, or None."""
    if re.search(r"\b(noon|midday)\b", text):
        return "12:00"
    if re.search(r"\bmidnight\b", text):
        return "00:00"
    m = re.search(r"\b(\d{1,2})(?::(\d{2})| (\d{2}))? (am|pm)\b", text)
    if m:
        minute = int(m.group(2) or m.group(3) or 0)
        return _clock(int(m.group(1)), minute, m.group(4), text)
    m = re.search(r"\b(half|quarter) past (\d{1,2})\b", text)
    if m:
        return _clock(int(m.group(2)), 30 if m.group(1) == "half" else 15, None, text)
    m = re.search(r"\bquarter to (\d{1,2})\b", text)
    if m:
        hour = (int(m.group(1)) - 1) % 24 or 12
        return _clock(hour, 45, None, text)
    m = re.search(r"\b(\d{1,2}):(\d{2})\b", text)
    if m:
        return _clock(int(m.group(1)), int(m.group(2)), None, text)
    m = re.search(r"\b(\d{1,2})(?: (\d{2}))? oclock\b", text)
    if m:
        return _clock(int(m.group(1)), int(m.group(2) or 0), None, text)
    m = re.search(r"\b(\d{1,2})(?: (\d{2}))? (?:in the )?(morning|afternoon|evening|tonight)\b",
                  text)
    if m and 1 <= int(m.group(1)) <= 12:
        return _clock(int(m.group(1)), int(m.group(2) or 0), None, text)
    m = re.fullmatch(r"(?:um |uh |ok |yes )?(\d{1,2})(?: (\d{2}))?(?: please)?", text)
    if m and 1 <= int(m.group(1)) <= 12:  # a bare "ten thirty": the answer to "what time?"
        return _clock(int(m.group(1)), int(m.group(2) or 0), None, text)
    m = re.search(
        r"\b(?:at|around|about|by|make it|how about|instead|change it to|move it to|"
        r"for|say)\s+(\d{1,2})(?: (\d{2}))?(?: (\w+))?", text
    )
    if m and 1 <= int(m.group(1)) <= 12 and (m.group(3) or "") not in _TIME_STOP:
        minute = int(m.group(2)) if m.group(2) else 0
        return _clock(int(m.group(1)), minute, None, text)
    return None


_GREETING = r"(?:(?:hi|hello|hey|yes|yeah|ok|oh|well|good|morning|afternoon|evening|there) )*"
_NAME_PATTERNS = (
    r"\bmy name is (\w+)(?: (\w+))?",
    r"\bname is (\w+)(?: (\w+))?",
    r"\bcall me (\w+)",
    r"\bthis is (\w+)(?: (\w+))?",
    r"\bit is (\w+) here\b",
    rf"^{_GREETING}you have got (\w+)(?: (\w+))?$",  # "Hello, you've got James."
    r"\b(?:speaking|talking) (?:with|to) (\w+)(?: (\w+))?$",
    rf"^{_GREETING}i am (\w+)(?: (\w+))?$",
    rf"^{_GREETING}(?:i am|it is) (\w+)(?: (\w+))? (?:calling|here|speaking)\b",
    rf"^{_GREETING}(\w+)(?: (\w+))? (?:speaking|here)$",
)
# "I'm Chloe Martin, ..." or "It's Mark Evans.": read as a name only when the recogniser
# wrote it as one (capitalised, not the first word), so "it's broken" is not a name
_PROPER_PATTERNS = (
    rf"^{_GREETING}(?:i am|it is) (\w+)(?: (\w+))?",
)
_NOT_AFTER_NAME = frozenset({"and", "from", "calling", "here", "speaking", "i", "by"})


def _proper_nouns(original: str) -> set[str]:
    """Words the recogniser capitalised other than at the start of a sentence."""
    found: set[str] = set()
    for sentence in re.split(r"[.!?]\s+", original):
        words = re.findall(r"[A-Za-z][a-z']*", sentence)
        found |= {w.lower() for w in words[1:] if w[0].isupper() and w != "I"}
    return found


def _name_from(parts: list[str]) -> str | None:
    if not parts or parts[0] in _NOT_A_NAME or parts[0].isdigit():
        return None
    kept = [parts[0]]
    if len(parts) > 1 and parts[1] not in _NOT_A_NAME and not parts[1].isdigit() \
            and parts[1] not in _NOT_AFTER_NAME:
        kept.append(parts[1])
    return " ".join(p.capitalize() for p in kept)


def parse_name(text: str, original: str | None = None) -> str | None:
    """A caller's name from "my name is Ada", "this is Ada Lovelace", "call me Ada",
    "Omar speaking"; with the recogniser's ``original`` text also "It's Mark Evans"
    when it capitalised the name."""
    for pattern in _NAME_PATTERNS:
        m = re.search(pattern, text)
        if m is not None:
            name = _name_from([g for g in m.groups() if g])
            if name is not None:
                return name
    if original is None:
        return None
    proper = _proper_nouns(original)
    for pattern in _PROPER_PATTERNS:
        m = re.search(pattern, text)
        if m is not None and m.group(1) in proper:
            parts = [g for g in m.groups() if g]
            return _name_from(parts if len(parts) < 2 or parts[1] in proper else parts[:1])
    return None


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


_SERVICE_FILLER = frozenset({"the", "service", "services", "system", "server", "servers"})
# one-word aliases that are also English particles ("off": what a recogniser writes for
# "auth"): after a verb or its object ("call off", "went off", "take me off", "i am off")
# the word is the particle, not the service
_PARTICLES = frozenset({"off", "on", "up", "down", "out", "in", "over"})
_VERBS_AND_OBJECTS = (
    "go goes going gone went call calls called calling take takes took taking turn turns "
    "turned turning switch switched switching cut cuts cutting log logged logging sign "
    "signed signing drop dropped dropping set kick kicked keep keeps kept put pay paid "
    "shut tick ticked cross crossed write wrote head heading get got be been am me it "
    "them that this us him her everything something"
)
_TAKES_PARTICLE = frozenset(_VERBS_AND_OBJECTS.split())


def is_particle(words: Sequence[str], i: int) -> bool:
    """Whether ``words[i]`` is a particle of the verb before it ("call off")."""
    return words[i] in _PARTICLES and i > 0 and words[i - 1] in _TAKES_PARTICLE


@functools.lru_cache(maxsize=16)
def _service_aliases(services: tuple[tuple[str, tuple[str, ...]], ...]
                     ) -> tuple[tuple[str, str, str], ...]:
    """(service, alias without filler words, its stem) for every alias, once per table."""
    out = []
    for name, aliases in services:
        for alias in [name, *aliases]:
            # the same words are dropped from an alias: "login service" is "login"
            alias = " ".join(w for w in normalize(alias).split() if w not in _SERVICE_FILLER)
            if alias:
                out.append((name, alias, _stem(alias)))
    return tuple(out)


def find_service(text: str, services: Mapping[str, Iterable[str]],
                 threshold: float = 0.8) -> str | None:
    """The configured service a normalized utterance names: exact alias, else the closest
    one- or two-word stretch ("payment service" -> payments, "the build server" -> ci)."""
    said = text.split()
    words = ["_" if is_particle(said, i) else w for i, w in enumerate(said)
             if w not in _SERVICE_FILLER]
    grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    stems = [_stem(g) for g in grams]
    # three-word aliases (heard forms such as "gate we are") only ever match exactly
    trigrams = {" ".join(words[i:i + 3]) for i in range(len(words) - 2)}
    best: tuple[float, str] | None = None
    exact: tuple[int, str] | None = None
    table = tuple((n, tuple(a)) for n, a in services.items())
    for name, alias, alias_stem in _service_aliases(table):
        if alias in trigrams and (exact is None or len(alias) > exact[0]):
            exact = (len(alias), name)
        for gram, stem in zip(grams, stems, strict=True):
            if gram == alias:
                # the longest alias said wins: "payment gateway" is payments, not the gateway
                if exact is None or len(alias) > exact[0]:
                    exact = (len(alias), name)
                continue
            if len(alias) < 4 or exact is not None:
                continue
            # an edit distance is at least the difference in length: skip what cannot pass
            longest = max(len(stem), len(alias_stem))
            if 1.0 - abs(len(stem) - len(alias_stem)) / longest < threshold:
                continue
            score = similarity(stem, alias_stem)
            if score >= threshold and (best is None or score > best[0]):
                best = (score, name)
    if exact is not None:
        return exact[1]
    return best[1] if best else None


def parse_number(text: str) -> int | None:
    m = re.search(r"\b(\d+)\b", text)
    return int(m.group(1)) if m else None


_NOTE = re.compile(
    r"(?:(?:take|make|add|write|jot|save|create|leave|put)(?: down)?(?: me)? (?:a |an |the )?"
    r"(?:quick |new )?note(?: for me)?(?: that| saying| to say| which says)?|note (?:that|down)|"
    r"write down(?: that)?|jot down(?: that)?|remember that|remind me to)\s*[:,.-]?\s*(.+)",
    re.I,
)


def parse_note(original: str) -> str | None:
    """The text of a note from the caller's own words (case and digits kept)."""
    m = _NOTE.search(original.strip())
    if m is None:
        return None
    body = m.group(1).strip().strip(" .!,")
    return body[0].upper() + body[1:] if body else None


# --- speaking slots back ------------------------------------------------------------


def speak_time(hhmm: str) -> str:
    """"15:30" -> "3:30 PM", "09:00" -> "9 AM", "12:00" -> "noon"."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    if (hour, minute) == (12, 0):
        return "noon"
    suffix = "AM" if hour < 12 else "PM"
    h12 = hour % 12 or 12
    return f"{h12} {suffix}" if minute == 0 else f"{h12}:{minute:02d} {suffix}"


def speak_date(day: date, today: date) -> str:
    """"today", "tomorrow", "Tuesday" (within a week), else "Tuesday, March 3"."""
    delta = (day - today).days
    if delta == 0:
        return "today"
    if delta == 1:
        return "tomorrow"
    name = WEEKDAYS[day.weekday()].capitalize()
    if 1 < delta < 7:
        return name
    return f"{name}, {MONTHS[day.month - 1].capitalize()} {day.day}"
