"""SentenceSegmenter: streamed text in, sentences out, each as soon as pysbd can tell
it is complete (the next sentence has begun), whatever the delta sizes."""

from __future__ import annotations

import pytest

from server.sentences import SentenceSegmenter


def split(text: str, *, step: int = 1, max_chars: int = 240) -> tuple[list[list[str]], list[str]]:
    """Feed ``text`` ``step`` characters at a time; what each feed gave, and the flush."""
    segmenter = SentenceSegmenter(max_chars=max_chars)
    fed = [segmenter.feed(text[i : i + step]) for i in range(0, len(text), step)]
    return fed, segmenter.flush()


def sentences(text: str, **kwargs: int) -> list[str]:
    fed, rest = split(text, **kwargs)
    return [s for batch in fed for s in batch] + rest


def test_a_sentence_is_released_when_the_next_one_begins() -> None:
    segmenter = SentenceSegmenter()
    tokens = ["Hello", " there", ".", " How", " are", " you", "?", " Fine"]
    out = [segmenter.feed(t) for t in tokens]
    assert out == [[], [], [], ["Hello there."], [], [], [], ["How are you?"]]
    assert segmenter.flush() == ["Fine"]
    assert segmenter.flush() == []  # flush empties the buffer


def test_end_punctuation_at_the_end_waits_for_more_or_the_flush() -> None:
    segmenter = SentenceSegmenter()
    assert segmenter.feed("Done. ") == []
    assert segmenter.flush() == ["Done."]


@pytest.mark.parametrize("step", [1, 2, 3, 100])
def test_several_sentences_any_delta_size(step: int) -> None:
    assert sentences("It works! Does it? Yes. ", step=step) == ["It works!", "Does it?", "Yes."]


def test_one_delta_can_complete_several_sentences() -> None:
    segmenter = SentenceSegmenter()
    assert segmenter.feed("One. Two! Three? Fou") == ["One.", "Two!", "Three?"]
    assert segmenter.flush() == ["Fou"]


@pytest.mark.parametrize(
    "text",
    [
        "Ask Dr. Smith about it.",
        "Bring fruit, e.g. apples and pears.",
        "Mr. and Mrs. Jones vs. St. Louis.",
        "It costs 3.5 euros and version 2.0.1 is out.",
        "We meet at 10 a.m. on Monday.",
        "Hmm... let me see.",
    ],
)
@pytest.mark.parametrize("step", [1, 5])
def test_inner_dots_do_not_end_a_sentence(text: str, step: int) -> None:
    assert sentences(text + " Next one.", step=step) == [text, "Next one."]


def test_line_breaks_end_a_sentence_and_are_not_kept() -> None:
    segmenter = SentenceSegmenter()
    assert segmenter.feed("First line\n") == ["First line"]
    assert segmenter.feed("\n\nSecond line\nThi") == ["Second line"]
    assert segmenter.flush() == ["Thi"]


def test_a_url_is_not_cut_at_its_question_mark_or_dots() -> None:
    text = "See https://example.com/a.b?c=1 for more. Then rest."
    for step in (1, 100):
        assert sentences(text, step=step) == [
            "See https://example.com/a.b?c=1 for more.",
            "Then rest.",
        ]


def test_empty_and_whitespace_only_input_give_nothing() -> None:
    assert sentences("") == []
    assert sentences("   \n\n  ") == []


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ('He said "Go home." Then he left. ', 'He said "Go home."'),
        ("(See Dr. Who.) Next. ", "(See Dr. Who.)"),
        ("\u201cYes.\u201d OK. ", "\u201cYes.\u201d"),
    ],
)
def test_closing_quote_or_bracket_stays_with_its_sentence(text: str, first: str) -> None:
    for step in (1, 100):  # token by token, and in one delta
        out = sentences(text, step=step)
        assert out[0] == first
        assert " ".join(out) == text.strip()  # nothing lost


def test_max_chars_cuts_at_the_last_comma() -> None:
    segmenter = SentenceSegmenter(max_chars=20)
    assert segmenter.feed("one two three, four five") == ["one two three,"]
    assert segmenter.flush() == ["four five"]


def test_max_chars_cuts_repeatedly_when_fed_token_by_token() -> None:
    words = " ".join(f"w{i:02d}" for i in range(30))  # 119 characters, no punctuation
    fed, rest = split(words, step=1, max_chars=25)
    out = [s for batch in fed for s in batch]
    assert all(len(s) <= 25 for s in out)
    assert len(out) >= 4
    assert " ".join([*out, *rest]) == words  # nothing lost, nothing repeated


def test_max_chars_hard_cut_without_any_space() -> None:
    segmenter = SentenceSegmenter(max_chars=10)
    assert segmenter.feed("abcdefghijklmnopqrstuvwxyz") == ["abcdefghij", "klmnopqrst"]
    assert segmenter.flush() == ["uvwxyz"]


def test_an_unknown_language_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="sentence segmentation"):
        SentenceSegmenter(language="xx")
