"""Tiny checkpoints in the released Frozen-in-Time / MILES layout, and a float64 reference of the
released model's forward pass written with plain tensor ops (masks, unfold, matmuls), independent
of the project's modules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel

WIDTH, DEPTH, PATCH, IMG, FRAMES, EMBED, TEXT_WIDTH = 128, 2, 8, 32, 4, 24, 64
HEADS = WIDTH // 64  # what the loader assumes for released checkpoints


def released_video_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Every parameter random (the temporal branch included, so the block wiring matters)."""
    g = torch.Generator().manual_seed(seed)
    d, n = WIDTH, (IMG // PATCH) ** 2

    def r(*shape, std=0.1):
        return torch.randn(*shape, generator=g) * std

    def norm(prefix):
        return {f"{prefix}.weight": 1 + r(d), f"{prefix}.bias": r(d)}

    sd = {
        "cls_token": r(1, 1, d, std=0.5),
        "pos_embed": r(1, 1 + n, d, std=0.5),
        "temporal_embed": r(1, FRAMES, d, std=0.5),
        "patch_embed.proj.weight": r(d, 3, PATCH, PATCH, std=0.05),
        "patch_embed.proj.bias": r(d),
        **norm("norm"),
    }
    for i in range(DEPTH):
        b = f"blocks.{i}"
        sd.update({**norm(f"{b}.norm1"), **norm(f"{b}.norm2"), **norm(f"{b}.norm3")})
        for attn in ("attn", "timeattn"):
            sd.update({f"{b}.{attn}.qkv.weight": r(3 * d, d), f"{b}.{attn}.qkv.bias": r(3 * d),
                       f"{b}.{attn}.proj.weight": r(d, d), f"{b}.{attn}.proj.bias": r(d)})  # fmt: skip
        sd.update({f"{b}.mlp.fc1.weight": r(4 * d, d), f"{b}.mlp.fc1.bias": r(4 * d),
                   f"{b}.mlp.fc2.weight": r(d, 4 * d), f"{b}.mlp.fc2.bias": r(d)})  # fmt: skip
    return sd


def tiny_text_model(family: str, vocab_size: int, seed: int = 0):
    """A random tiny DistilBERT or BERT (width 64, 2 layers, 1 head), in float64."""
    torch.manual_seed(seed)
    if family == "distilbert":
        sizes = dict(dim=TEXT_WIDTH, n_layers=2, n_heads=1, hidden_dim=4 * TEXT_WIDTH)
    else:
        sizes = dict(hidden_size=TEXT_WIDTH, num_hidden_layers=2, num_attention_heads=1)
        sizes["intermediate_size"] = 4 * TEXT_WIDTH
    model = AutoModel.from_config(AutoConfig.for_model(family, vocab_size=vocab_size, pad_token_id=0, **sizes))
    return model.double().eval()


def released_checkpoint(text_model, proj_name: str, module_prefix: bool, seed: int = 0) -> dict:
    """The trainer's checkpoint dict: ``state_dict`` with the released names (and ``module.``)."""
    g = torch.Generator().manual_seed(seed + 1)
    state = {f"video_model.{k}": v for k, v in released_video_state(seed).items()}
    state.update({f"text_model.{k}": v.float() for k, v in text_model.state_dict().items()})
    state["vid_proj.0.weight"] = torch.randn(EMBED, WIDTH, generator=g) * 0.1
    state["vid_proj.0.bias"] = torch.randn(EMBED, generator=g) * 0.1
    state[f"{proj_name}.1.weight"] = torch.randn(EMBED, TEXT_WIDTH, generator=g) * 0.1
    state[f"{proj_name}.1.bias"] = torch.randn(EMBED, generator=g) * 0.1
    if module_prefix:
        state = {f"module.{k}": v for k, v in state.items()}
    return {"arch": "FrozenInTime", "epoch": 3, "state_dict": state, "optimizer": {}, "monitor_best": 0.5}


def _ln(x, sd, name):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-6)


def _attention(x, sd, name, frames, axis, heads):
    """Masked full attention: [CLS] sees all; a patch sees [CLS] and its frame (space) or its
    position across frames (time)."""
    b, length, d = x.shape
    n = (length - 1) // frames
    qkv = x @ sd[f"{name}.qkv.weight"].T + sd[f"{name}.qkv.bias"]
    q, k, v = qkv.reshape(b, length, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    idx = torch.arange(length - 1)
    group = idx // n if axis == "space" else idx % n
    allowed = torch.ones(length, length, dtype=torch.bool)
    allowed[1:, 1:] = group[:, None] == group[None, :]
    logits = (q @ k.transpose(-1, -2)) * (d // heads) ** -0.5
    out = logits.masked_fill(~allowed, float("-inf")).softmax(-1) @ v
    return out.transpose(1, 2).reshape(b, length, d) @ sd[f"{name}.proj.weight"].T + sd[f"{name}.proj.bias"]


def reference_video_features(sd: dict, video: torch.Tensor, heads: int = HEADS) -> torch.Tensor:
    """The released encoder's final-norm [CLS] feature, float64. ``sd``: ``video_model`` keys."""
    sd = {k: v.double() for k, v in sd.items()}
    b, t = video.shape[:2]
    d = sd["pos_embed"].shape[-1]
    p = sd["patch_embed.proj.weight"].shape[-1]
    cols = F.unfold(video.double().flatten(0, 1), p, stride=p)  # (B*T, 3*p*p, N)
    n = cols.shape[-1]
    tokens = cols.transpose(1, 2) @ sd["patch_embed.proj.weight"].reshape(d, -1).T + sd["patch_embed.proj.bias"]
    tokens = tokens.reshape(b, t * n, d)
    tokens = tokens + sd["pos_embed"][:, 1:].repeat(1, t, 1) + sd["temporal_embed"][:, :t].repeat_interleave(n, 1)
    cls = (sd["cls_token"] + sd["pos_embed"][:, :1]).expand(b, -1, -1)
    x = torch.cat([cls, tokens], 1)
    for i in range(DEPTH):
        blk = f"blocks.{i}"
        time_out = _attention(_ln(x, sd, f"{blk}.norm3"), sd, f"{blk}.timeattn", t, "time", heads)
        x = x + _attention(_ln(x + time_out, sd, f"{blk}.norm1"), sd, f"{blk}.attn", t, "space", heads)
        h = F.gelu(_ln(x, sd, f"{blk}.norm2") @ sd[f"{blk}.mlp.fc1.weight"].T + sd[f"{blk}.mlp.fc1.bias"])
        x = x + h @ sd[f"{blk}.mlp.fc2.weight"].T + sd[f"{blk}.mlp.fc2.bias"]
    return _ln(x, sd, "norm")[:, 0]


def reference_embeddings(ckpt: dict, text_model, video, text, pooler: bool = False):
    """Unit-norm joint embeddings of the released model: video Linear, text ReLU -> Linear on the
    [CLS] hidden state (or BERT's pooler output)."""
    state = {k.removeprefix("module."): v.double() for k, v in ckpt["state_dict"].items()}
    video_sd = {k[len("video_model.") :]: v for k, v in state.items() if k.startswith("video_model.")}
    feats = reference_video_features(video_sd, video)
    v = F.normalize(feats @ state["vid_proj.0.weight"].T + state["vid_proj.0.bias"], dim=-1)
    proj = "txt_proj" if "txt_proj.1.weight" in state else "text_proj"
    with torch.no_grad():
        out = text_model(input_ids=text["input_ids"], attention_mask=text["attention_mask"])
    sentence = out.pooler_output if pooler else out.last_hidden_state[:, 0]
    t = F.normalize(sentence.relu() @ state[f"{proj}.1.weight"].T + state[f"{proj}.1.bias"], dim=-1)
    return v, t
