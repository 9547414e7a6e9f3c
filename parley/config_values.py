"""Checks of single configuration values: TOML types, number ranges and ``HOST:PORT``
addresses.

A value read from TOML must have the setting's type (:func:`check_type`): a quoted
``threshold = "0.5"`` is refused, not converted; an integer is taken where a float is
expected. (Environment variables are strings: the loader converts those.)

A numeric setting of a config dataclass declares its range where it is defined::

    threshold: float = ranged(0.5, low=0.0, high=1.0)
    timeout_s: float = positive(30.0)

and the dataclass's ``__post_init__`` calls :func:`check_ranges`, which raises
:class:`~parley.errors.ConfigError` naming ``[section] key``, the value and the range.
Every float setting must also be finite (``nan`` and ``inf`` are refused).

:func:`split_address` is the one parser of ``HOST:PORT``, for the config (pool
addresses, ``[edge] server``: :func:`parse_address`, which names the setting) and the
command line (``--listen``, ``--server``: argparse types in parley/arguments.py).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import typing
from collections.abc import Mapping
from typing import Any

from parley.errors import ConfigError

_RANGE = "parley.range"  # dataclass field metadata key: (low, high, low_excluded)

# ---------------------------------------------------------------------------- types

# What a setting of each type takes, in TOML's words. ``list`` means a list of strings,
# ``dict`` a table.
EXPECTED = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
    list: "a list of strings",
    dict: "a table",
}


def toml_type(value: Any) -> str:
    """What ``value`` is, in TOML's words ("a string", "a decimal number", ...)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"  # a TOML date or time


def check_type(value: Any, kind: type, key: str, where: str) -> Any:
    """``value`` if it is of the TOML type ``kind`` (an int is widened to a float, a
    ``list`` must hold strings, a ``dict`` is any table); else ConfigError naming
    ``where``, the key, the value and the type expected."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is list:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    elif kind is dict:
        ok = isinstance(value, Mapping)
    else:
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if ok:
        return value
    raise ConfigError(
        f"{where}: {key} = {value!r} is not a valid {kind.__name__}: expected "
        f"{EXPECTED[kind]}, not {toml_type(value)}"
    )


def ranged(
    default: Any, *, low: float | None = None, high: float | None = None, above: bool = False
) -> Any:
    """A dataclass field with ``default`` whose value must lie in ``low..high`` (either
    end may be open); ``above``: strictly greater than ``low``."""
    return dataclasses.field(default=default, metadata={_RANGE: (low, high, above)})


def positive(default: Any) -> Any:
    """A dataclass field with ``default`` whose value must be more than 0."""
    return ranged(default, low=0, above=True)


def _describe(low: float | None, high: float | None, above: bool) -> str:
    if above:
        return f"more than {low:g}" + (f" and at most {high:g}" if high is not None else "")
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    return f"{low:g} or more" if low is not None else f"{high:g} or less"


def range_problem(
    value: Any, low: float | None = None, high: float | None = None, above: bool = False
) -> str:
    """Why the number ``value`` is out of ``low..high`` (``above``: strictly more than
    ``low``) or not finite, in words ("must be 0 or more", "give a finite number");
    "" when it is fine."""
    if isinstance(value, float) and not math.isfinite(value):
        return "give a finite number"
    if (low is not None and (value <= low if above else value < low)) or (
        high is not None and value > high
    ):
        return f"must be {_describe(low, high, above)}"
    return ""


def check_ranges(settings: Any, section: str) -> None:
    """Raise ConfigError for the first setting of the dataclass ``settings`` outside
    its declared range (see :func:`ranged`), or a float that is nan or infinite."""
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"[{section}] {item.name} = {value}: give a finite number")
        if _RANGE not in item.metadata:
            continue
        if problem := range_problem(value, *item.metadata[_RANGE]):
            raise ConfigError(f"[{section}] {item.name} = {value!r}: {problem}")


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def coerce(cls: type, key: str, value: Any, where: str, *, from_env: bool = False) -> Any:
    """Check one scalar setting against the dataclass field's type (int/float/str/bool):
    a TOML value must have that type (see :func:`check_type`); an environment
    variable's string is converted."""
    hints = typing.get_type_hints(cls)
    if key not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{where}: unknown setting {key!r} (known: {known})")
    kind = hints[key]
    if not from_env:
        return check_type(value, kind, key, where)
    if kind is bool:
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
    else:
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
    raise ConfigError(
        f"{where}: {key} = {value!r} is not a valid {kind.__name__}: expected {EXPECTED[kind]}"
    )


def expect_table(value: Any, where: str, what: str = "a table") -> Mapping[str, Any]:
    """``value`` if it is a TOML table, else ConfigError naming ``where``."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be {what}, not {value!r}")
    return value


# ---------------------------------------------------------------------------- addresses

_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
EXAMPLE = "e.g. 127.0.0.1:50051, myhost:50051 or [::1]:50051"


def _host_problem(host: str) -> str:
    """What is wrong with ``host`` ("" if it is a name, an IPv4 address or an IPv6
    address with or without brackets)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
        return ""
    except ValueError:
        pass
    if bare == host and _HOSTNAME.match(host) and len(host) <= 253:
        return ""
    return f"{host!r} is not a host name or IP address"


def check_host(host: str, where: str) -> str:
    """``host`` unchanged if it is a name or an IP address; ConfigError naming ``where``
    if not."""
    if problem := _host_problem(host):
        raise ConfigError(f"{where}: {problem}")
    return host


def split_address(
    address: str, *, any_port: bool = False, empty_host: bool = False
) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host as written, port).

    The port must be from 1 to 65535, or from 0 (a free port) with ``any_port``; with
    ``empty_host`` the host may be left out (``:PORT``, host ""). Raises ValueError
    saying what is wrong with ``address`` (see :func:`parse_address`)."""
    text = str(address).strip()
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not (host or empty_host):
        raise ValueError(f"{address!r} is not HOST:PORT ({EXAMPLE})")
    if ":" in host and not host.startswith("["):
        raise ValueError(f"{address!r}: write an IPv6 address in brackets, [::1]:PORT")
    number, low = int(port), 0 if any_port else 1
    if not low <= number <= 65535:
        raise ValueError(f"{address!r}: the port must be from {low} to 65535")
    if host and (problem := _host_problem(host)):
        raise ValueError(problem)
    return host, number


def join_address(host: str, port: int) -> str:
    """``HOST:PORT`` as :func:`split_address` (and gRPC, and a URL) reads it: an IPv6
    address goes in brackets (``::1``, 50051 -> ``[::1]:50051``); a bracketed one stays."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def parse_address(
    address: str, where: str, *, any_port: bool = False, empty_host: bool = False
) -> tuple[str, int]:
    """:func:`split_address`, raising ConfigError that names ``where``
    (``[pools.tiny-stt] addresses``, ``[edge] server``, ...) and the address."""
    try:
        return split_address(address, any_port=any_port, empty_host=empty_host)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check_address(address: str, where: str) -> str:
    """``address`` unchanged if :func:`parse_address` accepts it (ConfigError if not)."""
    parse_address(address, where)
    return address
