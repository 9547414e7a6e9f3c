from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EngineInfo(_message.Message):
    __slots__ = ("stage", "engine", "model", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    engine: str
    model: str
    details: _containers.ScalarMap[str, str]
    def __init__(self, stage: _Optional[str] = ..., engine: _Optional[str] = ..., model: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SttConfig(_message.Message):
    __slots__ = ("sample_rate", "language", "prompt")
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    sample_rate: int
    language: str
    prompt: str
    def __init__(self, sample_rate: _Optional[int] = ..., language: _Optional[str] = ..., prompt: _Optional[str] = ...) -> None: ...

class SttRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: SttConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[SttConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class SttResponse(_message.Message):
    __slots__ = ("text", "final", "language", "audio_seconds", "model_seconds")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    final: bool
    language: str
    audio_seconds: float
    model_seconds: float
    def __init__(self, text: _Optional[str] = ..., final: _Optional[bool] = ..., language: _Optional[str] = ..., audio_seconds: _Optional[float] = ..., model_seconds: _Optional[float] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content", "images")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ..., images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class LlmRequest(_message.Message):
    __slots__ = ("messages", "temperature", "max_tokens", "options")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    temperature: float
    max_tokens: int
    options: _containers.ScalarMap[str, str]
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ..., options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LlmDelta(_message.Message):
    __slots__ = ("text", "final", "tokens", "model_seconds", "finish_reason")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODEL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    text: str
    final: bool
    tokens: int
    model_seconds: float
    finish_reason: str
    def __init__(self, text: _Optional[str] = ..., final: _Optional[bool] = ..., tokens: _Optional[int] = ..., model_seconds: _Optional[float] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class TtsConfig(_message.Message):
    __slots__ = ("voice", "speed", "options")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VOICE_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    voice: str
    speed: float
    options: _containers.ScalarMap[str, str]
    def __init__(self, voice: _Optional[str] = ..., speed: _Optional[float] = ..., options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TtsRequest(_message.Message):
    __slots__ = ("config", "text")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    config: TtsConfig
    text: str
    def __init__(self, config: _Optional[_Union[TtsConfig, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class TtsAudio(_message.Message):
    __slots__ = ("pcm", "sample_rate", "sentence", "sentence_end", "model_seconds")
    PCM_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_END_FIELD_NUMBER: _ClassVar[int]
    MODEL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    pcm: bytes
    sample_rate: int
    sentence: int
    sentence_end: bool
    model_seconds: float
    def __init__(self, pcm: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., sentence: _Optional[int] = ..., sentence_end: _Optional[bool] = ..., model_seconds: _Optional[float] = ...) -> None: ...

class SpeechLlmConfig(_message.Message):
    __slots__ = ("messages", "temperature", "max_tokens", "options", "sample_rate", "audio_out", "voice")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OUT_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    temperature: float
    max_tokens: int
    options: _containers.ScalarMap[str, str]
    sample_rate: int
    audio_out: bool
    voice: str
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ..., options: _Optional[_Mapping[str, str]] = ..., sample_rate: _Optional[int] = ..., audio_out: _Optional[bool] = ..., voice: _Optional[str] = ...) -> None: ...

class SpeechLlmRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: SpeechLlmConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[SpeechLlmConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class SpeechLlmDelta(_message.Message):
    __slots__ = ("text", "pcm", "sample_rate", "final", "finish_reason", "model_seconds", "heard")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HEARD_FIELD_NUMBER: _ClassVar[int]
    text: str
    pcm: bytes
    sample_rate: int
    final: bool
    finish_reason: str
    model_seconds: float
    heard: str
    def __init__(self, text: _Optional[str] = ..., pcm: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., final: _Optional[bool] = ..., finish_reason: _Optional[str] = ..., model_seconds: _Optional[float] = ..., heard: _Optional[str] = ...) -> None: ...

class AnalyseRequest(_message.Message):
    __slots__ = ("audio", "text", "image", "sample_rate", "options")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    text: str
    image: bytes
    sample_rate: int
    options: _containers.ScalarMap[str, str]
    def __init__(self, audio: _Optional[bytes] = ..., text: _Optional[str] = ..., image: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class AnalyseResult(_message.Message):
    __slots__ = ("labels", "model_seconds")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MODEL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    model_seconds: float
    def __init__(self, labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., model_seconds: _Optional[float] = ...) -> None: ...

class RetrieveRequest(_message.Message):
    __slots__ = ("query", "top_k", "options")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    query: str
    top_k: int
    options: _containers.ScalarMap[str, str]
    def __init__(self, query: _Optional[str] = ..., top_k: _Optional[int] = ..., options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Passage(_message.Message):
    __slots__ = ("text", "source", "chunk", "score")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    text: str
    source: str
    chunk: int
    score: float
    def __init__(self, text: _Optional[str] = ..., source: _Optional[str] = ..., chunk: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class RetrieveResult(_message.Message):
    __slots__ = ("passages", "model_seconds")
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    MODEL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    passages: _containers.RepeatedCompositeFieldContainer[Passage]
    model_seconds: float
    def __init__(self, passages: _Optional[_Iterable[_Union[Passage, _Mapping]]] = ..., model_seconds: _Optional[float] = ...) -> None: ...

class CaptionRequest(_message.Message):
    __slots__ = ("image", "prompt", "max_tokens", "options")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    prompt: str
    max_tokens: int
    options: _containers.ScalarMap[str, str]
    def __init__(self, image: _Optional[bytes] = ..., prompt: _Optional[str] = ..., max_tokens: _Optional[int] = ..., options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CaptionResult(_message.Message):
    __slots__ = ("text", "model_seconds")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    model_seconds: float
    def __init__(self, text: _Optional[str] = ..., model_seconds: _Optional[float] = ...) -> None: ...
