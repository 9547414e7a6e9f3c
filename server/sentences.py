"""Cut a stream of LLM text deltas into sentences for the TTS, as early as is safe.

A sentence ends at ., !, ? or an ellipsis followed by whitespace (not "Dr." or
"e.g."), or at a line break. Overlong runs without punctuation are cut at the last
comma or space past ``max_chars`` so the TTS never waits for a whole paragraph.
"""

from __future__ import annotations

import re

# End punctuation, then any closing quotes/brackets (kept with the sentence), then space.
_END = re.compile("(?P<end>[.!?\u2026][\"'\u201d\u2019)\\]]*)\\s+|\n+")
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "e.g.", "i.e.", "etc.", "jr."}


class SentenceSplitter:
    def __init__(self, max_chars: int = 240) -> None:
        self.max_chars = max_chars
        self._buffer = ""

    def feed(self, delta: str) -> list[str]:
        """Add a text delta; return the sentences it completes."""
        self._buffer += delta
        out: list[str] = []
        start = 0
        for match in _END.finditer(self._buffer):
            stop = match.end("end") if match.group("end") else match.start()
            candidate = self._buffer[start:stop].strip()
            last_word = candidate.rsplit(" ", 1)[-1].lower()
            if not candidate or last_word in _ABBREVIATIONS:
                continue
            out.append(candidate)
            start = match.end()
        self._buffer = self._buffer[start:]
        while len(self._buffer) > self.max_chars:
            cut = self._cut_point(self._buffer[: self.max_chars])
            out.append(self._buffer[:cut].strip())
            self._buffer = self._buffer[cut:]
        return [s for s in out if s]

    def flush(self) -> str:
        """The text left over at the end of the answer ("" if none)."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest

    @staticmethod
    def _cut_point(text: str) -> int:
        for mark in (", ", "; ", ": ", " "):
            at = text.rfind(mark)
            if at > 0:
                return at + len(mark)
        return len(text)
