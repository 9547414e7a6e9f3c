"""The options of `parley edge` (the agent, --dry-run, --list-devices, headless
--wav/--out); parley/commands/edge.py turns them into an EdgeConfig."""

from __future__ import annotations

import argparse

from parley.arguments import (
    CommandParser,
    frame_size,
    non_negative_float,
    output_file,
    positive_float,
    server_address,
    sound_file,
)


def edge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server",
        type=server_address,
        help="HOST:PORT of the server (default: [edge] server, 127.0.0.1:<server port>)",
    )
    p.add_argument("--pipeline", help="pipeline name (default: the server's default pipeline)")
    p.add_argument(
        "--device-id", help="device id (default: the hostname; its token: $PARLEY_EDGE_TOKEN)"
    )
    p.add_argument("--list-devices", action="store_true", help="list sound devices and exit")
    p.add_argument(
        "--dry-run", action="store_true", help="check the devices and the server, then exit"
    )
    audio = p.add_argument_group("audio")
    audio.add_argument(
        "--mic",
        metavar="DEVICE",
        help="input device: index or part of its name (default: the system's)",
    )
    audio.add_argument(
        "--mic-file",
        type=sound_file,
        metavar="WAV",
        help="play a PCM16 WAV in a loop as the mic (default: none)",
    )
    audio.add_argument(
        "--speaker", metavar="DEVICE", help="output device, or 'none' (default: the system's)"
    )
    audio.add_argument(
        "--full-duplex",
        action="store_true",
        help="keep the mic live while answers play (needs echo cancellation; allows barge-in)",
    )
    audio.add_argument(
        "--buffer-s",
        type=non_negative_float,
        metavar="S",
        help="seconds of audio kept while offline (default 30)",
    )
    camera = p.add_argument_group("camera")
    camera.add_argument(
        "--camera",
        choices=["auto", "picamera2", "folder", "none"],
        help="frame source (default auto: the folder if given, else a Pi camera if any)",
    )
    camera.add_argument(
        "--camera-folder", metavar="DIR", help="send the JPEGs in DIR in turn (default: none)"
    )
    camera.add_argument("--no-camera", action="store_true", help="send no frames")
    camera.add_argument("--fps", type=positive_float, help="frames per second (default 1)")
    camera.add_argument(
        "--size", type=frame_size, metavar="WxH", help="Pi camera frame size (default 640x480)"
    )
    tls = p.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="TLS, trusting the system's CAs")
    tls.add_argument(
        "--ca", metavar="PEM", help="CA certificate to trust, implies TLS (default: none)"
    )
    tls.add_argument("--cert", metavar="PEM", help="client certificate, mutual TLS (default: none)")
    tls.add_argument("--key", metavar="PEM", help="client key, mutual TLS (default: none)")
    tls.add_argument(
        "--server-name", help="name to expect in the server's certificate (default: its host)"
    )
    headless = p.add_argument_group("headless (a recording instead of devices)")
    headless.add_argument(
        "--wav",
        type=sound_file,
        help="speech recording to stream, WAV/FLAC (default: none, use the microphone); e.g. "
        "parley/assets/turn_on_the_living_room_lamp.wav",
    )
    headless.add_argument(
        "--out",
        type=output_file,
        help="WAV file the answers are written to (default: none; needed with --wav)",
    )
    headless.add_argument("--fast", action="store_true", help="no real-time pacing")
    headless.add_argument("--json", action="store_true", help="print a JSON report")
    p.add_argument("--stats-file", help=argparse.SUPPRESS)
    if isinstance(p, CommandParser):
        p.requires["wav"] = ("out", "--wav needs --out (the WAV the answers are written to)")
