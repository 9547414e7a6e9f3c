"""Chat-template special tokens that a badly configured model leaks into its answer.

A chat model is trained to end its turn with a special token (ChatML's ``<|im_end|>``,
Llama 3's ``<|eot_id|>``, Gemma's ``<end_of_turn>``, ...). When the server running it
uses the wrong chat template, or none, the token comes out as text, often followed by
an invented next turn (``<|im_start|>user ...``). Two guards use these lists: the LLM
engines that take stop strings stop generating at them (``STOP_STRINGS``), and the
server's speech-text stage ends the answer at them whatever the engine
(:mod:`server.chat_markup`).
"""

from __future__ import annotations

# Tokens that end the model's turn: nothing after one belongs to the answer.
END_OF_TURN: tuple[str, ...] = (
    "<|im_end|>",  # ChatML (Qwen, many fine-tunes)
    "<|eot_id|>",  # Llama 3
    "<|eom_id|>",  # Llama 3 tool calls
    "<|end_of_text|>",  # Llama 3 end of text
    "<|endoftext|>",  # GPT-2 family, Qwen base, Phi
    "<|end|>",  # Phi-3
    "<|return|>",  # gpt-oss
    "<end_of_turn>",  # Gemma
    "</s>",  # Llama 2, Mistral
    "<eos>",  # Gemma end of sequence
)

# Tokens that open a turn. Leaked at the very start they announce the answer itself
# (``<|im_start|>assistant``) and are dropped with their role name; once the answer
# has begun they mean the model is writing the next turn, which ends the answer.
START_OF_TURN: tuple[str, ...] = (
    "<|im_start|>",
    "<|start_header_id|>",
    "<|start|>",
    "<start_of_turn>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "[INST]",
)

# What engines that accept stop strings are asked to stop at (order: most common first).
STOP_STRINGS: tuple[str, ...] = (*END_OF_TURN, "<|im_start|>", "<|start_header_id|>", "[INST]")
