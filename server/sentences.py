"""Cut streamed answer text into sentences for the TTS, each as soon as it is safely
complete.

Sentence boundaries come from pysbd (rule-based sentence boundary disambiguation, the
"Golden Rules" set): it keeps list numbers with their items ("1. Open the app."),
abbreviations ("Dr.", "e.g.", "a.m."), initials, decimals, times and ellipses inside
their sentence, and ends sentences at Chinese and Japanese terminators (U+3002 ideographic
full stop, full-width ! and ?) as well.

Streaming: the text so far is segmented again as it grows; every sentence but the last
is released as soon as the next one has begun with a letter or digit. That is what
pysbd needs to tell "Dr. Smith" from "done. Then", and it keeps a closing quote or
bracket with its sentence. A line break always ends a sentence (answers are markdown:
headings and list items are lines). A run of ``max_chars`` without a boundary is cut at
its last comma or space, so the TTS never waits for a whole paragraph.
"""

from __future__ import annotations

import re

import pysbd

# Characters after which pysbd may end a sentence (cheap test before segmenting).
_TERMINATORS = re.compile("[.!?\u2026\u3002\uff01\uff0e\uff1f\u203c\u2047-\u2049]")
_WORD = re.compile(r"[^\W_]")  # a letter or digit, in any script
# A URL's "?" or "." is not a sentence end (a boundary inside one is ignored).
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


class SentenceSegmenter:
    """Feed text (deltas of any size); get back complete sentences, stripped."""

    def __init__(self, language: str = "en", max_chars: int = 240) -> None:
        try:
            self._pysbd = pysbd.Segmenter(language=language, clean=False)
        except ValueError as exc:  # pysbd names the languages it knows
            raise ValueError(f"sentence segmentation: {exc}") from None
        self.max_chars = max_chars
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        """Add text; return the sentences it completes."""
        self._buffer += text
        out: list[str] = []
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            out += self._split(line, final=True)
        out += self._split_buffer()
        return out

    def flush(self) -> list[str]:
        """The end of the text: whatever is left, as sentences."""
        rest, self._buffer = self._buffer, ""
        return self._split(rest, final=True)

    def reset(self) -> None:
        """Forget the text not yet released."""
        self._buffer = ""

    def _split_buffer(self) -> list[str]:
        out = self._split(self._buffer, final=False)
        while len(self._buffer) > self.max_chars:
            cut = _cut_point(self._buffer[: self.max_chars])
            out.append(self._buffer[:cut].strip())
            self._buffer = self._buffer[cut:]
        return [s for s in out if s]

    def _split(self, text: str, *, final: bool) -> list[str]:
        """Sentences of ``text``; unless ``final``, the last one (perhaps unfinished)
        goes back to the buffer."""
        if not text.strip():
            if not final:
                self._buffer = text
            return []
        parts = self._segments(text) if _TERMINATORS.search(text) else [text]
        if not final:
            last = parts[-1] if len(parts) > 1 and _WORD.search(parts[-1]) else None
            done = parts[:-1] if last is not None else []
            self._buffer = text[sum(len(p) for p in done) :]
            parts = done
        return [p.strip() for p in parts if p.strip()]

    def _segments(self, text: str) -> list[str]:
        """pysbd's segments as consecutive pieces of ``text`` (nothing lost or added)."""
        pieces: list[str] = []
        start = 0
        for segment in self._pysbd.segment(text):
            core = segment.strip()
            at = text.find(core, start) if core else -1
            if at < 0:  # pysbd changed the text: do not split here
                continue
            if at > start and pieces:
                pieces[-1] += text[start:at]
            elif at > start:
                at = start
            end = at + len(core)
            pieces.append(text[at:end])
            start = end
        if not pieces:
            return [text]
        pieces[-1] += text[start:]
        return _join_inside_urls(text, _join_punctuation(pieces))


def _join_punctuation(pieces: list[str]) -> list[str]:
    """A piece with no letter or digit belongs to the one before: pysbd splits an
    ellipsis after a number ("$3.50... Really?" gives "$3.50..", ". ", "Really?"), and a
    lone "." is not a sentence anyone speaks."""
    joined: list[str] = []
    for piece in pieces:
        if joined and not _WORD.search(piece):
            joined[-1] += piece
        else:
            joined.append(piece)
    return joined


def _join_inside_urls(text: str, pieces: list[str]) -> list[str]:
    inside = [range(m.start() + 1, m.end()) for m in _URL.finditer(text)]
    if not inside:
        return pieces
    joined, at = [pieces[0]], len(pieces[0])
    for piece in pieces[1:]:
        if any(at in span and text[at : span.stop].strip(".!?") for span in inside):
            joined[-1] += piece
        else:
            joined.append(piece)
        at += len(piece)
    return joined


def _cut_point(text: str) -> int:
    for mark in (", ", "; ", ": ", " "):
        at = text.rfind(mark)
        if at > 0:
            return at + len(mark)
    return len(text)
