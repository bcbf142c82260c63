"""Text normalization for the local NLU: what a recogniser writes -> one canonical form.

Whisper (and any ASR) writes the same words many ways: "3pm", "3 p.m.", "three PM",
"15:00"; "log in", "log-in", "login"; "Wi-Fi", "why fi". Intents and slots are read from
the canonical form this module produces, so every later rule sees one spelling:

* lower case, typographic quotes straightened, contractions expanded ("what's" -> "what is");
* number words become digits ("twenty five" -> "25", "three thirty" -> "3 30"), ordinals
  become "23rd" forms; "to", "too" and "for" stay words (they are rarely numbers on a call);
* "a.m."/"p.m." in any spelling become "am"/"pm";
* configured phrase fixes (``asr_fixes`` in the agents' YAML) are applied on word
  boundaries, longest first;
* punctuation is dropped except inside numbers ("3:30", "3/14", "4.5").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

from memory.spoken import ONES, TENS  # the number words live with memory's digit reading

ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17,
    "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}
_CONTRACTIONS = {
    "i'm": "i am", "it's": "it is", "what's": "what is", "that's": "that is",
    "there's": "there is", "let's": "let us", "can't": "cannot", "won't": "will not",
    "don't": "do not", "doesn't": "does not", "didn't": "did not", "isn't": "is not",
    "aren't": "are not", "wasn't": "was not", "i'd": "i would", "i'll": "i will",
    "i've": "i have", "you're": "you are", "we're": "we are", "how's": "how is",
    "where's": "where is", "who's": "who is", "name's": "name is", "here's": "here is",
    "something's": "something is", "nothing's": "nothing is", "everything's": "everything is",
    "he's": "he is", "she's": "she is", "when's": "when is", "o'clock": "oclock",
    "couldn't": "could not", "you've": "you have", "we've": "we have",
    "shouldn't": "should not", "wouldn't": "would not", "haven't": "have not",
    "ain't": "is not", "y'all": "you all", "ma'am": "madam",
}
# the usual recognition variants; the agents' YAML adds its own (``asr_fixes``)
BASE_FIXES = {
    "log in": "login", "log-in": "login", "logon": "login", "log on": "login",
    "sign in": "signin", "sign-in": "signin", "signon": "signin",
    "wi-fi": "wifi", "wi fi": "wifi", "why fi": "wifi", "y-fi": "wifi",
    "e-mail": "email", "e mail": "email", "okay": "ok", "o.k.": "ok", "k.": "ok",
    "a.m.": "am", "a. m.": "am", "p.m.": "pm", "p. m.": "pm",
    "tomorrow's": "tomorrow", "to morrow": "tomorrow", "tmrw": "tomorrow",
    "mid day": "midday", "twelve noon": "noon", "re-schedule": "reschedule",
    "follow-up": "follow up", "followup": "follow up", "follow-ups": "follow ups",
    "followups": "follow ups", "to-do": "todo", "to do list": "todo list",
    "set up": "setup", "to-dos": "todos", "to dos": "todos",
    # Moonshine's spellings and slips on the telephone band (its development sets): it
    # hyphenates ("good-bye"), and hears "write down" as "right down", "my booking" as
    # "my book in", "the meeting" as "the meat in", "meeting summary" as "meat and
    # salmon", "billed" as "built". (It also heard "goodbye" as "don't buy" once: not a
    # fix, since "Take a note: don't buy laptops." must never hang up.)
    "good-bye": "goodbye", "good bye": "goodbye",
    "right down": "write down", "right it down": "write it down",
    "right that down": "write that down", "my book in": "my booking",
    "the meat in": "the meeting", "meat and salmon": "meeting summary",
    "meat and the salmon": "meeting summary", "was built for": "was billed for",
    "been built for": "been billed for",
}
# hesitations that carry nothing ("uh huh" and "hmm" do: a yes, a doubt); dropped so
# "Uh, hi, I'm Mei" reads as "hi i am mei"
_HESITATIONS = frozenset({"um", "umm", "uhm", "erm", "er", "uh"})

# words that carry grammar rather than meaning; the classifier reads them only in bigrams
_FUNCTION_WORDS = (
    "a an the i me my you your we our it its is are was be am to of in on at for with and "
    "or but so do does did this that there these those can could would will should please "
    "just um uh like want need get have has had some any"
)
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())

_WORD = re.compile(r"[a-z0-9]+(?:[:./][0-9]+)*(?:'[a-z]+)?|[@#*+]")


@functools.lru_cache(maxsize=16)
def _fix_patterns(fixes: tuple[tuple[str, str], ...]) -> tuple[tuple[re.Pattern[str], str], ...]:
    ordered = sorted(fixes, key=lambda kv: len(kv[0]), reverse=True)
    return tuple((re.compile(r"(?<![a-z0-9])" + re.escape(wrong) + r"(?![a-z0-9])"), right)
                 for wrong, right in ordered)


def _fix_phrases(text: str, fixes: Mapping[str, str]) -> str:
    # compiled once per fix table: normalize runs many times a parse
    for pattern, right in _fix_patterns(tuple(fixes.items())):
        text = pattern.sub(right, text)
    return text


def _numbers(words: list[str]) -> list[str]:
    """Join runs of number words into digits: "twenty five" -> "25", "three thirty" -> "3 30"."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in TENS:
            value = TENS[w]
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if nxt in ONES and 0 < ONES[nxt] < 10:
                out.append(str(value + ONES[nxt]))
                i += 2
                continue
            if nxt in ORDINALS and ORDINALS[nxt] < 10:
                out.append(_ordinal(value + ORDINALS[nxt]))
                i += 2
                continue
            out.append(str(value))
        elif w == "oh":
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if out and out[-1].isdigit() and nxt in ONES and 0 < ONES[nxt] < 10:
                out.append(f"0{ONES[nxt]}")  # "three oh five" -> "3 05"
                i += 2
                continue
            out.append(w)  # the interjection
        elif w in ONES:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if nxt == "hundred":
                out.append(str(ONES[w] * 100))
                i += 2
                continue
            out.append(str(ONES[w]))
        elif w in ORDINALS and w != "second":
            out.append(_ordinal(ORDINALS[w]))
        elif w == "second" and i > 0 and words[i - 1] in ("the", "march", "april", "may",
                                                          "june", "july", "august"):
            out.append("2nd")  # "the second", never "wait a second"
        else:
            out.append(w)
        i += 1
    return out


def _tidy(words: list[str]) -> list[str]:
    """Hesitations out, and a word said over and over (a recogniser's loop on a quiet
    line: "no no no no no ...") kept twice."""
    out: list[str] = []
    for i, w in enumerate(words):
        if w in _HESITATIONS and not (w == "uh" and words[i + 1 : i + 2] == ["huh"]):
            continue
        if len(out) >= 2 and out[-1] == out[-2] == w:
            continue
        out.append(w)
    return out


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def normalize(text: str, fixes: Mapping[str, str] | None = None) -> str:
    """The canonical form every intent and slot rule reads."""
    t = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    t = re.sub(r"\b([ap])\s*\.\s*m\b\.?", r"\1m", t)  # p.m. / p. m. / p.m -> pm
    t = re.sub(r"(?<=\d)\s*([ap])\s*m\b", r" \1m", t)  # 3pm -> 3 pm
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)  # 1,000 -> 1000
    t = _fix_phrases(t, {**BASE_FIXES, **(fixes or {})})
    words = _WORD.findall(t)
    expanded: list[str] = []
    for w in words:
        w = _CONTRACTIONS.get(w, w)
        if w.endswith("'s"):
            w = w[:-2]  # "john's" -> "john"; the possessive carries no intent
        expanded.extend(w.replace("'", "").split())
    words = _tidy(_numbers(expanded))
    t = " ".join(words)
    t = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: _ordinal(int(m.group(1))), t)
    return t


def digits_in(text: str) -> str:
    """Every digit of ``text`` after number words are read ("four one one one" -> "4111")."""
    return "".join(ch for ch in normalize(text) if ch.isdigit())


def similarity(a: str, b: str) -> float:
    """Normalized Levenshtein similarity in [0, 1] (1 is equal)."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


# --- sounds-like respelling -------------------------------------------------------

_PHONETIC_RULES = (
    (r"ph", "f"), (r"gh", ""), (r"ck", "k"), (r"sch", "sk"), (r"ch", "x"), (r"sh", "x"),
    (r"th", "0"), (r"wh", "w"), (r"^kn", "n"), (r"^wr", "r"), (r"mb$", "m"), (r"dg", "j"),
    (r"c(?=[eiy])", "s"), (r"c", "k"), (r"q", "k"), (r"x", "ks"), (r"z", "s"), (r"v", "f"),
)


def sound_key(word: str) -> str:
    """A crude English phonetic key (Metaphone-like): keeps the first letter, drops later
    vowels and doubled letters. "cancel" and "can sell" -> "knsl"; "invoice" and "in
    voice" -> "infs"; "alerts" and "a lurts" -> "alrts"."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return ""
    for pattern, repl in _PHONETIC_RULES:
        w = re.sub(pattern, repl, w)
    if not w:  # "gh" and "ghgh" sound like nothing
        return ""
    head, tail = w[0], re.sub(r"[aeiouyhw]", "", w[1:])
    key = head + tail
    return re.sub(r"(.)\1+", r"\1", key)


class Respeller:
    """Rewrites what the recogniser split or misheard into words the domain knows.

    A run of one to three words is replaced by a domain word when the run is not itself
    made of domain words and either its letters joined equal the domain word ("pass
    word" -> "password"), or its sound key does ("can sell" -> "cancel"), or, for one
    long word, its spelling is within 80 % ("paiments" -> "payments"). Domain words are
    the keywords and example words of the intents and the service names, of 4+ letters.
    """

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self.vocab = {w for w in vocabulary if len(w) >= 4 and w.isalpha()}
        self.known = {w for w in vocabulary if w.isalpha()}
        self._by_first: dict[str, list[str]] = {}
        for w in self.vocab:
            self._by_first.setdefault(w[0], []).append(w)
        self._cache: dict[tuple[str, ...], str | None] = {}
        self._by_key: dict[str, str] = {}
        for w in sorted(self.vocab, key=lambda x: (len(x), x)):
            key = sound_key(w)
            if len(key) >= 3:
                self._by_key.setdefault(key, w)

    def _match(self, run: list[str]) -> str | None:
        if all(w in self.known for w in run) or not all(w.isalpha() for w in run) \
                or "xname" in run:
            return None
        if len(run) > 1 and run[-1] in FUNCTION_WORDS:
            return None  # "net is" is not "notes": a split word does not end in "is"
        joined = "".join(run)
        if joined in self.vocab:
            return joined
        key = sound_key(joined)
        if len(key) >= 3 and key in self._by_key and len(joined) >= 4:
            found = self._by_key[key]
            # sounds alike and is spelt alike enough: "can sell" -> cancel (0.71), but not
            # "a knot" -> account (0.43)
            if similarity(joined, found) >= 0.6:
                return found
        if len(run) == 1 and len(joined) >= 5:
            # slips keep the first letter; comparing only those keeps this under 0.1 ms
            near = [v for v in self._by_first.get(joined[0], ()) if abs(len(v) - len(joined)) <= 2]
            scored = [(similarity(joined, v), v) for v in near]
            best = max(scored, default=None)
            if best is not None and best[0] >= 0.8:
                return best[1]
        return None

    def __call__(self, text: str) -> str:
        words = text.split()
        out: list[str] = []
        i = 0
        while i < len(words):
            for n in (3, 2, 1):
                run = words[i : i + n]
                if len(run) < n:
                    continue
                key = tuple(run)
                if key not in self._cache:
                    if len(self._cache) > 10_000:
                        self._cache.clear()
                    self._cache[key] = self._match(run)
                found = self._cache[key]
                if found is not None:
                    out.append(found)
                    i += n
                    break
            else:
                out.append(words[i])
                i += 1
        return " ".join(out)
