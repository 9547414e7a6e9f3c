"""One typed, frozen configuration tree for every role.

Sources, later ones winning:
1. the defaults in these dataclasses and the bundled ``parley/defaults.toml``
   (worker pools and pipelines);
2. a user TOML file: ``--config PATH``, else ``$PARLEY_CONFIG``, else ``parley.toml`` in
   the working directory if present (same shape as defaults.toml; tables merge);
3. environment variables ``PARLEY_<SECTION>_<KEY>`` for scalar settings, e.g.
   ``PARLEY_SERVER_PORT=6000`` or ``PARLEY_STORE_DATABASE_URL=postgresql://...``.

The tree's parts live beside this module: the service sections ([server], [vad],
[turn], ...) in parley/config_sections.py, worker pools and pipelines in
parley/config_pipelines.py, value checks in parley/config_values.py; import any of
them from here.

Only entry points (the CLI) call :func:`load_config`; everything else receives the
objects it needs. Secrets (tokens, API keys) come from the environment, never files
in the repository.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.config_annotation import AnnotationConfig, parse_annotation
from parley.config_pipelines import (
    PipelineConfig,
    PoolConfig,
    StageConfig,
    load_pipelines,
    load_pools,
)
from parley.config_sections import (
    BASE_PORT,
    PORT_OFFSETS,
    SMART_TURN_FILE,
    TURN_MODEL_FIX,
    TURN_STRATEGIES,
    AdminConfig,
    EdgeConfig,
    LimitsConfig,
    ServerConfig,
    StoreConfig,
    TurnConfig,
    VadConfig,
    WorkersConfig,
)
from parley.config_values import check_type, coerce, expect_table
from parley.errors import ConfigError

__all__ = [
    "BASE_PORT",
    "DEFAULTS_FILE",
    "PORT_OFFSETS",
    "SMART_TURN_FILE",
    "TURN_MODEL_FIX",
    "TURN_STRATEGIES",
    "AdminConfig",
    "Config",
    "ConfigError",
    "EdgeConfig",
    "LimitsConfig",
    "PipelineConfig",
    "PoolConfig",
    "ServerConfig",
    "StageConfig",
    "StoreConfig",
    "TurnConfig",
    "VadConfig",
    "WorkersConfig",
    "load_config",
]

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")


def _home() -> Path:
    return Path(os.environ.get("PARLEY_HOME", "~/.local/share/parley")).expanduser()


@dataclass(frozen=True)
class Config:
    home: Path = field(default_factory=_home)
    base_port: int = BASE_PORT  # PARLEY_BASE_PORT: ports not set one by one follow it
    server: ServerConfig = field(default_factory=ServerConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    edge: EdgeConfig = field(default_factory=EdgeConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    pools: Mapping[str, PoolConfig] = field(default_factory=dict)
    pipelines: Mapping[str, PipelineConfig] = field(default_factory=dict)
    annotation: AnnotationConfig = field(default_factory=AnnotationConfig)

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def data_dir(self) -> Path:
        return Path(self.store.data_dir).expanduser() if self.store.data_dir else self.home / "data"

    @property
    def database_url(self) -> str:
        return self.store.database_url or f"sqlite:///{self.home / 'parley.db'}"

    def pipeline(self, name: str) -> PipelineConfig:
        try:
            return self.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise ConfigError(f"unknown pipeline {name!r} (configured: {known})") from None

    def turn_for(self, pipeline: str) -> TurnConfig:
        """The [turn] settings a session of ``pipeline`` runs with."""
        return self.pipeline(pipeline).turn or self.turn

    def turn_model_path(self, turn: TurnConfig) -> Path:
        """The end-of-turn model file: ``turn.model_path``, else the models directory's."""
        return (
            Path(turn.model_path).expanduser()
            if turn.model_path
            else (self.models_dir / SMART_TURN_FILE)
        )

    def pool(self, name: str) -> PoolConfig:
        try:
            return self.pools[name]
        except KeyError:
            raise ConfigError(f"unknown worker pool {name!r}") from None


# --------------------------------------------------------------------------- loading

_SCALAR_SECTIONS = {
    "server": ServerConfig,
    "vad": VadConfig,
    "turn": TurnConfig,
    "store": StoreConfig,
    "limits": LimitsConfig,
    "edge": EdgeConfig,
    "admin": AdminConfig,
    "workers": WorkersConfig,
}


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _section(cls: type, raw: Any, env: Mapping[str, str], name: str) -> Any:
    values = {k: coerce(cls, k, v, f"[{name}]") for k, v in expect_table(raw, f"[{name}]").items()}
    prefix = f"PARLEY_{name.upper()}_"
    for var, value in env.items():
        if var.startswith(prefix):
            key = var[len(prefix) :].lower()
            values[key] = coerce(cls, key, value, f"${var}", from_env=True)
    return cls(**values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _base_port(raw: Mapping[str, Any], env: Mapping[str, str]) -> int:
    """``base_port``: a TOML whole number (a quoted or decimal one is refused, as for any
    setting), or $PARLEY_BASE_PORT's digits; from 1024 to 65435."""
    value: Any = env.get("PARLEY_BASE_PORT")
    if value is None:
        value = check_type(raw.get("base_port", BASE_PORT), int, "base_port", "top level")
    try:
        base = int(value)
    except (TypeError, ValueError):
        base = -1
    if isinstance(value, bool) or not 1024 <= base <= 65535 - 100:
        raise ConfigError(f"base_port = {value!r}: give a port from 1024 to 65435")
    return base


def _set_by_hand(section: str, key: str, raw: Mapping[str, Any], env: Mapping[str, str]) -> bool:
    return key in raw.get(section, {}) or f"PARLEY_{section.upper()}_{key.upper()}" in env


def _follow_base_port(
    sections: dict[str, Any], raw: Mapping[str, Any], env: Mapping[str, str], base: int
) -> None:
    """Ports (and the edge's server address) not set one by one follow ``base``."""
    for name, offset in PORT_OFFSETS.items():
        if not _set_by_hand(name, "port", raw, env):
            sections[name] = dataclasses.replace(sections[name], port=base + offset)
    # (A server on port 0, a free one, cannot be dialled: the edge keeps its default.)
    if sections["server"].port and not _set_by_hand("edge", "server", raw, env):
        server = f"127.0.0.1:{sections['server'].port}"
        sections["edge"] = dataclasses.replace(sections["edge"], server=server)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the config from defaults, a TOML file and the environment."""
    env = os.environ if env is None else env
    raw = _read_toml(DEFAULTS_FILE)
    if path is None and env.get("PARLEY_CONFIG"):
        path = env["PARLEY_CONFIG"]
    if path is None and Path("parley.toml").exists():
        path = "parley.toml"
    if path is not None:
        raw = _merge(raw, _read_toml(Path(path)))
    unknown = set(raw) - {
        *_SCALAR_SECTIONS,
        "pools",
        "pipelines",
        "home",
        "base_port",
        "annotation",
    }
    if unknown:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    if not isinstance(raw.get("home", ""), str):
        raise ConfigError(f"home must be a directory's path, not {raw['home']!r}")
    home = Path(env.get("PARLEY_HOME") or raw.get("home") or _home()).expanduser()
    base = _base_port(raw, env)
    sections = {
        name: _section(cls, raw.get(name, {}), env, name) for name, cls in _SCALAR_SECTIONS.items()
    }
    _follow_base_port(sections, raw, env, base)
    pools = load_pools(raw.get("pools", {}), home, base, sections["workers"], env)
    pipelines = load_pipelines(raw.get("pipelines", {}), pools, sections["turn"])
    config = Config(
        home=home,
        base_port=base,
        pools=pools,
        pipelines=pipelines,
        annotation=parse_annotation(raw.get("annotation", {})),
        **sections,
    )
    config.pipeline(config.server.default_pipeline)  # fail early on a bad default
    return config
