"""The space-time ViT against timm's image ViT and against an explicit attention reference."""

import pytest
import timm
import torch

from vtr.checkpoints import CheckpointMismatch, load_image_vit
from vtr.models.layers import SpaceTimeAttention
from vtr.models.video_encoder import SpaceTimeViT

SMALL = dict(img_size=32, patch_size=8, width=48, depth=2, heads=3)


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory):
    torch.manual_seed(0)
    ref = timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=10
    ).eval()
    path = tmp_path_factory.mktemp("timm") / "vit.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


def test_fresh_encoder_with_image_weights_equals_the_image_vit(timm_file):
    ref, path = timm_file
    enc = SpaceTimeViT(**SMALL).eval()
    load_image_vit(enc, str(path))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(enc(x[:, None]).tokens, ref.forward_features(x), atol=1e-5)
        # The temporal branch adds exactly zero at init: a multi-frame forward sees zero outputs.
        seen = []
        for block in enc.blocks:
            block.attn_time.register_forward_hook(lambda m, i, out: seen.append(out[0]))
        enc(torch.randn(2, 3, 3, 32, 32))
        assert len(seen) == 2 and all(s.abs().max() == 0 for s in seen)


def test_image_weights_resample_position_embedding(timm_file):
    _, path = timm_file
    enc = SpaceTimeViT(**{**SMALL, "img_size": 48})
    load_image_vit(enc, str(path))  # 4x4 grid -> 6x6 grid
    assert enc.pos_embed.shape == (1, 37, 48)


def test_wrong_architecture_lists_mismatched_keys(timm_file):
    _, path = timm_file
    enc = SpaceTimeViT(**{**SMALL, "width": 64, "heads": 4})
    with pytest.raises(CheckpointMismatch, match="shape mismatch: .*cls_token"):
        load_image_vit(enc, str(path))


def _reference_attention(attn: SpaceTimeAttention, x, frames, axis):
    """Full softmax attention with an explicit boolean mask: who may attend to whom."""
    b, length, dim = x.shape
    n = (length - 1) // frames
    h, d = attn.num_heads, attn.head_dim
    q, k, v = attn.qkv(x).reshape(b, length, 3, h, d).permute(2, 0, 3, 1, 4)
    frame = torch.arange(length - 1) // n
    pos = torch.arange(length - 1) % n
    key = frame if axis == "space" else pos
    allowed = torch.ones(length, length, dtype=torch.bool)
    allowed[1:, 1:] = key[:, None] == key[None, :]
    logits = (q @ k.transpose(-1, -2)) * d**-0.5
    weights = logits.masked_fill(~allowed, float("-inf")).softmax(-1)
    out = (weights @ v).transpose(1, 2).reshape(b, length, dim)
    return attn.proj(out), weights[:, :, 0, 1:].mean(1)


@pytest.mark.parametrize("frames", [3, 1])  # 1: an image, which takes the shortcuts for one frame
@pytest.mark.parametrize("axis", ["space", "time"])
def test_divided_attention_matches_masked_full_attention(axis, frames):
    torch.manual_seed(0)
    attn = SpaceTimeAttention(24, 3)
    x = torch.randn(2, 1 + frames * 5, 24)
    out, cls_attn = attn(x, frames, axis, return_cls_attn=True)
    ref_out, ref_attn = _reference_attention(attn, x, frames, axis)
    assert torch.allclose(out, ref_out, atol=1e-5)
    assert torch.allclose(cls_attn, ref_attn, atol=1e-6)
    attn.fused = False
    assert torch.allclose(attn(x, frames, axis)[0], ref_out, atol=1e-5)


def test_mask_token_replaces_hidden_patches_only():
    torch.manual_seed(0)
    enc = SpaceTimeViT(**SMALL)
    video = torch.randn(1, 2, 3, 32, 32)
    mask = torch.zeros(1, 2, 16, dtype=torch.bool)
    mask[0, 1, 3] = True
    plain, masked = enc.embed(video), enc.embed(video, mask)
    changed = (plain - masked).abs().sum(-1)[0, 1:].reshape(2, 16) > 0
    assert changed.equal(mask[0])
    # Hidden patches no longer depend on the pixels.
    other = enc.embed(video + torch.randn_like(video) * (torch.arange(32) < 8).float(), mask)
    assert torch.allclose(masked[0, 1 + 16 + 3], other[0, 1 + 16 + 3])


def test_temporal_embedding_interpolates_for_longer_clips():
    enc = SpaceTimeViT(**{**SMALL, "num_frames": 4})
    with torch.no_grad():
        enc.temporal_embed.copy_(torch.arange(4.0).view(1, 4, 1).expand(1, 4, 48))
    stretched = enc.temporal_embedding(7)[0, :, 0]
    assert torch.allclose(stretched, torch.linspace(0, 3, 7))
    assert torch.equal(enc.temporal_embedding(2)[0, :, 0], torch.tensor([0.0, 1.0]))
    assert enc(torch.randn(1, 7, 3, 32, 32)).tokens.shape == (1, 1 + 7 * 16, 48)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = SpaceTimeViT(**SMALL)
    b = SpaceTimeViT(**SMALL, grad_checkpointing=True)
    b.load_state_dict(a.state_dict())
    video = torch.randn(2, 2, 3, 32, 32)
    for enc in (a, b):
        enc.train()
        enc(video).tokens.pow(2).mean().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        if pa.grad is None:  # the mask token is unused without a mask
            assert pb.grad is None, name
        else:
            assert torch.allclose(pa.grad, pb.grad, atol=1e-6), name


def test_temperature_is_fixed_by_default_and_capped_when_learnable(tmp_path):
    from helpers.text import word_tokenizer

    from vtr.config import load_config
    from vtr.models import DualEncoder

    word_tokenizer(tmp_path, ["a", "red", "circle"]).save_pretrained(tmp_path / "tok")
    small = ["model.video.img_size=32", "model.video.width=48", "model.video.depth=1", "model.video.heads=3",
             "model.video.pretrained=null", f"model.text.name_or_path={tmp_path / 'tok'}",
             "model.text.pretrained=false", "model.text.width=32", "model.text.depth=1",
             "model.text.heads=2"]  # fmt: skip
    fixed = DualEncoder(load_config(None, small).model)
    assert not fixed.logit_scale.requires_grad and abs(fixed.scale.item() - 20.0) < 1e-4  # 1 / 0.05
    learnable = DualEncoder(load_config(None, small + ["model.learn_temperature=true"]).model)
    assert learnable.logit_scale.requires_grad
    with torch.no_grad():
        learnable.logit_scale.fill_(10.0)  # exp(10) is far above the cap
    assert abs(learnable.scale.item() - 100.0) < 1e-3


@pytest.mark.parametrize("frames", [4, 1])
@pytest.mark.parametrize("axis", ["space", "time"])
def test_divided_attention_under_cpu_bf16_autocast_matches_the_fp32_reference(axis, frames):
    """bf16 on a CPU takes the explicit attention path; it must compute the same function."""
    torch.manual_seed(0)
    attn = SpaceTimeAttention(32, 2)
    x = torch.randn(2, 1 + frames * 9, 32)
    with torch.autocast("cpu", torch.bfloat16):
        out, cls_attn = attn(x, frames, axis, return_cls_attn=True)
    ref_out, ref_attn = _reference_attention(attn, x, frames, axis)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref_out).abs().max() < 3e-2 * ref_out.abs().max()
    assert torch.allclose(cls_attn, ref_attn, atol=2e-3)


def test_stacked_views_equal_separate_forward_passes(tmp_path):
    """``embed_video_views`` runs the masked and unmasked clips as one batch; embeddings, tokens and
    gradients must be those of one forward pass per view."""
    from helpers.text import word_tokenizer

    from vtr.config import load_config
    from vtr.models import DualEncoder

    word_tokenizer(tmp_path, ["a"]).save_pretrained(tmp_path / "tok")
    small = ["model.video.img_size=32", "model.video.patch_size=8", "model.video.width=48", "model.video.depth=2",
             "model.video.heads=3", "model.video.pretrained=null", f"model.text.name_or_path={tmp_path / 'tok'}",
             "model.text.pretrained=false", "model.text.width=32", "model.text.depth=1",
             "model.text.heads=2"]  # fmt: skip
    torch.manual_seed(0)
    model = DualEncoder(load_config(None, small).model).double()
    for frames in (2, 1):
        video = torch.randn(3, frames, 3, 32, 32, dtype=torch.float64)
        mask = torch.rand(3, frames * 16) < 0.5
        views = model.embed_video_views(video, [mask, None])
        separate = [model.embed_video(video, mask=mask), model.embed_video(video)]
        for (emb, out), (ref_emb, ref_out) in zip(views, separate, strict=True):
            assert torch.allclose(emb, ref_emb, atol=1e-12) and torch.allclose(out.tokens, ref_out.tokens, atol=1e-12)
        weights = torch.randn(2, 3, model.video_proj.out_features, dtype=torch.float64)

        def grads(pairs, weights=weights):
            model.zero_grad()
            sum((w * emb).sum() + out.tokens.square().mean() for w, (emb, out) in zip(weights, pairs)).backward()
            return [p.grad.clone() for p in model.video.parameters() if p.grad is not None]

        stacked = grads(model.embed_video_views(video, [mask, None]))
        one_by_one = grads([model.embed_video(video, mask=mask), model.embed_video(video)])
        assert len(stacked) == len(one_by_one) > 0
        assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(stacked, one_by_one, strict=True))
