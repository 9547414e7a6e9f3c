"""Worker pools and pipelines: ``[pools.NAME]`` (a stage's workers: engine, options,
addresses) and ``[pipelines.NAME]`` (a small graph of stages, each with its pool and
parameters), their dataclasses and their loading and checks (ConfigError naming the
table). parley/config.py calls :func:`load_pools` and :func:`load_pipelines`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley import pipeline_graph
from parley.config_sections import TurnConfig, WorkersConfig
from parley.config_values import check_address, coerce, expect_table
from parley.errors import ConfigError
from parley.kinds import KINDS
from parley.stage_params import check_params

_BASE_TEMPLATE = re.compile(r"\{base\+(\d+)\}")


@dataclass(frozen=True)
class PoolConfig:
    """A stage's workers: which engine they run and where they listen."""

    name: str
    stage: str  # the stage kind: stt | llm | tts | speech_llm | analyse | retrieve | caption
    engine: str
    addresses: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    # `parley up` starts a worker for each loopback address of a local pool.
    local: bool = True
    # Token and TLS of these workers: [workers] merged with the pool's own keys.
    security: WorkersConfig = field(default_factory=WorkersConfig)


@dataclass(frozen=True)
class StageConfig:
    """One stage of a pipeline: its pool, its per-request parameters, its kind (empty:
    the pool's stage, or the stage's name) and the stages it reads (None: the default
    wiring of parley/pipeline_graph.py). ``name`` and the resolved ``inputs`` are set
    by the pipeline."""

    pool: str
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: str = ""
    inputs: tuple[str, ...] | None = None
    name: str = ""


@dataclass(frozen=True)
class PipelineConfig:
    """A named pipeline: a small graph of stages (``stages``, by name, inputs first).

    ``PipelineConfig(name, stt=..., llm=..., tts=...)`` is the classic three-stage
    pipeline; ``stages={...}`` any graph. Either way the graph is wired and checked
    here (ConfigError naming the stage), and ``stt``, ``llm`` and ``tts`` are the
    stages of those kinds, if any."""

    name: str
    stt: StageConfig | None = None
    llm: StageConfig | None = None
    tts: StageConfig | None = None
    description: str = ""
    notice: str = ""  # printed loudly by the demo (e.g. "tiny models speak nonsense")
    stages: Mapping[str, StageConfig] = field(default_factory=dict)
    # [pipelines.NAME.turn]: the global [turn] with this pipeline's keys over it (None:
    # the global [turn] as it is). Config.turn_for(name) gives the one that applies.
    turn: TurnConfig | None = None

    def __post_init__(self) -> None:
        given = dict(self.stages) or {
            kind: stage for kind in ("stt", "llm", "tts") if (stage := getattr(self, kind))
        }
        nodes = []
        for name, stage in given.items():
            kind = stage.kind or name
            on = pipeline_graph.analyse_on(stage.params, None) if kind == "analyse" else "audio"
            feeds = pipeline_graph.feeds_prompt(kind, stage.params)
            nodes.append(pipeline_graph.Node(name, kind, stage.inputs, on, feeds))
        wiring = pipeline_graph.wire(self.name, nodes)
        kinds = {node.name: node.kind for node in nodes}
        stages = {
            name: dataclasses.replace(given[name], name=name, kind=kinds[name], inputs=inputs)
            for name, inputs in wiring.items()
        }
        object.__setattr__(self, "stages", stages)
        for kind in ("stt", "llm", "tts"):
            found = [s for s in stages.values() if s.kind == kind]
            object.__setattr__(self, kind, found[0] if found else None)

    def stage(self, name: str) -> StageConfig:
        """The stage named ``name`` (KeyError if there is none)."""
        return self.stages[name]

    @property
    def answer(self) -> StageConfig:
        """The stage that answers: the llm or speech_llm stage."""
        return next(s for s in self.stages.values() if s.kind in ("llm", "speech_llm"))


def _expand(value: Any, home: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{models}", str(home / "models")).replace("{home}", str(home))
    if isinstance(value, Mapping):
        return {k: _expand(v, home) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, home) for v in value]
    return value


_POOL_KEYS = {"stage", "engine", "addresses", "options", "local", "token_env"}
_POOL_SECURITY_KEYS = {f.name for f in dataclasses.fields(WorkersConfig)} - {"token"}


def _pool_security(
    spec: Mapping[str, Any], defaults: WorkersConfig, env: Mapping[str, str], where: str
) -> WorkersConfig:
    """``defaults`` ([workers]) with the pool's own keys; ``token_env`` names the
    environment variable that holds this pool's token (tokens never sit in files)."""
    values = {k: coerce(WorkersConfig, k, spec[k], where) for k in _POOL_SECURITY_KEYS if k in spec}
    if "token_env" in spec:
        values["token"] = env.get(str(spec["token_env"]), "")
    return dataclasses.replace(defaults, **values)


def _address(address: str, base: int, where: str) -> str:
    """``host:{base+N}`` -> ``host:<base_port + N>``."""

    def port(match: re.Match[str]) -> str:
        value = base + int(match.group(1))
        if not 0 < value < 65536:
            raise ConfigError(f"{where}: base_port {base} + {match.group(1)} is not a valid port")
        return str(value)

    return _BASE_TEMPLATE.sub(port, address)


def load_pools(
    raw: Mapping[str, Any],
    home: Path,
    base: int,
    workers: WorkersConfig | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, PoolConfig]:
    workers = workers or WorkersConfig()
    pools = {}
    for name, spec in expect_table(raw, "[pools]", "a table of pools").items():
        where = f"[pools.{name}]"
        expect_table(spec, where, "a table (stage, engine, addresses, ...)")
        unknown = set(spec) - _POOL_KEYS - _POOL_SECURITY_KEYS
        if "token" in unknown:
            raise ConfigError(
                f"{where}: a token does not belong in a file; put it in an environment "
                "variable and name it with token_env"
            )
        if unknown:
            known = ", ".join(sorted(_POOL_KEYS | _POOL_SECURITY_KEYS))
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} ({known})")
        try:
            stage, engine, addresses = spec["stage"], spec["engine"], spec["addresses"]
        except KeyError as exc:
            raise ConfigError(f"{where}: missing {exc.args[0]!r}") from None
        if stage not in KINDS:
            raise ConfigError(f"{where}: stage must be one of {', '.join(KINDS)}, not {stage!r}")
        if not isinstance(engine, str) or not engine:
            raise ConfigError(f"{where}: engine must be an engine's name, not {engine!r}")
        if isinstance(addresses, str):
            addresses = [addresses]
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise ConfigError(f'{where}: addresses must be a list of "HOST:PORT" strings')
        if not addresses:
            raise ConfigError(f"{where}: addresses is empty")
        local = spec.get("local", True)
        if not isinstance(local, bool):
            raise ConfigError(f"{where}: local must be true or false, not {local!r}")
        if not isinstance(spec.get("token_env", ""), str):
            raise ConfigError(f"{where}: token_env must be the name of an environment variable")
        pools[name] = PoolConfig(
            name=name,
            stage=stage,
            engine=engine,
            addresses=tuple(
                check_address(_address(a, base, where), f"{where} addresses") for a in addresses
            ),
            options=_expand(dict(expect_table(spec.get("options", {}), f"{where} options")), home),
            local=local,
            security=_pool_security(spec, workers, env or {}, where),
        )
    return pools


_PIPELINE_KEYS = {"description", "notice", "turn"}


def _stage(pipeline: str, name: str, spec: Any, pools: Mapping[str, PoolConfig]) -> StageConfig:
    """One ``[pipelines.P.NAME]`` table: ``pool``, optional ``kind`` and ``inputs``,
    the rest being the stage's parameters."""
    where = f"[pipelines.{pipeline}.{name}]"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a table with a pool, not {spec!r}")
    params = dict(spec)
    pool, kind, inputs = (
        params.pop("pool", None),
        params.pop("kind", ""),
        params.pop("inputs", None),
    )
    if pool is None:
        raise ConfigError(f"{where}: missing 'pool'")
    if not isinstance(pool, str) or not isinstance(kind, str):
        raise ConfigError(f"{where}: pool and kind must be strings")
    if pool not in pools:
        raise ConfigError(f"{where}: unknown pool {pool!r}")
    if kind and kind not in KINDS:
        raise ConfigError(f"{where}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    pool_stage = pools[pool].stage
    kind = kind or (name if name in KINDS else pool_stage)
    pipeline_graph.check_pool(pipeline, name, kind, pool, pool_stage)
    params = check_params(kind, params, where)
    if kind == "analyse":
        params["on"] = pipeline_graph.analyse_on(params, pool_stage)
    if inputs is not None and (
        not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs)
    ):
        raise ConfigError(f"{where}: inputs must be a list of stage names")
    return StageConfig(
        pool=pool, params=params, kind=kind, inputs=None if inputs is None else tuple(inputs)
    )


def _pipeline_turn(name: str, spec: Any, turn: TurnConfig) -> TurnConfig | None:
    """``[pipelines.NAME.turn]``: its keys over the global [turn] (None if absent)."""
    if spec is None:
        return None
    where = f"[pipelines.{name}.turn]"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a table of [turn] settings, not {spec!r}")
    values = {k: coerce(TurnConfig, k, v, where) for k, v in spec.items()}
    try:
        return dataclasses.replace(turn, **values)
    except ConfigError as exc:  # "[turn] KEY ...": named by this table instead
        message = str(exc).removeprefix("[turn] ")
        raise ConfigError(f"{where} {message}") from None


def load_pipelines(
    raw: Mapping[str, Any], pools: Mapping[str, PoolConfig], turn: TurnConfig | None = None
) -> dict[str, PipelineConfig]:
    pipelines = {}
    for name, spec in expect_table(raw, "[pipelines]", "a table of pipelines").items():
        where = f"[pipelines.{name}]"
        expect_table(spec, where, "a table of stages (stt = { pool = ... }, ...)")
        for key in ("description", "notice"):
            if not isinstance(spec.get(key, ""), str):
                raise ConfigError(f"{where}: {key} must be a string")
        stages = {
            key: _stage(name, key, value, pools)
            for key, value in spec.items()
            if key not in _PIPELINE_KEYS
        }
        for missing in [k for k in ("stt", "llm", "tts") if k in spec and not spec[k]]:
            raise ConfigError(f"[pipelines.{name}.{missing}]: missing 'pool'")
        pipelines[name] = PipelineConfig(
            name=name,
            description=spec.get("description", ""),
            notice=spec.get("notice", ""),
            stages=stages,
            turn=_pipeline_turn(name, spec.get("turn"), turn or TurnConfig()),
        )
    return pipelines
