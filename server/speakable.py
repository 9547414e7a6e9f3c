"""One sentence of a chat model's markdown, as the words a listener should hear.

The sentence is parsed with markdown-it-py (CommonMark, plus strikethrough and
linkify-it-py's URL finder) and its tokens are read back as plain text: emphasis and
code marks, heading hashes, bullets, block quotes and HTML tags go; a list item keeps
its number ("1. Open the app."); a link is read as its text; a bare URL is read as its
site ("https://www.example.com/a?b=1" -> "example.com") and an e-mail address as is;
an image as its alt text; the cells of a table row are read with commas between.
Pictographs and emoji go (the ``emoji`` package knows every sequence Unicode defines,
skin tones and flags included), and so do other pictographic symbols (Unicode category
So, apart from the few that are read as words, such as the degree sign).

Fenced code blocks span lines and are removed before sentences are cut
(:mod:`server.speech_text`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import urlsplit

import emoji
from markdown_it import MarkdownIt
from markdown_it.token import Token

_MARKDOWN = MarkdownIt("commonmark", {"linkify": True}).enable(["linkify", "strikethrough"])
_READ_SYMBOLS = frozenset("°©®™℃℉№℗")
# Emphasis marks left over where a span was cut by a sentence end ("**Step one.").
_STRAY_MARKS = re.compile(r"[*_~]{2,}|`+|(?<![^\W_])[*_~](?=[^\W_])|(?<=[^\W_])[*_~](?![^\W_])")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:\u3002\uff01\uff1f\uff0c])")
_WORD = re.compile(r"[^\W_]")


def speakable(sentence: str) -> str:
    """The words of ``sentence`` to speak ("" when nothing in it is speech)."""
    tokens = _MARKDOWN.parse(sentence.strip())
    text = _symbols(" ".join(_blocks(tokens)))
    text = _STRAY_MARKS.sub("", text.replace("|", ", "))
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip(" ,")
    return text if _WORD.search(text) else ""


def _blocks(tokens: list[Token]) -> Iterable[str]:
    for token in tokens:
        if token.type == "list_item_open" and token.info:  # an ordered list item
            yield f"{token.info}."
        elif token.type == "inline":
            yield "".join(_inline(token.children or []))


def _inline(children: list[Token]) -> Iterable[str]:
    skip_until_close = False
    for child in children:
        kind = child.type
        if skip_until_close:
            skip_until_close = kind != "link_close"
        elif kind in ("text", "code_inline"):
            yield child.content
        elif kind in ("softbreak", "hardbreak"):
            yield " "
        elif kind == "image":
            yield child.content  # the alt text
        elif kind == "link_open" and child.markup in ("linkify", "autolink"):
            yield _spoken_url(str(child.attrs.get("href", "")))
            skip_until_close = True


def _spoken_url(href: str) -> str:
    """A URL as a listener wants it: its site; an e-mail address as written."""
    if href.startswith("mailto:"):
        return href.removeprefix("mailto:")
    host = urlsplit(href).hostname or ""
    return host.removeprefix("www.")


def _symbols(text: str) -> str:
    text = emoji.replace_emoji(text, replace="")
    return "".join(
        " "
        if unicodedata.category(ch) == "So" and ch not in _READ_SYMBOLS
        else ""
        if ch in "\ufe0e\ufe0f\u200d\u20e3"
        else ch
        for ch in text
    )
