"""The stage kinds a pipeline is made of, and what each takes and gives.

Shared by the config (which wires and checks pipelines), the server (which runs them)
and the workers (one gRPC service per kind).
"""

from __future__ import annotations

# stt: audio -> transcript; llm: text (+ context, images) -> answer text;
# tts: answer text -> audio; speech_llm: audio (+ context, images) -> answer text and
# maybe audio; analyse: audio, text or image -> labels; retrieve: text -> passages;
# caption: image -> text.
KINDS = ("stt", "llm", "tts", "speech_llm", "analyse", "retrieve", "caption")

# Kinds that answer the user (one per pipeline), and those whose output only informs
# the answer: their failure is stored with the turn, which still answers.
ANSWER_KINDS = ("llm", "speech_llm")
CONTEXT_KINDS = ("analyse", "retrieve", "caption")
