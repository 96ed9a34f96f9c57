"""Contrastive loss against a float64 hand computation; MVM loss masking."""

import torch
import torch.nn.functional as F

from vtr.objectives.contrastive import contrastive_loss, gather_with_grad
from vtr.objectives.mvm import masked_regression_loss


def test_contrastive_loss_matches_hand_computation():
    torch.manual_seed(0)
    v = F.normalize(torch.randn(5, 8, dtype=torch.float64), dim=-1)
    t = F.normalize(torch.randn(5, 8, dtype=torch.float64), dim=-1)
    scale = 20.0
    sim = (v @ t.T).tolist()
    total = 0.0
    for i in range(5):
        row = [scale * s for s in sim[i]]
        col = [scale * sim[j][i] for j in range(5)]
        total += -row[i] + torch.tensor(row).logsumexp(0).item()
        total += -col[i] + torch.tensor(col).logsumexp(0).item()
    expected = total / 10
    assert abs(contrastive_loss(v, t, scale).item() - expected) < 1e-6


def test_contrastive_loss_is_low_for_aligned_pairs():
    v = F.normalize(torch.randn(16, 32), dim=-1)
    aligned = contrastive_loss(v, v, 20.0)
    shuffled = contrastive_loss(v, v[torch.randperm(16)], 20.0)
    assert aligned < 0.1 < shuffled


def test_gather_is_identity_in_one_process():
    x = torch.randn(3, 4)
    gathered, offset = gather_with_grad(x)
    assert gathered is x and offset == 0


def test_mvm_loss_ignores_visible_patches_and_is_zero_at_the_target():
    torch.manual_seed(0)
    target = torch.randn(2, 10, 6)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[:, [1, 4, 7]] = True
    for kind in ("mse", "smooth_l1", "cosine"):
        pred = target.clone()
        assert masked_regression_loss(pred, target, mask, kind).abs() < 1e-6
        pred[~mask] += 5.0  # visible positions: no effect
        assert masked_regression_loss(pred, target, mask, kind).abs() < 1e-6
        pred[mask] += torch.randn_like(pred[mask])
        assert masked_regression_loss(pred, target, mask, kind) > 1e-3
    pred = target + 1.0
    assert torch.isclose(masked_regression_loss(pred, target, mask, "mse"), torch.tensor(1.0))
    assert masked_regression_loss(pred, target, torch.zeros_like(mask)) == 0


def test_learning_rate_schedule_warms_up_then_follows_a_cosine():
    import math

    from vtr.modules.retrieval import lr_lambda

    f = lr_lambda("cosine", warmup=4, total=104, min_ratio=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0 and abs(f(104) - 0.1) < 1e-12
    assert abs(f(54) - (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))) < 1e-12
    assert lr_lambda("constant", 0, 10, 0.0)(7) == 1.0


def test_weight_decay_spares_norms_biases_embeddings_and_tokens(tiny_demo_root):
    from pathlib import Path

    from helpers.runs import tiny_overrides
    from omegaconf import OmegaConf

    from vtr.config import load_config
    from vtr.modules.retrieval import VideoTextModule

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "experiments/pretrain/demo.yaml", tiny_overrides(tiny_demo_root, Path("/tmp"), 1))
    module = VideoTextModule(OmegaConf.to_container(cfg, resolve=True))
    module.trainer = type("T", (), {"estimated_stepping_batches": 10})()
    groups = module.configure_optimizers()["optimizer"].param_groups
    names = {id(p): n for n, p in module.named_parameters()}
    decayed = {names[id(p)] for p in groups[0]["params"]}
    spared = {names[id(p)] for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == cfg.optim.weight_decay and groups[1]["weight_decay"] == 0
    assert {
        "model.video.pos_embed",
        "model.video.cls_token",
        "model.video.temporal_embed",
        "model.video.norm.weight",
    } <= spared
    assert "model.text.model.embeddings.word_embeddings.weight" in spared
    assert "model.video.blocks.0.attn.qkv.weight" in decayed and "model.video_proj.weight" in decayed
    assert not any(n.startswith("snapshot.") for n in decayed | spared)  # the snapshot is not optimised


def test_mvm_warm_up_trains_contrastive_only_and_gives_ddp_an_exact_zero_term(tiny_demo_root, monkeypatch):
    """Before ``start_step`` no clip is masked; under DDP the head and the mask token still get a
    (zero) gradient, which the reducer needs, and the loss is unchanged by it."""
    from pathlib import Path

    from helpers.runs import tiny_overrides
    from omegaconf import OmegaConf

    import vtr.objectives.mvm as mvm
    from vtr.config import load_config
    from vtr.modules.retrieval import VideoTextModule

    root = Path(__file__).resolve().parents[1]
    overrides = tiny_overrides(tiny_demo_root, Path("/tmp"), 1) + ["model.mvm.start_step=5"]
    cfg = load_config(root / "experiments/pretrain/demo.yaml", overrides)
    module = VideoTextModule(OmegaConf.to_container(cfg, resolve=True)).eval()  # no dropout: comparable forwards
    torch.manual_seed(0)
    video = torch.randn(3, 2, 3, 32, 32)
    text = {"input_ids": torch.randint(5, 50, (3, 6)), "attention_mask": torch.ones(3, 6, dtype=torch.long)}
    batch = {"webvid": {"video": video, "text": text}}
    alone, _, _ = module.compute_losses(batch)
    assert set(alone) == {"contrastive"}
    model = module.model
    expected = contrastive_loss(model.embed_video(video)[0], model.embed_text(text)[0], model.scale)
    assert torch.allclose(alone["contrastive"], expected)  # the unmasked clip
    monkeypatch.setattr(mvm, "is_distributed", lambda: True)
    losses, weights, _ = module.compute_losses(batch)
    assert set(losses) == {"contrastive", "mvm"} and losses["mvm"].item() == 0.0
    assert torch.equal(losses["contrastive"], alone["contrastive"])
    sum(weights[k] * v for k, v in losses.items()).backward()
    for param in [*module.mvm.head.parameters(), module.model.video.mask_token]:
        assert param.grad is not None and not param.grad.any()
