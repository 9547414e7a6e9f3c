"""The speech-text stage: between the LLM and the TTS, for every TTS engine.

A chat model writes for a screen; this stage turns its streamed text into the
sentences a listener should hear, as soon as each is complete:

1. :class:`~server.chat_markup.ChatMarkup` separates reasoning blocks
   (``<think>…</think>``) and leaked chat-template tokens from the answer;
2. :class:`CodeFences` drops fenced code blocks (whole lines, so it works line by line);
3. :class:`~server.sentences.SentenceSegmenter` cuts sentences (pysbd);
4. :func:`~server.speakable.speakable` reads each sentence's markdown as plain words and
   drops emoji, pictographs and URLs' paths; a sentence with no words left is not spoken.

What the stage keeps is what the turn stores: ``response`` (the answer: the LLM's text
without reasoning or chat-template tokens, ending where an end-of-turn token ends it),
``reasoning`` (stored apart) and ``spoken`` (the sentences sent to the TTS, in order;
the conversation history is built from them).
"""

from __future__ import annotations

from server.chat_markup import ChatMarkup
from server.sentences import SentenceSegmenter
from server.speakable import speakable

_FENCE_CHARS = "`~"


class CodeFences:
    """Drops fenced code blocks (```` ``` ```` or ``~~~`` lines and what is between them)
    from streamed markdown. A line is held only until its first characters show whether
    it is a fence."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._head = ""  # the start of the current line, while undecided
        self._deciding = True
        self._dropping = False  # the rest of the current line is dropped
        self._fence = ""  # the open fence's character, "" outside a block

    def feed(self, text: str) -> str:
        out: list[str] = []
        for ch in text:
            if self._deciding:
                self._head += ch
                body = self._head.lstrip(" ")
                if ch == "\n" or len(body) >= 3 or (body and body[0] not in _FENCE_CHARS):
                    out.append(self._decide())
            elif ch == "\n":
                if not self._dropping:
                    out.append(ch)
                self._deciding, self._dropping = True, False
            elif not self._dropping:
                out.append(ch)
        return "".join(out)

    def flush(self) -> str:
        out = self._decide() if self._deciding and self._head else ""
        self.reset()
        return out

    def _decide(self) -> str:
        head, self._head = self._head, ""
        body = head.lstrip(" ")
        fence = body[:3] if len(body) >= 3 and body[:3] in ("```", "~~~") else ""
        if fence and (not self._fence or fence[0] == self._fence):
            self._fence = "" if self._fence else fence[0]
            self._dropping = True
        else:
            self._dropping = bool(self._fence)
        self._deciding = head.endswith("\n")
        if self._deciding:  # the line ended while undecided
            self._dropping = False
            return "" if fence or self._fence else head
        return "" if self._dropping else head


class SpeechText:
    """LLM text deltas in; the sentences to speak out, each as soon as it is complete.

    ``language`` is pysbd's language code for sentence rules ("en" also ends sentences
    at Chinese and Japanese terminators); ``max_chars`` bounds a sentence without a
    boundary (cut at its last comma or space).
    """

    def __init__(self, language: str = "en", max_chars: int = 240) -> None:
        self.markup = ChatMarkup()
        self.spoken: list[str] = []
        self._fences = CodeFences()
        self._sentences = SentenceSegmenter(language, max_chars)
        self._rewinds = 0

    @property
    def response(self) -> str:
        """The answer as stored and shown: the LLM's text without reasoning blocks,
        chat-template tokens or leaked prompt turns, ending at an end-of-turn token
        (markdown and all; the spoken sentences are :attr:`spoken`)."""
        return self.markup.answer.strip()

    @property
    def reasoning(self) -> str:
        return self.markup.reasoning.strip()

    def feed(self, delta: str) -> tuple[str, list[str]]:
        """Add an LLM delta; returns (the answer text it released, sentences to speak)."""
        answer = self.markup.feed(delta)
        return answer, self._sentences_of(answer, final=False)

    def flush(self) -> tuple[str, list[str]]:
        """The LLM is done: what was held back, and the last sentences to speak."""
        answer = self.markup.flush()
        return answer, self._sentences_of(answer, final=True)

    def _sentences_of(self, answer: str, *, final: bool) -> list[str]:
        if self.markup.rewinds != self._rewinds:  # the text held so far was reasoning
            self._rewinds = self.markup.rewinds
            self._fences.reset()
            self._sentences.reset()
            answer = self.markup.answer
        text = self._fences.feed(answer)
        raw = self._sentences.feed(text)
        if final:
            raw += self._sentences.feed(self._fences.flush())
            raw += self._sentences.flush()
        out = [s for s in map(speakable, raw) if s]
        self.spoken += out
        return out
