"""Sound devices through sounddevice (PortAudio): import, listing and lookup.

sounddevice is imported lazily, so the rest of the edge (and every other role) works
without it; a missing package or PortAudio library fails with a message that says
what to install.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Literal

from parley.errors import ParleyError

Kind = Literal["input", "output"]


class DeviceError(ParleyError):
    """A sound device is missing, unusable or sounddevice is not installed."""


def sounddevice() -> ModuleType:
    try:
        import sounddevice
    except ImportError:
        raise DeviceError(
            "the microphone and speaker need sounddevice: pip install 'parley[edge]'"
        ) from None
    except OSError as exc:  # the package is there, the PortAudio library is not
        raise DeviceError(
            f"sounddevice cannot load PortAudio ({exc}): sudo apt install libportaudio2"
        ) from None
    return sounddevice


def rescan() -> None:
    """Forget PortAudio's device list and enumerate again (PortAudio lists devices
    once, when initialised: a sound server started later is not seen otherwise)."""
    sd = sounddevice()
    sd._terminate()
    sd._initialize()


def _channels_key(kind: Kind) -> str:
    return "max_input_channels" if kind == "input" else "max_output_channels"


def resolve(spec: str | int | None, kind: Kind) -> dict[str, Any]:
    """The device for ``spec``: an index, a (case-insensitive) part of its name, or
    empty/None for the system default. Raises DeviceError naming what exists."""
    sd = sounddevice()
    devices = list(sd.query_devices())
    usable = [d for d in devices if d[_channels_key(kind)] > 0]
    if not usable:
        raise DeviceError(
            f"no {kind} sound device found (PortAudio sees {len(devices)} device(s)); "
            "see `parley edge --list-devices`"
        )
    text = "" if spec is None else str(spec).strip()
    if not text:
        try:
            return dict(sd.query_devices(kind=kind))
        except sd.PortAudioError:
            return dict(usable[0])
    if text.isdigit():
        index = int(text)
        match = [d for d in usable if d["index"] == index]
    else:
        exact = [d for d in usable if d["name"].lower() == text.lower()]
        match = exact or [d for d in usable if text.lower() in d["name"].lower()]
    if len(match) != 1:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in usable)
        problem = "no" if not match else "more than one"
        raise DeviceError(f"{problem} {kind} device matches {text!r} (have {names})")
    return dict(match[0])


def describe_devices() -> str:
    """A table of every device PortAudio sees, defaults marked with `>` (input) and
    `<` (output), as `parley edge --list-devices` prints it."""
    sd = sounddevice()
    devices = list(sd.query_devices())
    if not devices:
        return "no sound devices found (is the sound card, or PulseAudio, running?)"
    default_in, default_out = (int(i) for i in sd.default.device)
    lines = [f"{'':2}{'#':>2} {'in':>3} {'out':>3}  {'rate':>6}  name"]
    for d in devices:
        mark = (">" if d["index"] == default_in else " ") + (
            "<" if d["index"] == default_out else " "
        )
        lines.append(
            f"{mark}{d['index']:>2} {d['max_input_channels']:>3} {d['max_output_channels']:>3}"
            f"  {d['default_samplerate']:>6.0f}  {d['name']}"
        )
    lines.append("(> default input, < default output; pick one by index or part of its name)")
    return "\n".join(lines)
