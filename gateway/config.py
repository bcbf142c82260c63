"""Gateway settings: defaults, then a YAML file, then ``VOXGATE_*`` environment variables.

Nested sections use a double underscore in the environment, e.g.
``VOXGATE_VOICE__TURN__REPROMPT_AFTER_S=5``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from voice.config import VoiceConfig


class LimitSettings(BaseModel):
    """Per-client caps at the edges (docs/security.md, "Limits")."""

    model_config = ConfigDict(extra="forbid")

    # unset: on in production, off in development
    enabled: bool | None = None
    # browser calls (/ws/browser): attempts a minute and open calls, per client address
    # (an office behind one NAT shares one) and per widget token (one page view)
    calls_per_minute_per_address: int = Field(30, ge=1, le=100_000)
    live_calls_per_address: int = Field(4, ge=1, le=10_000)  # under max_sessions
    calls_per_minute_per_token: int = Field(10, ge=1, le=100_000)
    live_calls_per_token: int = Field(2, ge=1, le=10_000)
    # phone calls (POST /twilio/voice), per caller number: Twilio's own addresses carry
    # every phone call, so they are no client address to count
    calls_per_minute_per_caller: int = Field(5, ge=1, le=100_000)
    live_calls_per_caller: int = Field(2, ge=1, le=10_000)
    # POST /api/tokens and /api/ws-ticket (admin or not: guesses count too)
    tokens_per_minute_per_address: int = Field(300, ge=1, le=1_000_000)
    # GET / (when the demo page is served): each view mints a widget token
    demo_pages_per_minute_per_address: int = Field(10, ge=1, le=100_000)
    # keys one limiter remembers at most; past it the least recent is forgotten
    max_tracked_keys: int = Field(100_000, ge=100, le=10_000_000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VOXGATE_", env_nested_delimiter="__", extra="forbid"
    )
    _yaml_file: ClassVar[Path | None] = None

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # every piece of state (event log, memory, model cache) lives under this directory
    data_dir: Path = Path(".voxgate")
    # postgresql://user:password@host:5432/db: the event log (with workflow state and
    # timers) and the agents' stores (memory, bookings, tickets, ops, outbox) on
    # PostgreSQL, shared by every replica; unset: events.db and the other files in
    # data_dir (docs/deployment.md)
    # (each store's pool opens up to VOXGATE_DATABASE_POOL_SIZE connections, default 4)
    database_url: str | None = None
    # nats://host:4222: the live bus every node shares, so each node's /ws/state,
    # /api/sessions and dashboard show every node's calls (docs/deployment.md, "The live
    # bus"); unset: this process's views show its own calls, and no server is needed
    bus_url: str | None = None
    # this node's name on the live bus; unset: host name, process id and a random part
    node_id: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[\w.:-]+$")
    # the LiveKit server the widget's LiveKit calls go through (data-transport="livekit"):
    # its URL as browsers reach it (wss://...), and the API key and secret the gateway
    # signs their room tokens with (POST /api/livekit/token); all three or none (unset:
    # that endpoint answers 404). livekit_agent_name: rooms ask for that agent explicitly
    # (voxgate livekit-worker --agent-name); empty: any worker takes every new room
    livekit_url: str | None = None
    livekit_api_key: str | None = Field(None, min_length=1, max_length=200)
    livekit_api_secret: SecretStr | None = None
    livekit_agent_name: str = Field("", max_length=200)
    # the public base URL (https://...) Twilio reaches us at; derived from the request if unset
    public_url: str | None = None
    # where a transfer goes on the phone (a number for <Dial>); browser calls just end
    transfer_number: str | None = None
    # live calls this node takes; over it a phone call hears busy_text, a browser call
    # gets close 1013. Measured (benchmarks/load_ramp.py --speech heldout, README
    # "Capacity"): on a 2-core machine every turn was answered with response p95 ~600 ms
    # up to 20 callers and 1.1 s at 24 (8 before Moonshine replaced whisper)
    max_sessions: int = Field(20, ge=1, le=10_000)
    # a Twilio stream that has not sent `start` (or a browser that has not sent `start`)
    # within this time is closed
    start_timeout_s: float = Field(10.0, gt=0)
    # a call whose client sends nothing for this long is dropped
    idle_timeout_s: float = Field(30.0, gt=0)
    # on SIGTERM (`voxgate serve`): new calls are refused, each live call hears this and is
    # hung up, and the process exits once they have ended or after drain_timeout_s
    drain_timeout_s: float = Field(10.0, gt=0, le=600)
    # a phone call over max_sessions hears this (TwiML <Say>) and is hung up
    busy_text: str = Field(
        "Sorry, all our lines are busy right now. Please call again in a few minutes. Goodbye.",
        min_length=1, max_length=500,
    )
    drain_goodbye_text: str = Field(
        "Sorry, this line is closing for maintenance. Please call again. Goodbye!",
        min_length=1, max_length=500,
    )
    log_level: str = "info"
    # production refuses to start without the three secrets below; development runs
    # without them and says so loudly (docs/security.md)
    mode: Literal["development", "production"] = "development"
    # bearer token for the admin API, /ws/state, /metrics and the dashboard
    admin_token: SecretStr | None = None
    # Twilio's auth token: verifies X-Twilio-Signature on webhooks and stream upgrades
    twilio_auth_token: SecretStr | None = None
    # key that signs widget tokens (browser calls)
    token_secret: SecretStr | None = None
    token_ttl_s: float = Field(3600.0, gt=0, le=7 * 86400)
    # how long a ticket from POST /api/ws-ticket opens /ws/state (once)
    ws_ticket_ttl_s: float = Field(30.0, gt=0, le=600)
    # GET / serves the demo page, which mints a widget token for whoever loads it; unset:
    # on in development, off (404) in production
    demo_page: bool | None = None
    limits: LimitSettings = Field(default_factory=LimitSettings)
    # addresses or networks (10.0.0.5, 10.0.0.0/8) of reverse proxies whose
    # X-Forwarded-For names the client; empty: the connection's own address is the client
    trusted_proxies: list[str] = Field(default_factory=list)
    # origins (https://shop.example) whose pages may place widget calls; empty: any
    allowed_origins: list[str] = Field(default_factory=list)
    # mask emails, phone and card numbers, national ids and secrets in every event (and so
    # in the event log, the dashboard and traces); see orchestration/log/redact.py
    redact: bool = True
    # keep raw call audio (caller.wav, agent.wav) under data_dir/recordings; off: raw audio
    # is never written anywhere
    record_audio: bool = False
    # delete calls' events and recordings older than this many days (checked at start-up
    # and hourly); unset: keep them
    retention_days: float | None = Field(None, gt=0)
    # OTLP/HTTP collector for traces, e.g. http://127.0.0.1:4318/v1/traces (unset: traces are
    # built, ids appear in logs, nothing is exported)
    otlp_endpoint: str | None = None
    # the agent behind every call: the front-desk supervisor with its sub-agents
    # (docs/agents.md), or the minimal built-in echo agent
    agent: Literal["supervisor", "basic"] = "supervisor"
    # the agents' YAML (default: the packaged orchestration/agents/default.yaml)
    agents_config: Path | None = None
    voice: VoiceConfig = Field(default_factory=VoiceConfig)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or network"
                ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("database_url must start with postgresql:// (unset it to keep "
                             "the event log in data_dir/events.db)")
        return value

    @field_validator("bus_url")
    @classmethod
    def _nats(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(("nats://", "tls://")):
            raise ValueError("bus_url must start with nats:// or tls:// (unset it to keep "
                             "the live views to this process)")
        return value

    @field_validator("livekit_url")
    @classmethod
    def _livekit(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(("ws://", "wss://", "http://", "https://")):
            raise ValueError("livekit_url must start with wss:// or ws:// (the LiveKit server "
                             "as browsers reach it)")
        return value

    @model_validator(mode="after")
    def _livekit_complete(self) -> Settings:
        given = [self.livekit_url, self.livekit_api_key, self.livekit_api_secret]
        if any(v is not None for v in given) and not all(v is not None for v in given):
            raise ValueError("livekit_url, livekit_api_key and livekit_api_secret go together: "
                             "set all three (or none, for no LiveKit calls from the widget)")
        return self

    @property
    def demo_page_on(self) -> bool:
        return self.demo_page if self.demo_page is not None else self.mode == "development"

    @property
    def limits_on(self) -> bool:
        enabled = self.limits.enabled
        return enabled if enabled is not None else self.mode == "production"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=cls._yaml_file))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config_file`` (YAML) and the environment; ``overrides`` win."""
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"config file not found: {config_file}")
    Settings._yaml_file = config_file
    try:
        return Settings(**overrides)
    finally:
        Settings._yaml_file = None
