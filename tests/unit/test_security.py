"""parley.security: which addresses reach beyond loopback, the refusal to listen
openly, tokens and their digests; and the worker security settings in the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.config import WorkersConfig, load_config
from parley.errors import ConfigError
from parley.security import (
    InsecureListenError,
    bearer,
    beyond_loopback,
    new_token,
    refuse_open_listen,
    same_token,
    token_digest,
)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:50051", "127.9.8.7:1", "localhost:50051", "[::1]:50051", "::1", "localhost"],
)
def test_loopback_addresses_stay_local(address: str) -> None:
    assert not beyond_loopback(address)


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0:50051", "[::]:50051", ":50051", "10.0.0.7:50051", "[2001:db8::1]:1", "*:1"],
)
def test_every_interface_and_lan_addresses_reach_beyond_loopback(address: str) -> None:
    assert beyond_loopback(address)


def test_a_name_that_does_not_resolve_counts_as_beyond_loopback() -> None:
    assert beyond_loopback("no-such-host.invalid:50051")


def _refuse(address: str, **kwargs: bool) -> None:
    refuse_open_listen(
        address,
        "thing",
        authenticated=kwargs.get("authenticated", False),
        insecure=kwargs.get("insecure", False),
        how="Do X.",
        insecure_how="pass --insecure",
    )


def test_the_refusal_to_listen_openly() -> None:
    _refuse("127.0.0.1:1")  # loopback: fine
    _refuse("0.0.0.0:1", authenticated=True)
    _refuse("0.0.0.0:1", insecure=True)
    with pytest.raises(InsecureListenError) as refused:
        _refuse("0.0.0.0:1")
    assert str(refused.value) == (
        "refusing to start the thing on 0.0.0.0:1: that address is reachable from other "
        "machines and nothing would authenticate them. Do X. Or, on a network you trust "
        "completely, pass --insecure."
    )
    assert isinstance(refused.value, ConfigError)  # the CLI prints it and exits 2


def test_tokens_are_random_and_compared_by_digest() -> None:
    first, second = new_token("pdt_"), new_token("pdt_")
    assert first != second and first.startswith("pdt_") and len(first) == 4 + 43
    assert len(token_digest(first)) == 64 and token_digest(first) != first
    assert same_token(first, first) and not same_token(first, second)
    assert not same_token(first, first[:-1]) and not same_token("", first)


def test_bearer_tokens_in_call_metadata() -> None:
    assert bearer([("authorization", "Bearer abc")]) == "abc"
    assert bearer([("x", "y"), ("authorization", "bearer  abc ")]) == "abc"
    assert bearer([("authorization", b"Bearer abc")]) == "abc"
    assert bearer([("authorization", "Basic abc")]) == ""
    assert bearer(None) == bearer([]) == ""


def _config(tmp_path: Path, toml: str, **env: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "parley.toml"
    path.write_text(toml)
    return load_config(path, {"PARLEY_HOME": str(tmp_path), **env})


def test_pools_inherit_worker_security_and_may_override_it(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        '[workers]\ntls_ca = "/ca.pem"\ninsecure = true\n'
        '[pools.tiny-llm]\ntls_ca = "/llm-ca.pem"\ntoken_env = "LLM_TOKEN"\n',
        PARLEY_WORKERS_TOKEN="everyone",
        LLM_TOKEN="llm-only",
    )
    assert config.workers == WorkersConfig(token="everyone", tls_ca="/ca.pem", insecure=True)
    llm, stt = config.pool("tiny-llm").security, config.pool("tiny-stt").security
    assert (llm.token, llm.tls_ca, llm.insecure) == ("llm-only", "/llm-ca.pem", True)
    assert (stt.token, stt.tls_ca) == ("everyone", "/ca.pem")
    assert "everyone" not in repr(config) and "llm-only" not in repr(config)  # never logged


def test_pool_tables_refuse_tokens_and_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[pools.tiny-llm\]: a token does not belong"):
        _config(tmp_path, '[pools.tiny-llm]\ntoken = "secret"\n')
    with pytest.raises(ConfigError, match=r"\[pools.tiny-llm\]: unknown key\(s\) tls_cer"):
        _config(tmp_path, '[pools.tiny-llm]\ntls_cer = "/x.pem"\n')
    with pytest.raises(ConfigError, match="insecure = 'maybe' is not a valid bool"):
        _config(tmp_path, '[pools.tiny-llm]\ninsecure = "maybe"\n')
