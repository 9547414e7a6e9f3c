from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioFormat(_message.Message):
    __slots__ = ("sample_rate", "channels", "encoding")
    class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ENCODING_UNSPECIFIED: _ClassVar[AudioFormat.Encoding]
        PCM16LE: _ClassVar[AudioFormat.Encoding]
    ENCODING_UNSPECIFIED: AudioFormat.Encoding
    PCM16LE: AudioFormat.Encoding
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    sample_rate: int
    channels: int
    encoding: AudioFormat.Encoding
    def __init__(self, sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., encoding: _Optional[_Union[AudioFormat.Encoding, str]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("device_id", "token", "pipeline", "audio_format", "capabilities", "agent_version", "audio_epoch")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FORMAT_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    AUDIO_EPOCH_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    token: str
    pipeline: str
    audio_format: AudioFormat
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    agent_version: str
    audio_epoch: str
    def __init__(self, device_id: _Optional[str] = ..., token: _Optional[str] = ..., pipeline: _Optional[str] = ..., audio_format: _Optional[_Union[AudioFormat, _Mapping]] = ..., capabilities: _Optional[_Iterable[str]] = ..., agent_version: _Optional[str] = ..., audio_epoch: _Optional[str] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("seq", "pcm", "capture_time")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    seq: int
    pcm: bytes
    capture_time: float
    def __init__(self, seq: _Optional[int] = ..., pcm: _Optional[bytes] = ..., capture_time: _Optional[float] = ...) -> None: ...

class VideoFrame(_message.Message):
    __slots__ = ("seq", "jpeg", "capture_time", "width", "height")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    JPEG_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    jpeg: bytes
    capture_time: float
    width: int
    height: int
    def __init__(self, seq: _Optional[int] = ..., jpeg: _Optional[bytes] = ..., capture_time: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class PlaybackEvent(_message.Message):
    __slots__ = ("turn_id", "kind", "edge_time")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[PlaybackEvent.Kind]
        STARTED: _ClassVar[PlaybackEvent.Kind]
        FINISHED: _ClassVar[PlaybackEvent.Kind]
        INTERRUPTED: _ClassVar[PlaybackEvent.Kind]
    KIND_UNSPECIFIED: PlaybackEvent.Kind
    STARTED: PlaybackEvent.Kind
    FINISHED: PlaybackEvent.Kind
    INTERRUPTED: PlaybackEvent.Kind
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EDGE_TIME_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    kind: PlaybackEvent.Kind
    edge_time: float
    def __init__(self, turn_id: _Optional[str] = ..., kind: _Optional[_Union[PlaybackEvent.Kind, str]] = ..., edge_time: _Optional[float] = ...) -> None: ...

class Spans(_message.Message):
    __slots__ = ("otlp",)
    OTLP_FIELD_NUMBER: _ClassVar[int]
    otlp: bytes
    def __init__(self, otlp: _Optional[bytes] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("edge_time",)
    EDGE_TIME_FIELD_NUMBER: _ClassVar[int]
    edge_time: float
    def __init__(self, edge_time: _Optional[float] = ...) -> None: ...

class EdgeEvent(_message.Message):
    __slots__ = ("hello", "audio", "frame", "playback", "spans", "ping")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    PLAYBACK_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    audio: AudioChunk
    frame: VideoFrame
    playback: PlaybackEvent
    spans: Spans
    ping: Ping
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., frame: _Optional[_Union[VideoFrame, _Mapping]] = ..., playback: _Optional[_Union[PlaybackEvent, _Mapping]] = ..., spans: _Optional[_Union[Spans, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("session_id", "conversation_id", "pipeline", "input_format", "server_version", "next_audio_seq")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    INPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEXT_AUDIO_SEQ_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    conversation_id: str
    pipeline: str
    input_format: AudioFormat
    server_version: str
    next_audio_seq: int
    def __init__(self, session_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., pipeline: _Optional[str] = ..., input_format: _Optional[_Union[AudioFormat, _Mapping]] = ..., server_version: _Optional[str] = ..., next_audio_seq: _Optional[int] = ...) -> None: ...

class AudioAck(_message.Message):
    __slots__ = ("next_seq",)
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    next_seq: int
    def __init__(self, next_seq: _Optional[int] = ...) -> None: ...

class TurnEvent(_message.Message):
    __slots__ = ("turn_id", "kind", "edge_time", "traceparent", "latency_ms", "interrupted", "stored")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[TurnEvent.Kind]
        SPEECH_STARTED: _ClassVar[TurnEvent.Kind]
        SPEECH_ENDED: _ClassVar[TurnEvent.Kind]
        FINISHED: _ClassVar[TurnEvent.Kind]
        NO_SPEECH: _ClassVar[TurnEvent.Kind]
    KIND_UNSPECIFIED: TurnEvent.Kind
    SPEECH_STARTED: TurnEvent.Kind
    SPEECH_ENDED: TurnEvent.Kind
    FINISHED: TurnEvent.Kind
    NO_SPEECH: TurnEvent.Kind
    class LatencyMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EDGE_TIME_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    kind: TurnEvent.Kind
    edge_time: float
    traceparent: str
    latency_ms: _containers.ScalarMap[str, float]
    interrupted: bool
    stored: bool
    def __init__(self, turn_id: _Optional[str] = ..., kind: _Optional[_Union[TurnEvent.Kind, str]] = ..., edge_time: _Optional[float] = ..., traceparent: _Optional[str] = ..., latency_ms: _Optional[_Mapping[str, float]] = ..., interrupted: _Optional[bool] = ..., stored: _Optional[bool] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("turn_id", "text", "final")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    text: str
    final: bool
    def __init__(self, turn_id: _Optional[str] = ..., text: _Optional[str] = ..., final: _Optional[bool] = ...) -> None: ...

class ResponseText(_message.Message):
    __slots__ = ("turn_id", "delta", "final")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    delta: str
    final: bool
    def __init__(self, turn_id: _Optional[str] = ..., delta: _Optional[str] = ..., final: _Optional[bool] = ...) -> None: ...

class AudioOut(_message.Message):
    __slots__ = ("turn_id", "seq", "pcm", "format", "last", "resume")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    seq: int
    pcm: bytes
    format: AudioFormat
    last: bool
    resume: bool
    def __init__(self, turn_id: _Optional[str] = ..., seq: _Optional[int] = ..., pcm: _Optional[bytes] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ..., last: _Optional[bool] = ..., resume: _Optional[bool] = ...) -> None: ...

class StopPlayback(_message.Message):
    __slots__ = ("turn_id", "reason")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    reason: str
    def __init__(self, turn_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "turn_id", "stage", "fatal", "limit")
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CODE_UNSPECIFIED: _ClassVar[Error.Code]
        BAD_REQUEST: _ClassVar[Error.Code]
        UNAUTHENTICATED: _ClassVar[Error.Code]
        UNKNOWN_PIPELINE: _ClassVar[Error.Code]
        BAD_AUDIO_FORMAT: _ClassVar[Error.Code]
        STAGE_FAILED: _ClassVar[Error.Code]
        STAGE_UNAVAILABLE: _ClassVar[Error.Code]
        INTERNAL: _ClassVar[Error.Code]
        STORE_FAILED: _ClassVar[Error.Code]
        LIMIT_EXCEEDED: _ClassVar[Error.Code]
    CODE_UNSPECIFIED: Error.Code
    BAD_REQUEST: Error.Code
    UNAUTHENTICATED: Error.Code
    UNKNOWN_PIPELINE: Error.Code
    BAD_AUDIO_FORMAT: Error.Code
    STAGE_FAILED: Error.Code
    STAGE_UNAVAILABLE: Error.Code
    INTERNAL: Error.Code
    STORE_FAILED: Error.Code
    LIMIT_EXCEEDED: Error.Code
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    FATAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    code: Error.Code
    message: str
    turn_id: str
    stage: str
    fatal: bool
    limit: str
    def __init__(self, code: _Optional[_Union[Error.Code, str]] = ..., message: _Optional[str] = ..., turn_id: _Optional[str] = ..., stage: _Optional[str] = ..., fatal: _Optional[bool] = ..., limit: _Optional[str] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("edge_time",)
    EDGE_TIME_FIELD_NUMBER: _ClassVar[int]
    edge_time: float
    def __init__(self, edge_time: _Optional[float] = ...) -> None: ...

class ServerEvent(_message.Message):
    __slots__ = ("welcome", "turn", "transcript", "response", "audio", "stop", "error", "pong", "audio_ack")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_ACK_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    turn: TurnEvent
    transcript: Transcript
    response: ResponseText
    audio: AudioOut
    stop: StopPlayback
    error: Error
    pong: Pong
    audio_ack: AudioAck
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., turn: _Optional[_Union[TurnEvent, _Mapping]] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., response: _Optional[_Union[ResponseText, _Mapping]] = ..., audio: _Optional[_Union[AudioOut, _Mapping]] = ..., stop: _Optional[_Union[StopPlayback, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., audio_ack: _Optional[_Union[AudioAck, _Mapping]] = ...) -> None: ...
