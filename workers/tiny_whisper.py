"""Write a tiny random-weight Whisper model in CTranslate2 format, for offline tests.

The model has Whisper's architecture (80 mel bins, 30 s windows) shrunk to one
encoder and one decoder layer of width 64, a byte-level vocabulary (256 byte symbols,
Whisper's special tokens, 1501 timestamp tokens) and a matching ``tokenizer.json``, so
faster-whisper loads it without going to the network. It transcribes nonsense.
Needs numpy, ctranslate2 and tokenizers (the ``tiny`` extra); no torch, no downloads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

D_MODEL = 64
FFN = 128
N_MELS = 80
HEADS = 2
ENCODER_POSITIONS = 1500
DECODER_POSITIONS = 448
ANSWER_TOKENS = 24  # decoder positions after which end-of-text wins
END_SCALE = 8.0
PROJECTION_SCALE = 1.0
SUPPRESSED = 20.0
SPACE_BIAS = 2.5

# English-only layout (vocabulary < 51865 tokens: CTranslate2 and faster-whisper treat
# the model as English-only and never ask for language tokens).
SPECIALS = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)
TIMESTAMPS = tuple(f"<|{i * 0.02:.2f}|>" for i in range(1501))


def byte_symbols() -> list[str]:
    """GPT-2's byte -> printable unicode mapping; index = byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def merges() -> list[tuple[str, str]]:
    """The few merges faster-whisper needs: it suppresses the *first* token of " -",
    " '" and " ♪"-like symbols, which must not be the bare space."""
    space = byte_symbols()[ord(" ")]
    firsts = [byte_symbols()[b] for b in (ord("-"), ord("'"), "♪".encode()[0])]
    return [(space, first) for first in firsts]


def vocabulary() -> list[str]:
    merged = [a + b for a, b in merges()]
    return [*byte_symbols(), *merged, *SPECIALS, *TIMESTAMPS]


def write_tokenizer(path: Path) -> None:
    """A byte-level BPE tokenizer.json whose ids match :func:`vocabulary`."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tokens = vocabulary()
    text_vocab = {symbol: i for i, symbol in enumerate(tokens[: tokens.index(SPECIALS[0])])}
    tokenizer = Tokenizer(models.BPE(vocab=text_vocab, merges=merges()))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    added = [AddedToken(token, special=True, normalized=False) for token in SPECIALS]
    added += [AddedToken(token, special=True, normalized=False) for token in TIMESTAMPS]
    tokenizer.add_special_tokens(added)
    if tokenizer.token_to_id(TIMESTAMPS[-1]) != len(tokens) - 1:
        raise RuntimeError("tokenizer ids do not match the Whisper vocabulary")
    tokenizer.save(str(path))


def _weights(rng: np.random.Generator, *shape: int, scale: float = 0.05) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _sinusoids(length: int, channels: int) -> np.ndarray:
    """Whisper's sinusoidal position embeddings."""
    increment = np.log(10000) / (channels // 2 - 1)
    inv = np.exp(-increment * np.arange(channels // 2))
    scaled = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1).astype(np.float32)


def _layer_norm(spec: Any) -> None:
    spec.gamma = np.ones(D_MODEL, dtype=np.float32)
    spec.beta = np.zeros(D_MODEL, dtype=np.float32)


def _linear(spec: Any, rng: np.random.Generator, out_dim: int, in_dim: int) -> None:
    spec.weight = _weights(rng, out_dim, in_dim)
    spec.bias = np.zeros(out_dim, dtype=np.float32)


def _ffn(spec: Any, rng: np.random.Generator) -> None:
    _layer_norm(spec.layer_norm)
    _linear(spec.linear_0, rng, FFN, D_MODEL)
    _linear(spec.linear_1, rng, D_MODEL, FFN)


def _self_attention(spec: Any, rng: np.random.Generator) -> None:
    _layer_norm(spec.layer_norm)
    _linear(spec.linear[0], rng, 3 * D_MODEL, D_MODEL)  # fused QKV
    _linear(spec.linear[1], rng, D_MODEL, D_MODEL)


def _positions(rng: np.random.Generator) -> np.ndarray:
    """Random decoder positions, pointing at the end-of-text direction after a few words."""
    positions = _weights(rng, DECODER_POSITIONS, D_MODEL, scale=1.0)
    positions[ANSWER_TOKENS:] += END_SCALE * _end_direction()
    return positions


def _end_direction() -> np.ndarray:
    direction = np.zeros(D_MODEL, dtype=np.float32)
    direction[0] = 1.0
    return direction


def _projection(
    rng: np.random.Generator, tokens: list[str], eot: int
) -> tuple[np.ndarray, np.ndarray]:
    """Untied output projection: lowercase letters and spaces, then end of text.

    Whisper ties the projection to the embeddings; this model does not, so that its
    random answer is a short run of letters instead of one repeated control byte.
    """
    weight = _weights(rng, len(tokens), D_MODEL, scale=PROJECTION_SCALE)
    weight[:, 0] = 0.0
    weight[eot] = END_SCALE * _end_direction()
    allowed = [ord(c) for c in "abcdefghijklmnopqrstuvwxyz "] + [eot]
    bias = np.full(len(tokens), -SUPPRESSED, dtype=np.float32)
    bias[allowed] = 0.0
    bias[ord(" ")] = SPACE_BIAS  # words of a few letters
    return weight, bias


def build_spec(seed: int = 0) -> Any:
    """Fill a one-layer WhisperSpec with deterministic random weights."""
    from ctranslate2.specs import whisper_spec

    rng = np.random.default_rng(seed)
    tokens = vocabulary()
    spec = whisper_spec.WhisperSpec(
        num_encoder_layers=1, num_encoder_heads=HEADS, num_decoder_layers=1, num_decoder_heads=HEADS
    )
    encoder = spec.encoder
    encoder.conv1.weight = _weights(rng, D_MODEL, N_MELS, 3)
    encoder.conv1.bias = np.zeros(D_MODEL, dtype=np.float32)
    encoder.conv2.weight = _weights(rng, D_MODEL, D_MODEL, 3)
    encoder.conv2.bias = np.zeros(D_MODEL, dtype=np.float32)
    encoder.position_encodings.encodings = _sinusoids(ENCODER_POSITIONS, D_MODEL)
    _layer_norm(encoder.layer_norm)
    for layer in encoder.layer:
        _self_attention(layer.self_attention, rng)
        _ffn(layer.ffn, rng)

    decoder = spec.decoder
    decoder.embeddings.weight = _weights(rng, len(tokens), D_MODEL, scale=1.0)
    decoder.position_encodings.encodings = _positions(rng)
    _layer_norm(decoder.layer_norm)
    for layer in decoder.layer:
        _self_attention(layer.self_attention, rng)
        _layer_norm(layer.attention.layer_norm)
        _linear(layer.attention.linear[0], rng, D_MODEL, D_MODEL)  # query
        _linear(layer.attention.linear[1], rng, 2 * D_MODEL, D_MODEL)  # fused KV
        _linear(layer.attention.linear[2], rng, D_MODEL, D_MODEL)
        _ffn(layer.ffn, rng)
    eot = tokens.index("<|endoftext|>")
    decoder.projection.weight, decoder.projection.bias = _projection(rng, tokens, eot)

    spec.register_vocabulary(tokens)
    space = byte_symbols()[ord(" ")]
    spec.config.suppress_ids = []
    spec.config.suppress_ids_begin = [tokens.index(space), eot]
    spec.config.lang_ids = []
    spec.config.alignment_heads = [(0, head) for head in range(HEADS)]
    return spec


def write_tiny_whisper(dest: Path, seed: int = 0) -> Path:
    """Write model.bin, config.json, vocabulary.json and tokenizer.json into ``dest``."""
    spec = build_spec(seed)
    spec.validate()
    spec.optimize(quantization=None)
    dest.mkdir(parents=True, exist_ok=True)
    spec.save(str(dest))
    write_tokenizer(dest / "tokenizer.json")
    preprocessor = {"feature_size": N_MELS, "sampling_rate": 16000, "hop_length": 160}
    (dest / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    return dest
