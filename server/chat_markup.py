"""Separate a streamed LLM answer from what is not answer: reasoning blocks and leaked
chat-template tokens. The first step of the speech-text stage (:mod:`server.speech_text`).

- ``<think>…</think>`` (also ``<thinking>``, ``<reasoning>``) blocks, before or inside the
  answer, go to :attr:`ChatMarkup.reasoning`. A block left open runs to the end of the
  answer. A closing tag with no opening tag (a chat template that opens the block in the
  prompt) turns everything before it into reasoning too: what was not yet spoken is
  dropped (:attr:`ChatMarkup.rewinds` counts these, so later steps drop their buffers).
- Chat-template tokens (:mod:`parley.chat_tokens`): an end-of-turn token ends the answer
  (the model went on to invent the next turn: ``Answer. <|eot_id|>...`` is ``Answer.``);
  a turn-opening token ends it too once the answer has begun. At the very start, a
  turn-opening token is dropped with its role name (``<|im_start|>assistant``), and a
  leaked prompt turn is dropped whole: ``[INST] ... [/INST]`` and a ``user`` or
  ``system`` turn up to its end-of-turn token are the prompt, never answer. Any other
  ``<|...|>`` token (and ``<s>``) is dropped.

Text is released as soon as it cannot be the start of a tag: a trailing ``<thi`` or
``<|im_`` is held until the next delta decides it.
"""

from __future__ import annotations

import re

from parley.chat_tokens import END_OF_TURN, START_OF_TURN

_REASONING = "think|thinking|reasoning"
_OPEN = re.compile(rf"<({_REASONING})>", re.IGNORECASE)
_CLOSE = re.compile(rf"</({_REASONING})>", re.IGNORECASE)
# A tag or token: reasoning open/close, or a chat-template special token.
_TAG = re.compile(
    rf"</?(?:{_REASONING})>|<\|[A-Za-z0-9_]{{1,40}}\|>|</?s>|<[be]os>"
    r"|<(?:start|end)_of_turn>|\[/?INST\]",
    re.IGNORECASE,
)
# Names of the angle-bracket tags without bars, for telling "<thi" (wait) from "<b" (text).
_NAMES = ("think", "thinking", "reasoning", "s", "eos", "bos", "start_of_turn", "end_of_turn")
_BAR_TOKEN_START = re.compile(r"<\|[A-Za-z0-9_]{0,40}\|?")
_ROLES = ("assistant", "model")
_PROMPT_ROLES = ("user", "system", "human")  # a leaked turn of the prompt, not answer
_END = frozenset(t.lower() for t in END_OF_TURN)
_START = frozenset(t.lower() for t in START_OF_TURN)


def _may_become_tag(tail: str) -> bool:
    """Whether ``tail`` (the end of the text, from a "<" or "[") may be an unfinished tag."""
    if tail.startswith("["):
        return "[INST]".startswith(tail) or "[/INST]".startswith(tail)
    if tail.startswith("<|"):
        return _BAR_TOKEN_START.fullmatch(tail) is not None
    name = tail[1:].removeprefix("/").lower()
    return any(known.startswith(name) for known in _NAMES)


def _held_back(text: str) -> int:
    """Where a possible unfinished tag starts at the end of ``text`` (len(text) if none)."""
    for index in range(len(text) - 1, max(-1, len(text) - 45), -1):
        if text[index] in "<[":
            return index if _may_become_tag(text[index:]) else len(text)
    return len(text)


class ChatMarkup:
    """Feed LLM text deltas; get back the answer text (no reasoning, no tokens)."""

    def __init__(self) -> None:
        self.answer = ""  # the answer so far, as released by feed()
        self.reasoning = ""  # the text of every reasoning block
        self.response = ""  # the LLM's text without its reasoning blocks (raw: tokens kept)
        self.ended = False  # an end-of-turn token came: the rest is not answer
        self.rewinds = 0  # times a lone closing tag turned the answer so far into reasoning
        self._pending = ""
        self._thinking = False
        self._role_next = False  # a turn-opening token came first: drop a role name
        self._in_prompt = False  # inside a leaked prompt turn: dropped until it ends

    def feed(self, delta: str) -> str:
        """Add a delta; return the answer text it releases (maybe "")."""
        self._pending += delta
        return self._drain(final=False)

    def flush(self) -> str:
        """The end of the LLM's text: release what was held back."""
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> str:
        out: list[str] = []
        text, self._pending = self._pending, ""
        while text:
            if self._thinking:
                close = _CLOSE.search(text)
                if close is None:
                    keep = len(text) if final else _held_back(text)
                    self.reasoning += text[:keep]
                    self._pending = text[keep:]
                    break
                self.reasoning += text[: close.start()]
                self._thinking = False
                text = text[close.end() :]
                continue
            tag = _TAG.search(text)
            stop = tag.start() if tag else (len(text) if final else _held_back(text))
            released, held = self._answer_text(text[:stop], decided=final or tag is not None)
            if held:  # perhaps a role name still arriving
                self._pending = text
                break
            out.append(released)
            self.response += text[:stop]
            if tag is None:
                self._pending = text[stop:]
                break
            text = text[tag.end() :]
            self._on_tag(tag.group(0), out)
        released_all = "".join(out)
        self.answer += released_all
        return released_all

    def _answer_text(self, text: str, *, decided: bool) -> tuple[str, bool]:
        """The part of ``text`` that is answer, and whether to wait for more first."""
        if self.ended or self._in_prompt:
            return "", False
        if self._role_next and text.strip():
            stripped = text.lstrip()
            lowered = stripped.lower()
            roles = (*_ROLES, *_PROMPT_ROLES)
            if not decided and any(r.startswith(lowered) for r in roles):
                return "", True  # "assist" or "model": is a word still coming?
            role = next((r for r in roles if re.match(rf"{r}\b", lowered)), None)
            self._role_next = False
            if role in _PROMPT_ROLES:
                self._in_prompt = True  # the prompt's turn: dropped up to its end
                return "", False
            return (stripped[len(role) :].lstrip(" \t\n") if role else stripped), False
        if self._role_next:
            return "", False  # whitespace between the token and the role name
        return text, False

    def _on_tag(self, tag: str, out: list[str]) -> None:
        lowered = tag.lower()
        if _OPEN.fullmatch(tag):
            self._thinking = True
            return
        if _CLOSE.fullmatch(tag):  # closing a block that was never opened
            if not self.ended:
                self.reasoning += self.response
                self.response = self.answer = ""
                out.clear()
                self.rewinds += 1
            return
        self.response += tag
        if self._in_prompt:  # the leaked prompt turn ends here; the answer may follow
            self._in_prompt = lowered not in _END and lowered != "[/inst]"
            return
        begun = bool((self.answer + "".join(out)).strip())
        if lowered == "[inst]" and not begun:
            self._in_prompt = True
        elif lowered in _END or (lowered in _START and begun):
            self.ended = True
        elif lowered in _START:
            self._role_next = True
