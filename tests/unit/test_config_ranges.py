"""Bad values are refused when the config loads, naming ``[section] key``: every numeric
setting's range, nan and infinity, HOST:PORT addresses, and tables or arrays of the
wrong type. (A newcomer's review found each of the reported inputs passing the loader
and failing every session later, with a traceback.)"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path

import pytest

from parley.config import _SCALAR_SECTIONS, load_config
from parley.config_values import parse_address
from parley.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_cwd_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def refused(tmp_path: Path, toml: str = "", **env: str) -> str:
    path = tmp_path / "user.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, {"PARLEY_HOME": str(tmp_path / "home"), **env})
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ------------------------------------------------------------------ the reported inputs


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[vad]\nthreshold = 1.5\n", "[vad] threshold = 1.5: must be from 0 to 1"),
        ("[vad]\nmax_turn_s = 0\n", "[vad] max_turn_s = 0.0: must be more than 0"),
        ("[vad]\nneg_threshold = 0.9\n", "[vad] neg_threshold = 0.9 must not be above"),
        ("[vad]\nmin_silence_ms = -1\n", "[vad] min_silence_ms = -1: must be 0 or more"),
        ("[vad]\nmax_turn_s = inf\n", "[vad] max_turn_s = inf: give a finite number"),
        ("[vad]\nthreshold = nan\n", "[vad] threshold = nan: give a finite number"),
        ("[vad]\nbatch_max = 0\n", "[vad] batch_max = 0: must be 1 or more"),
        (
            "[vad]\nbatch_interval_ms = -3\n",
            "[vad] batch_interval_ms = -3.0: must be from 0 to 100",
        ),
        ("[vad]\nbatch_max_interval_ms = 1000\n", "[vad] batch_max_interval_ms = 1000.0: must be"),
        ("[vad]\nmax_turn_s = 0.2\n", "[vad] max_turn_s = 0.2 must be longer than min_speech_ms"),
        ("[server]\nstt_timeout_s = -1\n", "[server] stt_timeout_s = -1.0: must be more than 0"),
        ("[server]\nport = -1\n", "[server] port = -1: must be from 0 to 65535"),
        ("[server]\nport = 99999\n", "[server] port = 99999: must be from 0 to 65535"),
        ("[server]\nhost = 'not a host'\n", "[server] host: 'not a host' is not a host name"),
        ("[admin]\nport = 70000\n", "[admin] port = 70000: must be from 1 to 65535"),
        ("[store]\nwrite_retry_s = -0.5\n", "[store] write_retry_s = -0.5: must be 0 or more"),
        ("[edge]\ncamera_quality = 101\n", "[edge] camera_quality = 101: must be from 1 to 100"),
        ("[edge]\nserver = '127.0.0.1:99999'\n", "[edge] server: '127.0.0.1:99999': the port"),
        ("[turn]\nthreshold = 2\n", "[turn] threshold = 2.0: must be from 0 to 1"),
    ],
)
def test_a_bad_value_is_refused_naming_section_and_key(
    tmp_path: Path, toml: str, named: str
) -> None:
    assert named in refused(tmp_path, toml)


def _numeric_fields() -> list[tuple[str, dataclasses.Field[typing.Any], type]]:
    out = []
    for section, cls in _SCALAR_SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            if hints[item.name] in (int, float):
                out.append((section, item, hints[item.name]))
    return out


NUMERIC = _numeric_fields()


def test_every_numeric_setting_declares_its_range() -> None:
    # A new numeric setting must say what it accepts (parley.config_values.ranged).
    missing = [f"[{s}] {f.name}" for s, f, _ in NUMERIC if "parley.range" not in f.metadata]
    assert not missing, missing


@pytest.mark.parametrize(
    ("section", "item", "kind"), NUMERIC, ids=[f"{s}.{f.name}" for s, f, _ in NUMERIC]
)
def test_every_numeric_setting_refuses_values_outside_its_range(
    tmp_path: Path, section: str, item: dataclasses.Field[typing.Any], kind: type
) -> None:
    low, high, above = item.metadata["parley.range"]
    var = f"PARLEY_{section.upper()}_{item.name.upper()}"
    outside = [low if above else low - 1] if low is not None else []
    outside += [high + 1] if high is not None else []
    for value in outside:
        message = refused(tmp_path, **{var: str(kind(value))})
        assert message.startswith(f"[{section}] {item.name} = "), message
    if kind is float:
        for value in ("nan", "inf", "-inf"):
            message = refused(tmp_path, **{var: value})
            assert f"[{section}] {item.name} = {float(value)}: give a finite" in message


def test_a_vad_interval_above_the_default_maximum_alone_is_no_stretching() -> None:
    # batch_interval_ms = 30 was valid before batch_max_interval_ms (20) existed
    vad = load_config(env={"PARLEY_VAD_BATCH_INTERVAL_MS": "30"}).vad
    assert (vad.batch_interval_ms, vad.batch_max_interval_ms) == (30.0, 20.0)


def test_values_at_the_ends_of_a_range_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "user.toml"
    path.write_text(
        "[vad]\nthreshold = 1.0\nneg_threshold = 0.0\nmin_silence_ms = 0\nbatch_max = 1\n"
        "batch_interval_ms = 0\n[server]\nport = 0\nprocesses = 0\n[edge]\ncamera_fps = 0\n"
        "camera_quality = 100\n"
    )
    config = load_config(path, {"PARLEY_HOME": str(tmp_path)})
    assert (config.vad.threshold, config.vad.batch_max, config.server.port) == (1.0, 1, 0)
    assert math.isclose(config.edge.camera_fps, 0.0)


# ------------------------------------------------------------------ addresses


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("worker-3.lan:1", ("worker-3.lan", 1)),
        ("[::1]:65535", ("[::1]", 65535)),
        (" localhost:8080 ", ("localhost", 8080)),
    ],
)
def test_parse_address_accepts_host_port(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address, "--server") == expected


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("not an address", "is not HOST:PORT"),
        ("127.0.0.1", "is not HOST:PORT"),
        ("127.0.0.1:", "is not HOST:PORT"),
        ("127.0.0.1:http", "is not HOST:PORT"),
        ("127.0.0.1:-1", "is not HOST:PORT"),
        (":50051", "is not HOST:PORT"),
        ("127.0.0.1:99999", "the port must be from 1 to 65535"),
        ("127.0.0.1:0", "the port must be from 1 to 65535"),
        ("::1:50051", "write an IPv6 address in brackets"),
        ("bad host:50051", "is not a host name or IP address"),
        ("[nope]:50051", "is not a host name or IP address"),
    ],
)
def test_parse_address_refuses_what_is_not_host_port(address: str, why: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(why)) as info:
        parse_address(address, "--server")
    assert str(info.value).startswith("--server: ")


def test_a_listening_address_may_ask_for_a_free_port() -> None:
    assert parse_address("127.0.0.1:0", "--listen", any_port=True) == ("127.0.0.1", 0)
    assert parse_address(":6000", "--listen", empty_host=True) == ("", 6000)
    with pytest.raises(ConfigError, match="from 0 to 65535"):
        parse_address("127.0.0.1:65536", "--listen", any_port=True)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1:99999", "'127.0.0.1:99999': the port must be from 1 to 65535"),
        ("not an address", "'not an address' is not HOST:PORT"),
        ("127.0.0.1:0", "the port must be from 1 to 65535"),
    ],
)
def test_a_pool_address_is_checked(tmp_path: Path, address: str, why: str) -> None:
    toml = f'[pools.my]\nstage = "stt"\nengine = "instant"\naddresses = ["{address}"]\n'
    message = refused(tmp_path, toml)
    assert message.startswith("[pools.my] addresses: ") and why in message


# ------------------------------------------------------------------ tables and arrays


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[pipelines]\nx = 5\n", "[pipelines.x] must be a table of stages"),
        ("pipelines = 5\n", "[pipelines] must be a table of pipelines"),
        ("pools = [1, 2]\n", "[pools] must be a table of pools"),
        ("[pools]\nmy = 'x'\n", "[pools.my] must be a table"),
        ("vad = 3\n", "[vad] must be a table"),
        ("annotation = 3\n", "[annotation] must be a table"),
        ("home = 3\n", "home must be a directory's path"),
        ('[pools.my]\nstage = "stt"\nengine = 5\naddresses = ["h:1"]\n', "engine must be"),
        ('[pools.my]\nstage = "stt"\nengine = "e"\naddresses = 5\n', "addresses must be a list"),
        ('[pools.my]\nstage = "stt"\nengine = "e"\naddresses = [5]\n', "addresses must be a list"),
        (
            '[pools.my]\nstage = "stt"\nengine = "e"\naddresses = ["h:1"]\nlocal = "no"\n',
            "[pools.my]: local must be true or false, not 'no'",
        ),
        (
            '[pools.my]\nstage = "stt"\nengine = "e"\naddresses = ["h:1"]\noptions = 3\n',
            "[pools.my] options must be a table",
        ),
        ("[pipelines.p]\nstt = 3\n", "[pipelines.p.stt]: expected a table with a pool"),
        ("[pipelines.p]\nstt = { pool = [1] }\n", "[pipelines.p.stt]: pool and kind must be"),
        ("[pipelines.p]\ndescription = 3\n", "[pipelines.p]: description must be a string"),
        (
            "[pipelines.tiny.stt]\npool = 'tiny-stt'\ninputs = 'x'\n",
            "inputs must be a list of stage names",
        ),
    ],
)
def test_a_table_or_array_of_the_wrong_type_is_named(tmp_path: Path, toml: str, named: str) -> None:
    assert named in refused(tmp_path, toml)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 50051, "127.0.0.1:50051"),
        ("myhost", 1, "myhost:1"),
        ("::1", 50051, "[::1]:50051"),
        ("2001:db8::1", 8080, "[2001:db8::1]:8080"),
        ("[::1]", 50051, "[::1]:50051"),  # already bracketed: kept
        ("", 6000, ":6000"),
    ],
)
def test_join_address_brackets_ipv6_and_splits_back(host: str, port: int, expected: str) -> None:
    from parley.config_values import join_address, split_address

    assert join_address(host, port) == expected
    if host:
        assert split_address(expected)[1] == port


def test_a_bare_ipv6_server_host_is_joined_with_brackets(tmp_path: Path) -> None:
    from parley.commands.admin import site_url
    from parley.commands.launcher import is_loopback, stack_specs

    path = tmp_path / "user.toml"
    path.write_text('[server]\nhost = "::1"\nport = 6000\n[admin]\nhost = "::1"\nport = 6030\n')
    config = load_config(path, {"PARLEY_HOME": str(tmp_path)})
    (server,) = stack_specs(config, [])
    assert server.address == "[::1]:6000" and is_loopback(server.address)
    assert site_url(config.admin.host, config.admin.port) == "http://[::1]:6030/"
    assert site_url("::", 6030) == site_url("[::]", 6030) == "http://127.0.0.1:6030/"
