"""One typed, frozen configuration tree for every role.

Sources, later ones winning:
1. the defaults in these dataclasses and the bundled ``parley/defaults.toml``
   (worker pools and pipelines);
2. a user TOML file: ``--config PATH``, else ``$PARLEY_CONFIG``, else ``parley.toml`` in
   the working directory if present (same shape as defaults.toml; tables merge);
3. environment variables ``PARLEY_<SECTION>_<KEY>`` for scalar settings, e.g.
   ``PARLEY_SERVER_PORT=6000`` or ``PARLEY_STORE_DATABASE_URL=postgresql://...``.

Only entry points (the CLI) call :func:`load_config`; everything else receives the
objects it needs. Secrets (tokens, API keys) come from the environment, never files
in the repository.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley import pipeline_graph
from parley.config_annotation import AnnotationConfig, parse_annotation
from parley.config_values import (
    EXPECTED,
    check_address,
    check_host,
    check_ranges,
    check_type,
    positive,
    ranged,
)
from parley.errors import ConfigError
from parley.kinds import KINDS
from parley.stage_params import check_params

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
# Ports follow one base port unless set one by one: the server is base + 1, the admin
# base + 30, and the bundled pools' workers base + 11.. (their addresses say
# "{base+11}"). See PORT_OFFSETS and docs/configuration.md.
BASE_PORT = 50050
PORT_OFFSETS = {"server": 1, "admin": 30}
_BASE_TEMPLATE = re.compile(r"\{base\+(\d+)\}")


def _home() -> Path:
    return Path(os.environ.get("PARLEY_HOME", "~/.local/share/parley")).expanduser()


@dataclass(frozen=True)
class VadConfig:
    """Endpointing: when speech starts and when a turn closes."""

    # speech probability that starts (or continues) speech, 0..1
    threshold: float = ranged(0.5, low=0.0, high=1.0)
    # below this, silence counts towards closing the turn; 0..threshold
    neg_threshold: float = ranged(0.35, low=0.0, high=1.0)
    min_speech_ms: int = ranged(250, low=0)  # shorter bursts are not turns (coughs, clicks)
    min_silence_ms: int = ranged(500, low=0)  # silence that closes a turn; the latency knob
    # a turn is closed after this long regardless (seconds; longer than min_speech_ms)
    max_turn_s: float = positive(30.0)
    # audio kept before the detected start (VAD onset lags up to ~140 ms)
    pre_roll_ms: int = ranged(200, low=0)
    post_roll_ms: int = ranged(60, low=0)  # audio kept after the last speech window
    model_path: str = ""  # empty: silero_vad.onnx from the silero-vad package
    # The server scores all sessions' windows together in one model call at most once
    # per batch_interval_ms (ms, 0 or more), stretched up to batch_max_interval_ms
    # under load so each call gathers more windows (a window waits at most the
    # interval plus one batch), at most batch_max (1 or more) windows per call.
    batch_interval_ms: float = ranged(8.0, low=0.0)
    batch_max_interval_ms: float = ranged(20.0, low=0.0)
    batch_max: int = ranged(256, low=1)

    def __post_init__(self) -> None:
        check_ranges(self, "vad")
        if self.batch_max_interval_ms < self.batch_interval_ms:
            raise ConfigError(
                f"[vad] batch_max_interval_ms = {self.batch_max_interval_ms} must not be "
                f"below batch_interval_ms = {self.batch_interval_ms}"
            )
        if self.neg_threshold > self.threshold:
            raise ConfigError(
                f"[vad] neg_threshold = {self.neg_threshold} must not be above "
                f"threshold = {self.threshold}"
            )
        if self.max_turn_s * 1000 <= self.min_speech_ms:
            raise ConfigError(
                f"[vad] max_turn_s = {self.max_turn_s} must be longer than "
                f"min_speech_ms = {self.min_speech_ms} ms"
            )


TURN_STRATEGIES = ("silence", "smart_turn")
SMART_TURN_FILE = "smart-turn-v3.2-cpu.onnx"  # `parley models pull` puts it in the models dir


@dataclass(frozen=True)
class TurnConfig:
    """When a turn is over (endpointing), and whether the answer starts before that.

    ``silence``: the turn ends after ``[vad] min_silence_ms`` of silence. ``smart_turn``:
    after ``check_after_ms`` of silence the end-of-turn model is asked whether the
    utterance is complete (and asked again every ``recheck_ms`` while the silence grows);
    the turn ends when it says so (probability >= ``threshold``) or after
    ``max_silence_ms`` anyway. With ``preemptive`` the answer is prepared from the first
    check point on (in both strategies) and sent only once the turn is confirmed."""

    strategy: str = "silence"
    check_after_ms: int = positive(150)  # silence before the first check point
    recheck_ms: int = positive(100)  # later check points as the silence grows
    threshold: float = ranged(0.5, low=0.0, high=1.0)  # end-of-turn probability that ends it
    max_silence_ms: int = positive(1500)  # smart_turn: silence that ends the turn anyway
    preemptive: bool = False  # start the answer at the first check point
    model_path: str = ""  # empty: smart-turn-v3.2-cpu.onnx in the models directory

    def __post_init__(self) -> None:
        if self.strategy not in TURN_STRATEGIES:
            known = ", ".join(TURN_STRATEGIES)
            raise ConfigError(f"[turn] strategy must be one of {known}, not {self.strategy!r}")
        check_ranges(self, "turn")
        if self.max_silence_ms < self.check_after_ms:
            raise ConfigError(
                f"[turn] max_silence_ms = {self.max_silence_ms} must be at least "
                f"check_after_ms = {self.check_after_ms}"
            )


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    # default: base_port + 1; 0: a free port
    port: int = ranged(BASE_PORT + PORT_OFFSETS["server"], low=0, high=65535)
    default_pipeline: str = "tiny"
    # DEPRECATED: one secret shared by every device (PARLEY_SERVER_TOKEN). It still
    # admits any device that sends it; give each device its own token instead
    # (`parley device add NAME`, docs/security.md).
    token: str = field(default="", repr=False)
    # Let the server listen beyond loopback with neither device tokens nor mutual TLS
    # (`parley server --insecure` does the same). Default false: it refuses to start.
    insecure: bool = False
    # Ask every edge for a token even on loopback and with mutual TLS (e.g. behind a
    # proxy on this machine). Default false: see docs/security.md for when one is needed.
    require_token: bool = False
    # Deadlines in seconds (more than 0).
    stt_timeout_s: float = positive(30.0)  # a whole transcription
    llm_timeout_s: float = positive(120.0)  # a whole generation
    tts_timeout_s: float = positive(120.0)  # a whole synthesis call
    stage_timeout_s: float = positive(30.0)  # analyse, retrieve, caption
    history_turns: int = ranged(8, low=0)  # default conversation history sent to the LLM
    # Server processes sharing the Converse port (SO_REUSEPORT), each with its own VAD,
    # store connection and span export; 0: one per CPU core. `--processes` wins.
    processes: int = ranged(0, low=0)
    # TLS for the Converse port: certificate and key (PEM); a client CA also requires
    # every edge to present a certificate it signed (mutual TLS).
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""

    def __post_init__(self) -> None:
        check_host(self.host, "[server] host")
        check_ranges(self, "server")


@dataclass(frozen=True)
class StoreConfig:
    database_url: str = ""  # empty: sqlite:///<home>/parley.db
    data_dir: str = ""  # empty: <home>/data; turn media is written below it
    # Seconds a write keeps being retried while the database is locked by another
    # process (then the turn is reported as not stored); 0 tries once.
    write_retry_s: float = ranged(10.0, low=0.0)

    def __post_init__(self) -> None:
        check_ranges(self, "store")


@dataclass(frozen=True)
class LimitsConfig:
    """What one Converse stream may send (the server enforces these; a message that
    breaks one is dropped with an Error LIMIT_EXCEEDED naming it, or the stream ends
    with RESOURCE_EXHAUSTED for the gRPC message size)."""

    # Each must be more than 0.
    max_message_bytes: int = positive(4 * 1024 * 1024)  # one EdgeEvent on the wire (gRPC)
    max_audio_chunk_ms: int = positive(5000)  # audio in one AudioChunk, at the Hello's format
    max_frame_bytes: int = positive(2 * 1024 * 1024)  # one camera frame's JPEG
    max_frames_per_s: float = positive(5.0)  # camera frames per second (2 s bursts allowed)
    max_frames_per_turn: int = positive(8)  # frames kept and stored with a turn (the latest)
    max_spans_per_message: int = positive(256)  # spans in one Spans message
    max_spans_per_turn: int = positive(1024)  # edge spans kept per turn (trace)
    max_capabilities: int = positive(16)  # entries in Hello.capabilities (each <= 64 chars)
    max_token_chars: int = positive(4096)  # Hello.token
    max_outbox_events: int = positive(4096)  # events queued for an edge that does not read

    def __post_init__(self) -> None:
        check_ranges(self, "limits")


@dataclass(frozen=True)
class AdminConfig:
    """The annotation and benchmark site (`parley admin serve`, started by `parley up`)."""

    host: str = "127.0.0.1"
    port: int = ranged(BASE_PORT + PORT_OFFSETS["admin"], low=1, high=65535)  # base_port + 30
    secret_key: str = ""  # PARLEY_ADMIN_SECRET_KEY; empty: a random key kept in <home>
    jaeger_url: str = ""  # e.g. http://jaeger:16686: turn pages link to the trace there
    cookie_secure: bool = False  # session cookie over HTTPS only (behind a TLS proxy)
    # Reverse proxies in front of the site whose X-Forwarded-For is believed (0: none).
    # Behind one, set 1: else every login seems to come from the proxy and shares its
    # failed-login throttle.
    trusted_proxies: int = ranged(0, low=0)
    password: str = ""  # PARLEY_ADMIN_PASSWORD: for `parley admin create-user`, never a file

    def __post_init__(self) -> None:
        check_host(self.host, "[admin] host")
        check_ranges(self, "admin")


@dataclass(frozen=True)
class EdgeConfig:
    server: str = f"127.0.0.1:{BASE_PORT + PORT_OFFSETS['server']}"  # default: the [server] port
    device_id: str = field(default_factory=socket.gethostname)
    token: str = ""  # PARLEY_EDGE_TOKEN
    pipeline: str = ""  # empty: the server's default
    sample_rate: int = positive(16000)  # Hz
    # Audio per message: 40 ms, as the microphone hands it over (mic_block_ms), costs
    # no delay there and half the server CPU of 20 ms messages.
    chunk_ms: int = positive(40)
    # Microphone: a device index or part of its name ("" = the system default), its
    # native rate and channels (0 = the device's default rate; mono if it allows),
    # or a WAV file played as the microphone (machines without a sound card).
    mic_device: str = ""
    mic_rate: int = ranged(0, low=0)
    mic_channels: int = ranged(0, low=0)
    mic_block_ms: int = positive(40)  # the device's callback size (CPU vs. at most this delay)
    mic_file: str = ""
    # Speaker: device as above, "none" for no speaker; rate 0 = the device's default.
    speaker_device: str = ""
    speaker_rate: int = ranged(0, low=0)
    jitter_ms: int = ranged(60, low=0)  # answer audio buffered before a turn starts playing
    # Echo: half-duplex (default) sends silence instead of the microphone while an
    # answer plays and for echo_tail_ms after; full-duplex needs echo cancellation.
    full_duplex: bool = False
    echo_tail_ms: int = ranged(300, low=0)
    # Camera: auto | picamera2 | folder | none.
    camera: str = "auto"
    camera_folder: str = ""
    camera_fps: float = ranged(1.0, low=0.0)  # 0: no frames
    camera_width: int = positive(640)
    camera_height: int = positive(480)
    camera_quality: int = ranged(80, low=1, high=100)  # JPEG quality
    # Link: audio kept while disconnected, the reconnect backoff's cap (seconds).
    buffer_s: float = ranged(30.0, low=0.0)
    reconnect_max_s: float = positive(5.0)
    # Audio sent but not yet acknowledged by the server, kept to resend after a
    # reconnect; it must outlast the server's longest turn (vad.max_turn_s).
    unacked_s: float = positive(45.0)
    # TLS: a CA file turns it on; a client certificate and key add mutual TLS.
    tls: bool = False
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_server_name: str = ""  # name to check in the server's certificate

    def __post_init__(self) -> None:
        check_address(self.server, "[edge] server")
        check_ranges(self, "edge")


@dataclass(frozen=True)
class WorkersConfig:
    """How stage workers are protected and dialled: `[workers]` holds the defaults for
    every pool; a pool's table may override any key (and name its own token variable
    with ``token_env``). See docs/security.md."""

    # The token every worker call carries (PARLEY_WORKERS_TOKEN; the same value on the
    # server and the workers). Empty: no token.
    token: str = field(default="", repr=False)
    # Let a worker listen beyond loopback with neither a token nor mutual TLS
    # (`parley worker --insecure` does the same). Default false: it refuses to start.
    insecure: bool = False
    # Worker side: its certificate and key (PEM) turn TLS on; a client CA also requires
    # the caller (the server) to present a certificate it signed (mutual TLS).
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # Server side, dialling the workers: a CA (PEM) to trust turns TLS on; a client
    # certificate and key for mutual TLS; the name to check in the worker's certificate.
    tls_ca: str = ""
    tls_client_cert: str = ""
    tls_client_key: str = ""
    tls_server_name: str = ""

    @property
    def dials_tls(self) -> bool:
        return bool(self.tls_ca or self.tls_client_cert or self.tls_client_key)


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


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _coerce(cls: type, key: str, value: Any, where: str, *, from_env: bool = False) -> Any:
    """Check one scalar setting against the dataclass field's type (int/float/str/bool):
    a TOML value must have that type (see config_values.check_type); an environment
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


def _table(value: Any, where: str, what: str = "a table") -> Mapping[str, Any]:
    """``value`` if it is a TOML table, else ConfigError naming ``where``."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be {what}, not {value!r}")
    return value


def _section(cls: type, raw: Any, env: Mapping[str, str], name: str) -> Any:
    values = {k: _coerce(cls, k, v, f"[{name}]") for k, v in _table(raw, f"[{name}]").items()}
    prefix = f"PARLEY_{name.upper()}_"
    for var, value in env.items():
        if var.startswith(prefix):
            key = var[len(prefix) :].lower()
            values[key] = _coerce(cls, key, value, f"${var}", from_env=True)
    return cls(**values)


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
    values = {
        k: _coerce(WorkersConfig, k, spec[k], where) for k in _POOL_SECURITY_KEYS if k in spec
    }
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


def _pools(
    raw: Mapping[str, Any],
    home: Path,
    base: int,
    workers: WorkersConfig | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, PoolConfig]:
    workers = workers or WorkersConfig()
    pools = {}
    for name, spec in _table(raw, "[pools]", "a table of pools").items():
        where = f"[pools.{name}]"
        _table(spec, where, "a table (stage, engine, addresses, ...)")
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
            options=_expand(dict(_table(spec.get("options", {}), f"{where} options")), home),
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
    values = {k: _coerce(TurnConfig, k, v, where) for k, v in spec.items()}
    try:
        return dataclasses.replace(turn, **values)
    except ConfigError as exc:  # "[turn] KEY ...": named by this table instead
        message = str(exc).removeprefix("[turn] ")
        raise ConfigError(f"{where} {message}") from None


def _pipelines(
    raw: Mapping[str, Any], pools: Mapping[str, PoolConfig], turn: TurnConfig | None = None
) -> dict[str, PipelineConfig]:
    pipelines = {}
    for name, spec in _table(raw, "[pipelines]", "a table of pipelines").items():
        where = f"[pipelines.{name}]"
        _table(spec, where, "a table of stages (stt = { pool = ... }, ...)")
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


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _base_port(raw: Mapping[str, Any], env: Mapping[str, str]) -> int:
    value: Any = env.get("PARLEY_BASE_PORT", raw.get("base_port", BASE_PORT))
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
    pools = _pools(raw.get("pools", {}), home, base, sections["workers"], env)
    pipelines = _pipelines(raw.get("pipelines", {}), pools, sections["turn"])
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
