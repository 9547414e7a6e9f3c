"""A run's configuration snapshot: plain JSON that compares equal after a round trip
through the store, the graph's stages, and never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from parley.config import load_config
from research.runs import config_snapshot

TOML = """
[pools.cloud-llm]
stage = "llm"
engine = "openai"
addresses = ["127.0.0.1:50999"]
token_env = "CLOUD_WORKERS_TOKEN"
options = { model = "gpt-x", api_key = "sk-in-a-file", base_url = "http://llm.lan/v1" }

[pipelines.cloud]
stt = { pool = "tiny-stt" }
llm = { pool = "cloud-llm", system_prompt = "Be brief." }
tts = { pool = "tiny-tts" }
"""


def test_snapshot_is_json_with_every_stage_and_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "parley.toml"
    path.write_text(TOML)
    env = {
        "PARLEY_HOME": str(tmp_path),
        "PARLEY_WORKERS_TOKEN": "workers-secret",
        "CLOUD_WORKERS_TOKEN": "cloud-secret",
    }
    snapshot = config_snapshot(load_config(path, env=env), "cloud")
    text = json.dumps(snapshot)
    for secret in ("sk-in-a-file", "workers-secret", "cloud-secret"):
        assert secret not in text
    assert json.loads(text) == snapshot  # what the store gives back compares equal
    assert set(snapshot["pipeline"]["stages"]) == {"stt", "llm", "tts"}
    assert snapshot["pipeline"]["stages"]["llm"]["params"]["system_prompt"] == "Be brief."
    assert snapshot["pools"]["cloud-llm"]["options"] == {
        "model": "gpt-x",
        "base_url": "http://llm.lan/v1",
    }
