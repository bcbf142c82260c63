"""`voxgate serve` with bad settings says which ones and exits 2, before loading anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gateway.servers.serve_process import VOXGATE


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VOXGATE), "serve"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "VOXGATE_DATA_DIR": str(tmp_path), **env},
                          check=False)


def test_each_bad_setting_is_named_with_its_variable(tmp_path: Path) -> None:
    done = serve(tmp_path, VOXGATE_PORT="eighty", VOXGATE_VOICE__TURN__REPROMPT_AFTER_S="-1")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        "invalid settings:",
        "  port (VOXGATE_PORT): Input should be a valid integer, unable to parse string as "
        "an integer; got 'eighty'",
        "  voice.turn.reprompt_after_s (VOXGATE_VOICE__TURN__REPROMPT_AFTER_S): Input should "
        "be greater than 0; got '-1'",
    ]


def test_a_value_that_is_not_json_is_named(tmp_path: Path) -> None:
    done = serve(tmp_path, VOXGATE_ALLOWED_ORIGINS="[https://shop.example")
    assert done.returncode == 2
    assert done.stderr.strip() == ('invalid settings: error parsing value for field '
                                   '"allowed_origins" from source "EnvSettingsSource"')
