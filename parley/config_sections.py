"""The service sections of the config: ``[server]``, ``[vad]``, ``[turn]``, ``[store]``,
``[limits]``, ``[admin]``, ``[edge]`` and ``[workers]``, one frozen dataclass each.

Each setting declares its type and, for numbers, its range (parley/config_values.py);
``__post_init__`` checks them. parley/config.py loads these from TOML and the
environment (import them from there, or from here).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from parley.config_values import check_address, check_host, check_ranges, positive, ranged
from parley.errors import ConfigError

# Ports follow one base port unless set one by one: the server is base + 1, the admin
# base + 30, and the bundled pools' workers base + 11.. (their addresses say
# "{base+11}"). See PORT_OFFSETS and docs/configuration.md.
BASE_PORT = 50050
PORT_OFFSETS = {"server": 1, "admin": 30}


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
    # per batch_interval_ms (ms, 0 to 100), stretched up to batch_max_interval_ms (0 to
    # 100; below batch_interval_ms: no stretching) under load so each call gathers more
    # windows (a window waits at most the interval plus one batch), at most batch_max
    # (1 or more) windows per call. A round takes at most 8 windows (256 ms) of a
    # stream, so much longer intervals could never keep up.
    batch_interval_ms: float = ranged(8.0, low=0.0, high=100.0)
    batch_max_interval_ms: float = ranged(20.0, low=0.0, high=100.0)
    batch_max: int = ranged(256, low=1)

    def __post_init__(self) -> None:
        check_ranges(self, "vad")
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
# What to do about an end-of-turn model that is missing or not that model (the server,
# `parley doctor` and `parley bench endpointing` say the same).
TURN_MODEL_FIX = (
    f"run `parley models pull --only turn` (or set [turn] model_path to a copy of "
    f"{SMART_TURN_FILE})"
)


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
    # store connection and span export; 0: one per CPU core (at most 64). `--processes`
    # wins.
    processes: int = ranged(0, low=0, high=64)
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
    # Audio per message (ms). 40 costs the server half the CPU of 20 per stream and,
    # with mic_block_ms = 40, no delay (a block's two 20 ms chunks leave together);
    # with 20 ms blocks it delays the end of a turn by ~20-40 ms (docs/configuration.md).
    chunk_ms: int = positive(20)
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
