"""Argument types for the `parley` command line: numbers, files and HOST:PORT
addresses checked at parse time, and the subcommands' parser class.

Each function is an argparse ``type=``: it turns the text into a value or raises
``argparse.ArgumentTypeError``, so argparse prints a one-line usage error and exits
with status 2 before anything starts. NaN and infinities are refused everywhere.

Each checker carries its declared range as ``checker.low`` / ``checker.high`` (None:
unbounded) so tests can walk the parser and try the values just outside it.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from parley.config_values import split_address

N = TypeVar("N", int, float)


class RangedType(Protocol):
    """An argparse type function with its declared range."""

    low: float | None
    high: float | None
    kind: type

    def __call__(self, text: str) -> Any: ...


def _parse(kind: type[N], text: str) -> N:
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def in_range(
    kind: type[N], low: N | None = None, high: N | None = None, *, low_open: bool = False
) -> Callable[[str], N]:
    """A type function accepting ``kind`` values in [low, high] (``low_open``: (low, high]);
    None leaves that side unbounded. The error names the range, e.g. "must be > 0"."""

    def check(text: str) -> N:
        value = _parse(kind, text)
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and value > high
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: {_describe()}")
        return value

    def _describe() -> str:
        above = f"> {low}" if low_open else f">= {low}"
        if low is not None and high is not None:
            return f"must be {above} and <= {high}"
        return f"must be {above}" if low is not None else f"must be <= {high}"

    ranged: Any = check
    ranged.low, ranged.high, ranged.kind, ranged.low_open = low, high, kind, low_open
    check.__name__ = f"{kind.__name__} in range"  # argparse names the type in its error
    return check


positive_int = in_range(int, 1)
# Server processes sharing a port: each holds ~120 MB and a VAD thread.
MAX_PROCESSES = 64
process_count_arg = in_range(int, 1, MAX_PROCESSES)
non_negative_int = in_range(int, 0)
positive_float = in_range(float, 0.0, low_open=True)
non_negative_float = in_range(float, 0.0)


def frame_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (e.g. 640x480): two whole numbers from 1 to 10000."""
    width, _, height = text.lower().partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"needs WIDTHxHEIGHT, e.g. 640x480, not {text!r}"
        ) from None
    if not all(1 <= side <= 10_000 for side in size):
        raise argparse.ArgumentTypeError(f"{text}: width and height must be from 1 to 10000")
    return size


def readable_file(text: str) -> str:
    """A path to an existing, readable regular file (checked again when opened)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text}: cannot be read ({exc.strerror})") from None
    return text


def sound_file(text: str) -> str:
    """A readable file that libsndfile can decode (WAV, FLAC, OGG...): its header is
    read here, so a missing, unreadable or non-audio file is a usage error."""
    readable_file(text)
    try:
        import soundfile
    except ImportError:  # the edge extra is missing: the command itself says so
        return text
    try:
        soundfile.info(text)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise argparse.ArgumentTypeError(
            f"{text}: not a sound file that can be read ({reason.strip().rstrip('.')})"
        ) from None
    return text


def output_file(text: str) -> str:
    """A file the command will write (``--output``, ``--out``), checked before anything
    runs: its folder exists, it is not a folder, and it can be opened for writing (an
    existing file is opened without truncating it; a new one is created and removed), so
    a long benchmark never ends in a result that cannot be saved."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder, not a file")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder {str(folder)!r}")
    existed = path.exists()
    try:
        with path.open("ab" if existed else "xb"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"{text}: cannot be written ({exc.strerror or exc})"
        ) from None
    if not existed:
        with contextlib.suppress(OSError):
            path.unlink()
    return text


def address_type(any_port: bool = False, empty_host: bool = False) -> Callable[[str], str]:
    """An argparse type checking HOST:PORT with parley.config_values.split_address."""

    def address(text: str) -> str:
        try:
            split_address(text, any_port=any_port, empty_host=empty_host)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text.strip()

    return address


# --server: a port from 1 to 65535. --listen: port 0 picks a free one; ":PORT" keeps
# the configured host.
server_address = address_type()
listen_address = address_type(any_port=True, empty_host=True)


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser whose options may require others: ``requires[dest] =
    (other_dest, message)`` fails with usage when ``dest`` is given without ``other``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requires: dict[str, tuple[str, str]] = {}

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        for dest, (other, message) in self.requires.items():
            if getattr(parsed, dest, None) and not getattr(parsed, other, None):
                self.error(message)
        return parsed, extras
