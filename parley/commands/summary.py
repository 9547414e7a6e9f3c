"""The latency summary `parley demo` and `parley edge --wav` print for a turn."""

from __future__ import annotations

from collections.abc import Mapping

# (label, latency record key) in the order the summary prints them
STEPS = [
    ("end of speech -> VAD decision", "endpointing_ms"),
    ("speech-to-text", "stt_ms"),
    ("LLM to first sentence", "llm_ms"),
    ("TTS to first audio", "tts_ms"),
    ("send first audio", "send_ms"),
    ("VAD decision -> first audio sent", "first_audio_sent_ms"),
    ("  of which framework overhead", "overhead_ms"),
    ("whole answer", "turn_total_ms"),
]


def latency_lines(latency_ms: Mapping[str, float], voice_to_voice_ms: float | None) -> list[str]:
    """``latency (ms):`` and one line per figure the record has, voice-to-voice last
    (n/a when the audio was not paced in real time: no edge clock to measure it on)."""
    lines = ["latency (ms):"]
    lines += [f"  {label:34s} {latency_ms[key]:8.1f}" for label, key in STEPS if key in latency_ms]
    shown = (
        f"{voice_to_voice_ms:8.1f}"
        if voice_to_voice_ms is not None
        else "     n/a (--fast: no real-time clock)"
    )
    lines.append(f"  {'voice-to-voice (edge clock)':34s} {shown}")
    return lines
