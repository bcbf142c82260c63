"""HTTP endpoints and settings: health, TwiML webhooks, configuration sources."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.config import load_settings
from gateway.server import ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = load_settings(
        None, data_dir=tmp_path_factory.mktemp("data"), transfer_number="+15551230000"
    )
    with ServerThread(create_app(settings)) as running:
        yield running


def test_healthz(server: ServerThread) -> None:
    response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["sessions"] == 0
    assert set(body["models"]) == {"stt", "tts"}


def test_twilio_voice_webhook_returns_connect_stream(server: ServerThread) -> None:
    response = httpx.post(
        f"{server.url}/twilio/voice", data={"From": "+15557654321", "CallSid": "CA123"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    connect = root.find("Connect")
    assert connect is not None
    stream = connect.find("Stream")
    assert stream is not None
    assert stream.get("url") == server.url.replace("http://", "ws://") + "/ws/twilio"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    # the session is chosen here, so whichever node Twilio asks when the stream ends can
    # look the call up (the action URL names it)
    assert params["caller"] == "+15557654321"
    assert re.fullmatch(r"[0-9a-f]{16}", params["session"] or "")
    assert connect.get("action", "").endswith(f"/twilio/after-stream?session={params['session']}")


def test_after_stream_hangs_up_or_dials_a_transfer(server: ServerThread) -> None:
    hangup = ET.fromstring(
        httpx.post(f"{server.url}/twilio/after-stream", data={"CallSid": "CA1"}).text
    )
    assert hangup.find("Hangup") is not None
    server.runtime.transfers["CA2"] = "operator"
    dial = ET.fromstring(
        httpx.post(f"{server.url}/twilio/after-stream", data={"CallSid": "CA2"}).text
    )
    assert dial.findtext("Dial") == "+15551230000"
    assert "CA2" not in server.runtime.transfers


def test_settings_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "voxgate.yaml"
    config.write_text(
        "port: 9000\nvoice:\n  turn:\n    max_reprompts: 5\n  vad:\n    engine: silero\n"
    )
    monkeypatch.setenv("VOXGATE_VOICE__TURN__REPROMPT_AFTER_S", "3.5")
    monkeypatch.setenv("VOXGATE_DATA_DIR", str(tmp_path / "state"))
    settings = load_settings(config)
    assert settings.port == 9000
    assert settings.voice.turn.max_reprompts == 5
    assert settings.voice.turn.reprompt_after_s == 3.5
    assert settings.voice.vad.engine == "silero"
    assert settings.data_dir == tmp_path / "state"
    monkeypatch.setenv("VOXGATE_PORT", "9100")
    assert load_settings(config).port == 9100  # the environment beats the file


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("voice:\n  vad:\n    aggressiveness: 7\n")
    with pytest.raises(ValueError, match="aggressiveness"):
        load_settings(config)
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.yaml")
