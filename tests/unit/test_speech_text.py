"""The speech-text stage: LLM text in, the exact sentences a listener hears out.

Every input is fed one character at a time, four at a time and in one piece: the
sentences must not depend on how the LLM's deltas fall."""

from __future__ import annotations

import pytest

from server.speech_text import CodeFences, SpeechText


def speak(text: str, step: int) -> tuple[list[str], SpeechText]:
    stage = SpeechText()
    out: list[str] = []
    for i in range(0, len(text), step):
        out += stage.feed(text[i : i + step])[1]
    out += stage.flush()[1]
    assert out == stage.spoken
    return out, stage


SPOKEN = [
    # --- sentence boundaries that are not sentence ends (the failing input first)
    ("Sure. 1. Open the app. 2. Tap lights.", ["Sure.", "1. Open the app.", "2. Tap lights."]),
    ("1. Open the app. 2. Tap lights.", ["1. Open the app.", "2. Tap lights."]),
    ("Ask Dr. Smith about it. Then go.", ["Ask Dr. Smith about it.", "Then go."]),
    ("Bring fruit, e.g. apples. Eat them.", ["Bring fruit, e.g. apples.", "Eat them."]),
    ("Mr. and Mrs. Jones vs. St. Louis. Next.", ["Mr. and Mrs. Jones vs. St. Louis.", "Next."]),
    (
        "J. R. R. Tolkien wrote it. He was British.",
        ["J. R. R. Tolkien wrote it.", "He was British."],
    ),
    ("Meet me at 10 a.m. tomorrow. OK?", ["Meet me at 10 a.m. tomorrow.", "OK?"]),
    ("The alarm is set for 7:30. Sleep well.", ["The alarm is set for 7:30.", "Sleep well."]),
    ("It is 21.5 °C. Version 2.0.1 is out.", ["It is 21.5 °C.", "Version 2.0.1 is out."]),
    ("It costs $3.50 at the shop. Buy two.", ["It costs $3.50 at the shop.", "Buy two."]),
    ("Well... maybe. Or not.", ["Well... maybe.", "Or not."]),
    ("Hmm… fine. Wait...what? Yes.", ["Hmm… fine.", "Wait...what?", "Yes."]),
    ("The U.S. is big. The end.", ["The U.S. is big.", "The end."]),
    ('He said "Go home." Then he left.', ['He said "Go home."', "Then he left."]),
    ("No. I cannot do that.", ["No.", "I cannot do that."]),
    # --- sentence ends that are not . ! ?
    ("你好。今天天气很好！你要去哪里？", ["你好。", "今天天气很好！", "你要去哪里？"]),
    (
        "こんにちは。元気ですか？はい、元気です。",
        ["こんにちは。", "元気ですか？", "はい、元気です。"],
    ),
    (
        "Here you go:\n1. Open the app.\n2. Tap lights.",
        ["Here you go:", "1. Open the app.", "2. Tap lights."],
    ),
    # --- reasoning blocks
    (
        "<think>The user wants the lamp on.</think>Sure, the lamp is on now.",
        ["Sure, the lamp is on now."],
    ),
    ("<think>\nStep 1. Decide.\n</think>\n\nDone. Bye.", ["Done.", "Bye."]),
    ("<thinking>Hmm.</thinking>OK. <reasoning>More.</reasoning>Fine.", ["OK.", "Fine."]),
    ("<think>I never finish thinking.", []),
    # --- ellipses after numbers and words (pysbd splits "3..." into "3.." and ".")
    ("It cost $3.50... Really?", ["It cost $3.50...", "Really?"]),
    ("I was at 3... then left.", ["I was at 3...", "then left."]),
    ("Version 2... Really? Yes.", ["Version 2...", "Really?", "Yes."]),
    ("Wait... Really?", ["Wait...", "Really?"]),
    # --- leaked chat templates: the prompt is never spoken; end of turn ends the answer
    ("<s>[INST] x [/INST] Sure thing.", ["Sure thing."]),
    ("[INST] a prompt never closed", []),
    ("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nSure. Done.", ["Sure.", "Done."]),
    (
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nOk then.",
        ["Ok then."],
    ),
    ("Answer: <|eot_id|>\u2026\n\nSecond answer.", ["Answer:"]),
    # --- markdown
    ("**Bold** and *italic* and _this_. Done.", ["Bold and italic and this.", "Done."]),
    ("# Lamp control\nTap the lamp.", ["Lamp control", "Tap the lamp."]),
    (
        "## Steps:\n- Open the app\n* Tap lights\n+ Done",
        ["Steps:", "Open the app", "Tap lights", "Done"],
    ),
    ("1. **Open** the app.\n2) Tap *Lights*.", ["1. Open the app.", "2. Tap Lights."]),
    ("Run `parley up` now.", ["Run parley up now."]),
    ("Code:\n```python\nprint('a. b')\n```\nThat is all.", ["Code:", "That is all."]),
    ("~~~\nx = 1. y = 2.\n~~~\nDone.", ["Done."]),
    ("> Quoted advice.\n\n---\n\nEnd.", ["Quoted advice.", "End."]),
    ("See [the manual](https://example.com/m) first.", ["See the manual first."]),
    ("![a lamp](lamp.png) Nice.", ["a lamp Nice."]),
    ("| room | lamp |\n|---|---|\n| hall | on |", ["room, lamp", "hall, on"]),
    ("**Step one. Plug it in.** Then wait.", ["Step one.", "Plug it in.", "Then wait."]),
    ("<b>Hot</b> tea.", ["Hot tea."]),
    # --- emoji and pictographs
    ("Great job! 🎉 See you soon 👋🏽.", ["Great job!", "See you soon."]),
    ("Done ✅. Flags 🇫🇷 and family 👨‍👩‍👧 too.", ["Done.", "Flags and family too."]),
    ("Stars ★★★ and arrows. 🙂", ["Stars and arrows."]),
    ("🙂", []),
    # --- URLs
    ("Visit https://www.example.com/a?b=1. Then rest.", ["Visit example.com.", "Then rest."]),
    ("Go to <https://docs.example.org/x.html> now.", ["Go to docs.example.org now."]),
    ("Mail ada@example.com today.", ["Mail ada@example.com today."]),
    # --- leaked chat-template tokens
    ("Hi there.<|im_end|><|im_start|>user\nWhat else?", ["Hi there."]),
    ("<|im_start|>assistant\nThe lamp is on.<|im_end|>", ["The lamp is on."]),
    (
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>junk",
        ["Hello!"],
    ),
    ("Sure.</s>[INST] more [/INST]", ["Sure."]),
    ("All set.<end_of_turn>\n<start_of_turn>user\nThanks", ["All set."]),
    ("It is on. [INST] Now the user talks", ["It is on."]),
    ("Text<|some_token|> goes on.", ["Text goes on."]),
    # --- things that look like tags but are text
    ("Is 3 < 5? Yes, and [x] marks it.", ["Is 3 < 5?", "Yes, and [x] marks it."]),
]


@pytest.mark.parametrize("step", [1, 4, 10_000])
@pytest.mark.parametrize(("text", "expected"), SPOKEN)
def test_spoken_sentences(text: str, expected: list[str], step: int) -> None:
    assert speak(text, step)[0] == expected


@pytest.mark.parametrize("step", [1, 10_000])
def test_reasoning_is_kept_apart_from_the_response(step: int) -> None:
    text = "<think>The user wants the lamp on.</think>Sure, it is on. <think>Done?</think>Bye."
    _, stage = speak(text, step)
    assert stage.reasoning == "The user wants the lamp on.Done?"
    assert stage.response == "Sure, it is on. Bye."


def test_a_closing_tag_without_an_opening_one_makes_the_unspoken_text_reasoning() -> None:
    # A template that opens <think> in the prompt: the model's text starts inside it.
    stage = SpeechText()
    spoken: list[str] = []
    for piece in ["The user wants", " the lamp on", "</think>", "Sure. ", "It is on."]:
        spoken += stage.feed(piece)[1]
    spoken += stage.flush()[1]
    assert spoken == ["Sure.", "It is on."]
    assert stage.reasoning == "The user wants the lamp on"
    assert stage.response == "Sure. It is on."


@pytest.mark.parametrize("step", [1, 4, 10_000])
@pytest.mark.parametrize(
    ("text", "response"),
    [
        ("Hi there.<|im_end|><|im_start|>user\nWhat else?", "Hi there."),
        ("<s>[INST] x [/INST] Sure thing.</s>", "Sure thing."),
        ("Answer: <|eot_id|>\u2026\n\nSecond answer.", "Answer:"),
        ("<|im_start|>assistant\n**Yes.** It is on.<|im_end|>", "**Yes.** It is on."),
    ],
)
def test_the_stored_response_has_no_template_tokens_and_ends_at_end_of_turn(
    text: str, response: str, step: int
) -> None:
    # The response is what the turn stores and the admin shows: what was answered,
    # markdown kept, nothing the model wrote after its turn ended.
    _, stage = speak(text, step)
    assert stage.response == response


def test_answer_deltas_hold_back_only_what_may_be_a_tag() -> None:
    stage = SpeechText()
    assert stage.feed("Hi <th")[0] == "Hi "
    assert stage.feed("ere")[0] == "<there"
    assert stage.feed(" <|im_")[0] == " "
    assert stage.feed("end|> more")[0] == ""


def test_sentences_are_released_while_the_llm_streams() -> None:
    stage = SpeechText()
    released = [stage.feed(t)[1] for t in ["你好。", "今天", "天气很好！", "你", "要去哪里？"]]
    assert released == [[], ["你好。"], [], ["今天天气很好！"], []]
    assert stage.flush()[1] == ["你要去哪里？"]
    english = SpeechText()
    released = [english.feed(t)[1] for t in ["Sure.", " 1.", " Open", " the app.", " 2", "."]]
    assert released == [[], ["Sure."], [], [], ["1. Open the app."], []]


def test_code_fences_pass_short_lines_and_hold_a_line_only_while_undecided() -> None:
    fences = CodeFences()
    assert fences.feed("ab\n``") == "ab\n"
    assert fences.feed("`js\nx.\n```\n") == ""
    assert fences.feed("ok") == "ok"
    assert fences.flush() == ""
