"""Word and character errors of the STT transcript against an annotator's correction.

Both texts are normalised first (lower case, punctuation removed, runs of spaces
collapsed): "Turn on the lamp." and "turn on the lamp" are the same words. The counts
are jiwer's (substitutions + deletions + insertions, and the reference length), stored
with the annotation, so a corpus WER is sum(errors) / sum(reference words): exactly what
``jiwer.wer(references, hypotheses)`` gives for the same lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import jiwer

_NORMALISE = [
    jiwer.ToLowerCase(),
    jiwer.RemovePunctuation(),
    jiwer.RemoveMultipleSpaces(),
    jiwer.Strip(),
]
WORDS = jiwer.Compose([*_NORMALISE, jiwer.ReduceToListOfListOfWords()])
CHARS = jiwer.Compose([*_NORMALISE, jiwer.ReduceToListOfListOfChars()])


def normalise(text: str) -> str:
    return str(jiwer.Compose(_NORMALISE)(text))


@dataclass(frozen=True)
class EditCounts:
    word_errors: int
    word_count: int
    char_errors: int
    char_count: int


def edit_counts(reference: str, hypothesis: str) -> EditCounts | None:
    """Errors of ``hypothesis`` (what STT heard) against ``reference`` (what was said);
    None when the reference is empty after normalisation (nothing to score against)."""
    if not normalise(reference):
        return None
    words = jiwer.process_words(reference, hypothesis, WORDS, WORDS)
    chars = jiwer.process_characters(reference, hypothesis, CHARS, CHARS)
    return EditCounts(
        word_errors=words.substitutions + words.deletions + words.insertions,
        word_count=words.substitutions + words.deletions + words.hits,
        char_errors=chars.substitutions + chars.deletions + chars.insertions,
        char_count=chars.substitutions + chars.deletions + chars.hits,
    )
