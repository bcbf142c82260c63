"""Twilio's side of a phone call's webhooks, for tests and benchmarks: answer a call
(``POST /twilio/voice``), follow the TwiML to a media stream, and, when the stream ends,
ask the ``<Connect action>`` URL what comes next (another stream, a ``<Dial>``, a hang-up),
as Twilio does ([TwiML <Connect>] "action": requested when the stream ends). The stream
itself is placed with ``run_call(..., call_sid=, parameters=)``.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import httpx

from gateway.evaluation.client import CallError

TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Next:
    """What the TwiML says to do: open ``stream`` (with ``parameters``, then ask
    ``action``), dial ``dial``, or hang up (``hangup``)."""

    stream: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    action: str | None = None
    dial: str | None = None
    hangup: bool = False


@dataclass
class PhoneCall:
    """One phone call as Twilio keeps it: its CallSid and caller number."""

    caller: str = "+15550100123"
    call_sid: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)

    def answer(self, base_url: str) -> Next:
        """The incoming call's webhook (``POST <base>/twilio/voice``)."""
        return self._post(base_url.rstrip("/") + "/twilio/voice")

    def stream_ended(self, action: str, base_url: str | None = None) -> Next:
        """The ``<Connect action>`` request once a stream ended; ``base_url`` sends it to
        another node (what a load balancer does when the first one is gone)."""
        url = action
        if base_url is not None:
            path = httpx.URL(action)
            url = base_url.rstrip("/") + path.raw_path.decode()
        return self._post(url)

    def _post(self, url: str) -> Next:
        form = {"CallSid": self.call_sid, "From": self.caller, "To": "+15550199999",
                "CallStatus": "in-progress"}
        try:
            response = httpx.post(url, data=form, timeout=TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise CallError(f"POST {url}: {exc}") from None
        if response.status_code != 200:
            raise CallError(f"POST {url}: HTTP {response.status_code} {response.text[:200]}")
        return parse_twiml(response.text)


def parse_twiml(text: str) -> Next:
    """The first thing the TwiML asks for."""
    root = ET.fromstring(text)
    for verb in root:
        if verb.tag == "Connect":
            stream = verb.find("Stream")
            if stream is None:
                raise CallError(f"<Connect> without <Stream>: {text[:200]}")
            params = {str(p.get("name")): str(p.get("value"))
                      for p in stream.findall("Parameter")}
            return Next(stream=stream.get("url"), parameters=params, action=verb.get("action"))
        if verb.tag == "Dial":
            return Next(dial=(verb.text or "").strip())
        if verb.tag in ("Hangup", "Reject"):
            return Next(hangup=True)
    raise CallError(f"TwiML with nothing to do: {text[:200]}")
