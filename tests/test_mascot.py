"""MASCOT: completion loss masking, text-conditioned decoder, both masked views train the encoder."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from vtr.config import ConfigError, load_config
from vtr.modules.retrieval import VideoTextModule
from vtr.objectives.mascot import (
    CompletionDecoder,
    kl_to_full,
    mean_over_reconstructed,
    split_by_mask,
    symmetric_kl,
)
from vtr.objectives.masking import attention_guided_masks
from vtr.objectives.mvm import masked_regression_loss

ROOT = Path(__file__).resolve().parents[1]


def test_completion_loss_counts_only_hidden_high_informed_patches():
    torch.manual_seed(0)
    b, t, n, d = 2, 2, 16, 8
    attn = torch.rand(b, t, n)
    informed, high_mask, _ = attention_guided_masks(
        attn, rho=0.5, ratio=0.25, generator=torch.Generator().manual_seed(0)
    )
    informed, mask = informed.flatten(1), high_mask.flatten(1)
    target = torch.randn(b, t * n, d)
    # The decoder predicts at hidden positions only; corrupting any other position is a no-op.
    hidden_target, _ = split_by_mask(target, mask)
    counted, _ = split_by_mask(informed.unsqueeze(-1), mask)
    counted = counted.squeeze(-1)
    assert counted.all()  # with rho >= ratio, the high mask hides high-informed patches only
    pred = hidden_target.clone()
    assert masked_regression_loss(pred, hidden_target, counted) == 0
    pred[0, 0] += 1.0
    assert masked_regression_loss(pred, hidden_target, counted) > 0
    # A low-informed position among the hidden ones (as with the random-mask ablation) is ignored.
    counted_low = counted.clone()
    counted_low[0, 0] = False
    assert masked_regression_loss(pred, hidden_target, counted_low) == 0


def test_decoder_output_depends_on_the_caption_tokens_only_with_text_context():
    torch.manual_seed(0)
    queries, visible = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    text_a, text_b = torch.randn(2, 4, 12), torch.randn(2, 4, 12)
    text_mask = torch.ones(2, 4, dtype=torch.long)
    with_text = CompletionDecoder(16, 12, 8, depth=1, heads=2, text_context=True)
    assert not torch.allclose(
        with_text(queries, visible, text_a, text_mask), with_text(queries, visible, text_b, text_mask)
    )
    # Padding tokens are not attended to.
    text_mask[:, -1] = 0
    text_c = text_a.clone()
    text_c[:, -1] += 10
    assert torch.allclose(
        with_text(queries, visible, text_a, text_mask), with_text(queries, visible, text_c, text_mask), atol=1e-6
    )
    without = CompletionDecoder(16, 12, 8, depth=1, heads=2, text_context=False)
    assert torch.equal(without(queries, visible, text_a, text_mask), without(queries, visible, text_b, text_mask))


def test_symmetric_kl_is_zero_for_equal_views_and_symmetric():
    torch.manual_seed(0)
    a, b, text = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    assert symmetric_kl(a, a, text, 5.0).abs() < 1e-6
    assert torch.isclose(symmetric_kl(a, b, text, 5.0), symmetric_kl(b, a, text, 5.0))
    assert symmetric_kl(a, b, text, 5.0) > 0


def _module(tiny_demo_root, *overrides):
    from helpers.runs import tiny_overrides

    cfg = load_config(
        ROOT / "experiments/finetune/msrvtt_mascot_masked.yaml",
        tiny_overrides(tiny_demo_root, Path("/tmp"), 1) + list(overrides),
    )
    return VideoTextModule(OmegaConf.to_container(cfg, resolve=True))


def _batch(module, b=3, t=2):
    torch.manual_seed(1)
    res = module.model.video.patch_embed.img_size[0]
    return {
        "msrvtt": {
            "video": torch.randn(b, t, 3, res, res),
            "text": {"input_ids": torch.randint(5, 50, (b, 7)), "attention_mask": torch.ones(b, 7, dtype=torch.long)},
        }
    }


def test_gradients_reach_the_encoder_through_both_masked_views(tiny_demo_root):
    module = _module(tiny_demo_root)
    losses, weights, _ = module.compute_losses(_batch(module))
    assert set(losses) == {"contrastive", "dual_contrastive", "consistency", "completion"}
    for name in ("contrastive", "dual_contrastive"):  # each view alone trains the video encoder
        module.zero_grad()
        losses[name].backward(retain_graph=True)
        assert module.model.video.blocks[0].attn.qkv.weight.grad.abs().sum() > 0, name
        assert module.model.video.mask_token.grad.abs().sum() > 0, name
    module.zero_grad()
    losses["completion"].backward(retain_graph=True)
    assert module.mascot.decoder.head.weight.grad.abs().sum() > 0
    assert module.model.video.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.snapshot.parameters())


def test_evaluation_applies_no_mask(tiny_demo_root):
    module = _module(tiny_demo_root).eval()
    batch = _batch(module)["msrvtt"]
    batch.update(video_id=["a", "b", "c"], caption_video_id=["a", "b", "c"], caption_id=["a#0", "b#0", "c#0"])
    with torch.no_grad():
        out = module.validation_step(batch, 0)
        assert torch.allclose(out["video"], module.model.embed_video(batch["video"])[0])


def test_ablation_switches(tiny_demo_root):
    single = _module(tiny_demo_root, "model.mascot.dual_mask=false")
    assert set(single.compute_losses(_batch(single))[0]) == {"contrastive", "completion"}
    random_masks = _module(tiny_demo_root, "model.mascot.masking=random")
    assert "completion" in random_masks.compute_losses(_batch(random_masks))[0]


def test_mascot_and_mvm_together_is_a_config_error():
    with pytest.raises(ConfigError, match="model.mvm.enabled"):
        load_config(ROOT / "experiments/finetune/msrvtt_mascot_masked.yaml", ["model.mvm.enabled=true"])


@pytest.mark.parametrize("rho", ["0.5", "0.25"])
def test_split_masking_with_rho_not_above_the_mask_ratio_is_a_config_error(rho):
    overrides = ["model.mascot.masking=split", f"model.mascot.rho={rho}", "model.mascot.mask_ratio=0.5"]
    with pytest.raises(ConfigError, match=r"model\.mascot\.rho.*model\.mascot\.mask_ratio"):
        load_config(ROOT / "experiments/finetune/msrvtt_mascot_masked.yaml", overrides)
    load_config(ROOT / "experiments/finetune/msrvtt_mascot_masked.yaml", overrides[:1] + ["model.mascot.rho=0.75"])


@pytest.mark.parametrize("recipe", ["finetune/msrvtt_mascot", "finetune/msrvtt_mascot_sampled", "pretrain/demo_mascot"])
def test_mascot_recipes_validate_with_random_masks(recipe):
    cfg = load_config(ROOT / f"experiments/{recipe}.yaml")
    assert cfg.model.mascot.masking in ("sampled", "random")


def _completion(tiny_demo_root, *overrides):
    torch.manual_seed(0)  # the same weights for every call
    module = _module(tiny_demo_root, *overrides)
    return module.compute_losses(_batch(module))[0]["completion"]


def test_a_view_with_nothing_to_reconstruct_does_not_dilute_the_completion_loss(tiny_demo_root):
    # masking=random counts every patch as informed, so the low view reconstructs none.
    single = _completion(tiny_demo_root, "model.mascot.masking=random", "model.mascot.reconstruct_low=false")
    both = _completion(tiny_demo_root, "model.mascot.masking=random", "model.mascot.reconstruct_low=true")
    assert single > 0 and torch.allclose(both, single)


def test_mean_over_reconstructed_views():
    losses, counts = [torch.tensor(2.0), torch.tensor(0.0)], [torch.tensor(5), torch.tensor(0)]
    assert mean_over_reconstructed(losses, counts) == 2.0
    assert mean_over_reconstructed([torch.tensor(2.0), torch.tensor(4.0)], [torch.tensor(5), torch.tensor(1)]) == 3.0
    assert mean_over_reconstructed([torch.tensor(0.0)], [torch.tensor(0)]) == 0.0


def test_kl_to_full_against_a_float64_hand_computation():
    torch.manual_seed(0)
    high, low, full = (torch.randn(4, 8, requires_grad=True) for _ in range(3))
    text = torch.randn(4, 8)
    scale = 5.0

    def log_probs(video):
        logits = scale * video.double() @ text.double().T
        return logits - logits.exp().sum(-1, keepdim=True).log()

    p_full = log_probs(full.detach()).exp()
    hand = sum((p_full * (p_full.log() - log_probs(v.detach()))).sum(-1).mean() for v in (high, low)) / 2
    loss = kl_to_full([high, low], full, text, scale)
    assert torch.isclose(loss.double(), hand, rtol=1e-5)
    assert kl_to_full([full.detach()], full, text, scale).abs() < 1e-6
    loss.backward()
    assert full.grad is None and high.grad.abs().sum() > 0  # the unmasked view is the teacher only


def test_kl_to_full_and_the_masked_contrastive_weight_in_a_step(tiny_demo_root):
    module = _module(
        tiny_demo_root,
        "model.mascot.consistency=kl_to_full",
        "model.mascot.full_view=true",
        "model.mascot.masked_contrastive_weight=0.5",
        "model.mascot.dual_contrastive_weight=0.4",
    )
    losses, weights, _ = module.compute_losses(_batch(module))
    assert losses["consistency"] > 0
    assert weights["contrastive"] == 0.5 and weights["dual_contrastive"] == pytest.approx(0.2)
    assert weights["full_contrastive"] == 1.0


def test_kl_to_full_without_the_full_view_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model\.mascot\.consistency.*model\.mascot\.full_view"):
        load_config(ROOT / "experiments/finetune/msrvtt_mascot_masked.yaml", ["model.mascot.consistency=kl_to_full"])
