"""stack_specs: which processes `parley up` starts for some pipelines; is_loopback."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from parley.commands.launcher import ProcessSpec, is_loopback, stack_specs
from parley.config import Config, WorkersConfig, load_config
from parley.errors import ConfigError
from parley.signals import sigterm_as_interrupt


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:50061", "localhost:1", "[::1]:50061", "0.0.0.0:50051", "localhost"],
)
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize(
    "address",
    ["10.0.0.2:50061", "192.168.1.5:1", "gpu-box:50062", "127.0.0.2:50061", "[2001:db8::1]:1"],
)
def test_other_addresses_are_not_loopback(address: str) -> None:
    assert not is_loopback(address)


def config(tmp_path: Path, toml: str = "") -> Config:
    path = tmp_path / "user.toml"
    path.write_text(toml)
    return load_config(path, {"PARLEY_HOME": str(tmp_path)})


def worker(pool: str, address: str, name: str | None = None) -> ProcessSpec:
    args = ("worker", "--pool", pool, "--listen", address)
    return ProcessSpec(name or pool, address, args, WorkersConfig())


def test_server_plus_one_worker_per_stage(tmp_path: Path) -> None:
    specs = stack_specs(config(tmp_path), ["tiny"])
    assert specs == [
        ProcessSpec("server", "127.0.0.1:50051", ("server",)),
        worker("tiny-stt", "127.0.0.1:50061"),
        worker("tiny-llm", "127.0.0.1:50062"),
        worker("tiny-tts", "127.0.0.1:50063"),
    ]


def test_server_address_follows_config(tmp_path: Path) -> None:
    specs = stack_specs(config(tmp_path, '[server]\nhost = "0.0.0.0"\nport = 6000\n'), [])
    assert specs == [ProcessSpec("server", "0.0.0.0:6000", ("server",))]


def test_up_passes_the_server_process_count(tmp_path: Path) -> None:
    (server,) = stack_specs(config(tmp_path), [], processes=3)
    assert server.args == ("server", "--processes", "3")


def test_two_pipelines_start_both_sets(tmp_path: Path) -> None:
    names = [s.name for s in stack_specs(config(tmp_path), ["tiny", "instant"])]
    assert names == [
        "server",
        "tiny-stt",
        "tiny-llm",
        "tiny-tts",
        "instant-stt",
        "instant-llm",
        "instant-tts",
    ]


def test_shared_pools_start_once(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """
[pipelines.tiny-fast]
stt = { pool = "tiny-stt" }
llm = { pool = "instant-llm" }
tts = { pool = "tiny-tts" }
""",
    )
    specs = stack_specs(cfg, ["tiny", "tiny-fast", "tiny"])
    names = [s.name for s in specs]
    assert names == ["server", "tiny-stt", "tiny-llm", "tiny-tts", "instant-llm"]
    assert len({s.address for s in specs}) == len(specs)


def test_every_loopback_address_gets_a_worker_and_remote_ones_are_skipped(
    tmp_path: Path,
) -> None:
    cfg = config(
        tmp_path,
        """
[pools.tiny-stt]
addresses = ["127.0.0.1:50061", "10.0.0.2:50061", "localhost:50064"]
""",
    )
    stt = [s for s in stack_specs(cfg, ["tiny"]) if s.name.startswith("tiny-stt")]
    assert stt == [
        worker("tiny-stt", "127.0.0.1:50061"),
        worker("tiny-stt", "localhost:50064", name="tiny-stt-1"),
    ]


def test_non_local_pools_are_not_started(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[pools.tiny-llm]\nlocal = false\n")
    names = [s.name for s in stack_specs(cfg, ["tiny"])]
    assert names == ["server", "tiny-stt", "tiny-tts"]


def test_pool_with_only_remote_addresses_starts_nothing(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[pools.tiny-tts]\naddresses = ["10.0.0.3:50063"]\n')
    names = [s.name for s in stack_specs(cfg, ["tiny"])]
    assert names == ["server", "tiny-stt", "tiny-llm"]


def test_unknown_pipeline_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'ghost'"):
        stack_specs(config(tmp_path), ["ghost"])


def test_up_insecure_starts_every_process_insecure(tmp_path: Path) -> None:
    specs = stack_specs(config(tmp_path), ["tiny"], insecure=True)
    assert all(spec.args[-1] == "--insecure" for spec in specs)
    assert specs[0].args == ("server", "--insecure")


def test_workers_get_their_pools_security(tmp_path: Path) -> None:
    toml = (
        '[workers]\ntls_ca = "/ca.pem"\n'
        '[pools.tiny-llm]\ntls_cert = "/llm.pem"\ntls_key = "/llm.key"\ntoken_env = "LLM_TOKEN"\n'
    )
    path = tmp_path / "user.toml"
    path.write_text(toml)
    loaded = load_config(path, {"PARLEY_HOME": str(tmp_path), "LLM_TOKEN": "s3cret"})
    by_name = {s.name: s for s in stack_specs(loaded, ["tiny"])}
    llm = by_name["tiny-llm"].security
    assert llm is not None
    assert (llm.tls_ca, llm.tls_cert, llm.token) == ("/ca.pem", "/llm.pem", "s3cret")
    stt = by_name["tiny-stt"].security
    assert stt is not None and (stt.tls_ca, stt.tls_cert, stt.token) == ("/ca.pem", "", "")
    assert by_name["server"].security is None


def test_sigterm_is_taken_as_an_interrupt_while_held_and_restored_after() -> None:
    cleaned: list[str] = []

    async def main() -> None:
        restore = sigterm_as_interrupt()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(5)
        finally:
            cleaned.append("stopped")
            restore()

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert cleaned == ["stopped"]
    assert signal.getsignal(signal.SIGTERM) == previous
