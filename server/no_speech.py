"""Transcripts that hold no words: the turn is stored as ``no_speech`` and not answered.

The VAD opens turns on coughs, door slams and music too; the recogniser then returns
nothing, punctuation (".", "..."), a sound annotation ("[BLANK_AUDIO]", "(music)",
"♪♪") or one of the sentences Whisper is known to invent on silence and noise (it
learned them from subtitles: "Thanks for watching!", "Subtitles by the Amara.org
community"). Answering those makes the assistant talk to nobody.
"""

from __future__ import annotations

import re

# Sound annotations: [BLANK_AUDIO], (music), *coughs*, ♪ ... ♪
_ANNOTATIONS = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫♬]")
_NOT_WORD = re.compile(r"[\W_]+")

# Known no-speech hallucinations of Whisper-family recognisers (as they print them).
KNOWN_HALLUCINATIONS = (
    "you",
    "Thank you for watching.",
    "Thanks for watching!",
    "Thank you so much for watching!",
    "Thanks for watching and see you next time!",
    "Please subscribe.",
    "Please subscribe to my channel.",
    "Like and subscribe!",
    "Subtitles by the Amara.org community",
    "Transcription by CastingWords",
    "ご視聴ありがとうございました",
    "字幕由Amara.org社区提供",
    "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
    "Untertitel der Amara.org-Community",
    "Sous-titres réalisés para la communauté d'Amara.org",
    "MBC 뉴스 이덕영입니다.",
)


def words(transcript: str) -> str:
    """The transcript's words, lower case, single-spaced (annotations removed)."""
    text = _ANNOTATIONS.sub(" ", transcript)
    return " ".join(_NOT_WORD.sub(" ", text).lower().split())


def is_no_speech(transcript: str) -> bool:
    """True when ``transcript`` has no words a person said to the assistant."""
    heard = words(transcript)
    return not heard or heard in _HALLUCINATIONS


_HALLUCINATIONS = frozenset(words(text) for text in KNOWN_HALLUCINATIONS)
