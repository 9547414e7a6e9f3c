"""Write a tiny random-weight multimodal projector (``mmproj``) GGUF for the bundled
stories260K model, so llama-cpp-python's multimodal chat handlers (``Llava15ChatHandler``
on libmtmd) run for real in tests: a LLaVA-1.5-style CLIP vision encoder (32x32
images, 16x16 patches: 4 image tokens; one transformer block of width 32) and a
two-layer MLP projector (``clip.projector_type = "mlp"``) to the text model's width,
64. Weights are seeded random numbers, so what it "sees" is nonsense, but each image
gives its own embeddings and so its own answer. Needs the ``gguf`` package and numpy.
"""

from __future__ import annotations

from pathlib import Path

TEXT_WIDTH = 64  # stories260K's n_embd: the projector's output
WIDTH, HEADS, FFN, BLOCKS, IMAGE, PATCH = 32, 2, 64, 1, 32, 16


def write_tiny_projector(path: Path, seed: int = 0) -> Path:
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch="clip")
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type("mlp")
    writer.add_vision_image_size(IMAGE)
    writer.add_vision_patch_size(PATCH)
    writer.add_vision_embedding_length(WIDTH)
    writer.add_vision_feed_forward_length(FFN)
    writer.add_vision_projection_dim(TEXT_WIDTH)
    writer.add_vision_block_count(BLOCKS)
    writer.add_vision_head_count(HEADS)
    writer.add_vision_attention_layernorm_eps(1e-5)
    writer.add_vision_image_mean([0.5, 0.5, 0.5])
    writer.add_vision_image_std([0.5, 0.5, 0.5])
    writer.add_vision_use_gelu(True)

    def random(name: str, *shape: int) -> None:
        writer.add_tensor(name, rng.normal(0.0, 0.5, shape).astype(np.float32))

    def constant(name: str, size: int, value: float) -> None:
        writer.add_tensor(name, np.full(size, value, np.float32))

    random("v.patch_embd.weight", WIDTH, 3, PATCH, PATCH)
    constant("v.patch_embd.bias", WIDTH, 0.0)
    random("v.class_embd", WIDTH)
    random("v.position_embd.weight", (IMAGE // PATCH) ** 2 + 1, WIDTH)
    constant("v.pre_ln.weight", WIDTH, 1.0)
    constant("v.pre_ln.bias", WIDTH, 0.0)
    for block in range(BLOCKS):
        prefix = f"v.blk.{block}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            random(f"{prefix}.{name}.weight", WIDTH, WIDTH)
            constant(f"{prefix}.{name}.bias", WIDTH, 0.0)
        for norm in ("ln1", "ln2"):
            constant(f"{prefix}.{norm}.weight", WIDTH, 1.0)
            constant(f"{prefix}.{norm}.bias", WIDTH, 0.0)
        random(f"{prefix}.ffn_up.weight", FFN, WIDTH)
        constant(f"{prefix}.ffn_up.bias", FFN, 0.0)
        random(f"{prefix}.ffn_down.weight", WIDTH, FFN)
        constant(f"{prefix}.ffn_down.bias", WIDTH, 0.0)
    random("mm.0.weight", TEXT_WIDTH, WIDTH)
    constant("mm.0.bias", TEXT_WIDTH, 0.0)
    random("mm.2.weight", TEXT_WIDTH, TEXT_WIDTH)
    constant("mm.2.bias", TEXT_WIDTH, 0.0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
