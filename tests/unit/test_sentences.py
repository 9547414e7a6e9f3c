"""SentenceSplitter: LLM deltas in, sentences for the TTS out, as early as is safe."""

from __future__ import annotations

import pytest

from server.sentences import SentenceSplitter


def split(text: str, *, step: int = 1, max_chars: int = 240) -> tuple[list[list[str]], str]:
    """Feed ``text`` ``step`` characters at a time; return what each feed gave, and flush."""
    splitter = SentenceSplitter(max_chars=max_chars)
    fed = [splitter.feed(text[i : i + step]) for i in range(0, len(text), step)]
    return fed, splitter.flush()


def sentences(text: str, **kwargs: int) -> list[str]:
    fed, rest = split(text, **kwargs)
    return [s for batch in fed for s in batch] + ([rest] if rest else [])


def test_sentence_is_emitted_as_soon_as_the_whitespace_after_it_arrives() -> None:
    splitter = SentenceSplitter()
    tokens = ["Hello", " there", ".", " How", " are", " you", "?", " Fine"]
    out = [splitter.feed(t) for t in tokens]
    assert out == [[], [], [], ["Hello there."], [], [], [], ["How are you?"]]
    assert splitter.flush() == "Fine"
    assert splitter.flush() == ""  # flush empties the buffer


def test_end_punctuation_without_whitespace_waits() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Done.") == []
    assert splitter.flush() == "Done."


@pytest.mark.parametrize("step", [1, 2, 3, 100])
def test_several_sentences_any_delta_size(step: int) -> None:
    text = "It works! Does it? Yes. "
    assert sentences(text, step=step) == ["It works!", "Does it?", "Yes."]


def test_one_delta_can_complete_several_sentences() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("One. Two! Three? Fou") == ["One.", "Two!", "Three?"]
    assert splitter.flush() == "Fou"


@pytest.mark.parametrize(
    "text",
    [
        "Ask Dr. Smith about it. ",
        "Bring fruit, e.g. apples and pears. ",
        "That is, i.e. the blue one. ",
        "Mr. and Mrs. Jones vs. St. Louis. ",
        "Call DR. House now. ",  # case-insensitive
    ],
)
def test_abbreviations_do_not_end_a_sentence(text: str) -> None:
    assert sentences(text) == [text.strip()]


def test_abbreviation_then_real_end_in_one_buffer() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("See Dr. ") == []
    assert splitter.feed("Who. Then") == ["See Dr. Who."]
    assert splitter.flush() == "Then"


@pytest.mark.parametrize("step", [1, 4])
def test_decimals_do_not_end_a_sentence(step: int) -> None:
    assert sentences("It costs 3.5 euros. Version 2.0.1 is out. ", step=step) == [
        "It costs 3.5 euros.",
        "Version 2.0.1 is out.",
    ]


def test_ellipsis_followed_by_space_ends_a_sentence() -> None:
    assert sentences("Well... maybe. ") == ["Well...", "maybe."]
    assert sentences("Hmm… fine. ") == ["Hmm…", "fine."]


def test_ellipsis_inside_a_word_does_not() -> None:
    assert sentences("Wait...what? ") == ["Wait...what?"]


def test_newlines_end_a_sentence_and_are_not_kept() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("First line\n") == ["First line"]
    assert splitter.feed("\n\nSecond line\nThi") == ["Second line"]
    assert splitter.flush() == "Thi"


def test_newline_after_an_abbreviation_does_not_cut() -> None:
    assert sentences("Ask Dr.\nSmith. ") == ["Ask Dr.\nSmith."]


def test_empty_and_whitespace_only_input_give_nothing() -> None:
    assert sentences("") == []
    assert sentences("   \n\n  ") == []


def test_quote_after_the_period_is_not_a_new_sentence() -> None:
    # The closing quote must not start the next sentence, and the next sentence starts
    # at its first word.
    out = sentences('He said "Go home." Then he left. ')
    assert len(out) == 2
    assert out[0].startswith('He said "Go home.')
    assert out[1] == "Then he left."


@pytest.mark.parametrize(
    "text, first",
    [
        ('He said "Go home." Then he left. ', 'He said "Go home."'),
        ("(See Dr. Who.) Next. ", "(See Dr. Who.)"),
        ("She asked 'why?' Nobody knew. ", "She asked 'why?'"),
        ("\u201cYes.\u201d OK. ", "\u201cYes.\u201d"),
    ],
)
def test_closing_quote_or_bracket_stays_with_its_sentence(text: str, first: str) -> None:
    for step in (1, 100):  # token by token, and in one delta
        out = sentences(text, step=step)
        assert out[0] == first
        assert " ".join(out) == text.strip()  # nothing lost


def test_max_chars_cuts_at_the_last_comma() -> None:
    splitter = SentenceSplitter(max_chars=20)
    out = splitter.feed("one two three, four five")
    assert out == ["one two three,"]
    assert splitter.flush() == "four five"


def test_max_chars_cuts_at_the_last_space_without_a_comma() -> None:
    splitter = SentenceSplitter(max_chars=20)
    out = splitter.feed("alpha beta gamma delta epsilon")
    assert out == ["alpha beta gamma"]
    assert splitter.flush() == "delta epsilon"


def test_max_chars_cuts_repeatedly_when_fed_token_by_token() -> None:
    words = " ".join(f"w{i:02d}" for i in range(30))  # 119 characters, no punctuation
    fed, rest = split(words, step=1, max_chars=25)
    out = [s for batch in fed for s in batch]
    assert all(len(s) <= 25 for s in out)
    assert len(out) >= 4
    assert " ".join([*out, rest]) == words  # nothing lost, nothing repeated


def test_max_chars_hard_cut_without_any_space() -> None:
    splitter = SentenceSplitter(max_chars=10)
    assert splitter.feed("abcdefghijklmnopqrstuvwxyz") == ["abcdefghij", "klmnopqrst"]
    assert splitter.flush() == "uvwxyz"


def test_short_text_under_max_chars_is_kept_until_flush() -> None:
    splitter = SentenceSplitter(max_chars=240)
    assert splitter.feed("no punctuation at all, just words") == []
    assert splitter.flush() == "no punctuation at all, just words"


def test_no_as_an_answer_is_a_sentence_of_its_own() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("No. I cannot do that. ") == ["No.", "I cannot do that."]
