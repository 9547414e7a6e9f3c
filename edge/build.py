"""Build the agent's parts from an :class:`EdgeConfig` (the CLI's and the dry run's
one place for it)."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from edge.agent import EdgeAgent
from edge.camera import FrameSource, open_camera
from edge.mic import AudioSource, FileMicrophone, Microphone
from edge.speaker import AnswerPlayer, NullSpeaker, Speaker
from edge.tls import secure_dial
from parley.config import EdgeConfig
from protos import edge_pb2


def audio_source(config: EdgeConfig) -> AudioSource:
    if config.mic_file:
        return FileMicrophone(
            config.mic_file,
            rate=config.sample_rate,
            chunk_ms=config.chunk_ms,
            block_ms=config.mic_block_ms,
        )
    return Microphone(
        config.mic_device,
        rate=config.sample_rate,
        chunk_ms=config.chunk_ms,
        block_ms=config.mic_block_ms,
        native_rate=config.mic_rate,
        channels=config.mic_channels,
    )


def speaker(config: EdgeConfig) -> AnswerPlayer:
    if config.speaker_device.strip().lower() == "none":
        return NullSpeaker()
    return Speaker(config.speaker_device, rate=config.speaker_rate, prebuffer_ms=config.jitter_ms)


def camera(config: EdgeConfig) -> FrameSource | None:
    return open_camera(
        config.camera,
        folder=config.camera_folder,
        width=config.camera_width,
        height=config.camera_height,
        quality=config.camera_quality,
    )


def dialer(config: EdgeConfig) -> Callable[[], grpc.aio.Channel]:
    """A fresh channel to the server per connection attempt (TLS as configured)."""

    def dial() -> grpc.aio.Channel:
        return secure_dial(
            config.server,
            ca=config.tls_ca,
            cert=config.tls_cert,
            key=config.tls_key,
            server_name=config.tls_server_name,
            tls=config.tls or None,
        )

    return dial


def agent(
    config: EdgeConfig, observer: Callable[[edge_pb2.ServerEvent], None] | None = None
) -> EdgeAgent:
    return EdgeAgent(
        config,
        source=audio_source(config),
        speaker=speaker(config),
        camera=camera(config),
        dial=dialer(config),
        observer=observer,
    )


EDGE_SERVICE = edge_pb2.DESCRIPTOR.services_by_name["Edge"].full_name
