"""The switches of the "does masked modeling help in miniature" study: which clip the contrastive
loss sees (``model.mvm.contrastive_view``, ``model.mascot.full_view``), when the snapshot starts
following the online encoder (``model.mvm.ema_start_step``), and the two diagnostics
(``train/snapshot_cls_cos``, ``val/mvm_heldout``), each against a hand computation."""

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from helpers.runs import scalars, tiny_overrides
from omegaconf import OmegaConf

from vtr.build import build_datamodule, build_module, build_trainer
from vtr.config import load_config
from vtr.modules.retrieval import VideoTextModule
from vtr.objectives.masking import make_mask
from vtr.objectives.mvm import regression_diagnostics
from vtr.objectives.snapshot import regression_targets

ROOT = Path(__file__).resolve().parents[1]
MILES = ROOT / "experiments/pretrain/demo.yaml"
MASCOT = ROOT / "experiments/finetune/msrvtt_mascot_masked.yaml"


def _module(recipe: Path, data_root: Path, *overrides: str) -> VideoTextModule:
    cfg = load_config(recipe, tiny_overrides(data_root, Path("/tmp"), 1) + list(overrides))
    torch.manual_seed(0)  # the same weights for every variant
    return VideoTextModule(OmegaConf.to_container(cfg, resolve=True)).eval()  # no dropout: comparable forwards


def _batch(b: int = 4):
    torch.manual_seed(1)
    video = torch.randn(b, 2, 3, 32, 32)
    text = {"input_ids": torch.randint(5, 50, (b, 7)), "attention_mask": torch.ones(b, 7, dtype=torch.long)}
    return video, text


def _infonce(video: torch.Tensor, text: torch.Tensor, scale: float) -> float:
    """Symmetric InfoNCE written out in float64: row i of video matches row i of text."""
    logits = scale * video.double() @ text.double().T
    n = logits.shape[0]
    total = sum(-2 * logits[i, i] + logits[i].logsumexp(0) + logits[:, i].logsumexp(0) for i in range(n))
    return float(total / (2 * n))


def _unmasked_infonce(module: VideoTextModule, video, text) -> float:
    with torch.no_grad():
        return _infonce(module.model.embed_video(video)[0], module.model.embed_text(text)[0], float(module.model.scale))


@pytest.mark.parametrize("view", ["masked", "full", "both"])
def test_mvm_contrastive_view(view, tiny_demo_root):
    video, text = _batch()
    module = _module(MILES, tiny_demo_root, f"model.mvm.contrastive_view={view}")
    losses, weights, _ = module.compute_losses({"webvid": {"video": video, "text": text}})
    masked = _module(MILES, tiny_demo_root).compute_losses({"webvid": {"video": video, "text": text}})[0]
    unmasked = _unmasked_infonce(module, video, text)
    assert abs(masked["contrastive"].item() - unmasked) > 1e-3  # masking changes the embedding
    if view == "masked":
        assert set(losses) == {"contrastive", "mvm"} and weights["contrastive"] == 1.0
    if view == "full":
        assert set(losses) == {"full_contrastive", "mvm"} and weights["full_contrastive"] == 1.0
    if view == "both":  # the mean of the two losses
        assert set(losses) == {"contrastive", "full_contrastive", "mvm"}
        assert weights["contrastive"] == weights["full_contrastive"] == 0.5
        assert torch.allclose(losses["contrastive"], masked["contrastive"])
    if view != "masked":
        assert losses["full_contrastive"].item() == pytest.approx(unmasked, rel=1e-5)
        module.zero_grad()
        losses["full_contrastive"].backward()  # the unmasked forward trains the encoder
        assert module.model.video.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert torch.allclose(losses["mvm"], masked["mvm"])  # the same masks and regression either way


def test_mascot_full_view_adds_the_unmasked_clip_beside_the_two_masked_views(tiny_demo_root):
    video, text = _batch()
    module = _module(MASCOT, tiny_demo_root, "model.mascot.full_view=true")
    losses, weights, _ = module.compute_losses({"msrvtt": {"video": video, "text": text}})
    plain = _module(MASCOT, tiny_demo_root).compute_losses({"msrvtt": {"video": video, "text": text}})[0]
    assert set(losses) == {*plain, "full_contrastive"} and weights["full_contrastive"] == 1.0
    assert losses["full_contrastive"].item() == pytest.approx(_unmasked_infonce(module, video, text), rel=1e-5)
    for name, value in plain.items():
        assert torch.allclose(losses[name], value), name


class _SnapshotPerStep(L.Callback):
    """The snapshot and the online encoder after each optimizer step (after SnapshotEMA's turn)."""

    def __init__(self) -> None:
        self.steps: list[tuple[dict, dict]] = []

    def on_train_batch_end(self, trainer, module, *args) -> None:
        clone = lambda m: {k: v.detach().clone() for k, v in m.named_parameters()}  # noqa: E731
        self.steps.append((clone(module.snapshot), clone(module.model.video)))


def test_ema_start_step_freezes_then_copies_then_averages(tiny_demo_root, tmp_path):
    overrides = ["model.mvm.ema_momentum=0.9", "model.mvm.ema_start_step=2", "data.val=[]", "data.test=[]"]
    cfg = load_config(MILES, tiny_overrides(tiny_demo_root, tmp_path, steps=3) + overrides)
    module = build_module(cfg)
    with torch.no_grad():  # a snapshot unlike the online encoder
        for p in module.snapshot.parameters():
            p.add_(1.0)
    initial = {k: v.detach().clone() for k, v in module.snapshot.named_parameters()}
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    watch = _SnapshotPerStep()
    trainer.callbacks.append(watch)
    trainer.fit(module, datamodule=build_datamodule(cfg))
    (snap1, online1), (snap2, online2), (snap3, online3) = watch.steps
    for name, value in initial.items():
        assert torch.equal(snap1[name], value), name  # before ema_start_step: untouched
        assert not torch.equal(online1[name], online2[name]) or name.endswith("mask_token")
        assert torch.equal(snap2[name], online2[name]), name  # at it: the online weights of that step
        assert torch.allclose(snap3[name], 0.9 * online2[name] + 0.1 * online3[name], atol=1e-6), name


def test_snapshot_cls_cosine_against_a_hand_computation(tiny_demo_root):
    video, text = _batch()
    module = _module(MILES, tiny_demo_root).train()
    with torch.no_grad():
        for p in module.snapshot.parameters():
            p.add_(0.05 * torch.randn_like(p))
    text_out = module.model.embed_text(text)[1]
    out = module.mvm(video, text_out, module.model, module.snapshot, torch.Generator().manual_seed(0), 0, measure=True)
    assert module.model.video.training  # the extra forward left the encoder in training mode
    module.eval()
    with torch.no_grad():
        a, b = module.snapshot(video).tokens[:, 0].double(), module.model.video(video).tokens[:, 0].double()
    expected = (a * b).sum(-1) / (a.pow(2).sum(-1).sqrt() * b.pow(2).sum(-1).sqrt())
    assert expected.max() < 0.9999  # a snapshot that has drifted, measurably
    assert torch.allclose(out.metrics["snapshot_cls_cos"].double(), expected, atol=1e-5)
    # without measure nothing is computed (it costs a forward pass)
    assert not module.mvm(video, text_out, module.model, module.snapshot, torch.Generator(), 0).metrics


def test_mvm_heldout_is_the_loss_of_the_same_clips_and_masks_at_every_validation(tiny_demo_root, tmp_path):
    cfg = load_config(MILES, tiny_overrides(tiny_demo_root, tmp_path, steps=1) + ["data.test=[]"])
    module = build_module(cfg)
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    datamodule = build_datamodule(cfg)
    first = trainer.validate(module, datamodule=datamodule, verbose=False)[0]["val/mvm_heldout"]
    second = trainer.validate(module, datamodule=datamodule, verbose=False)[0]["val/mvm_heldout"]
    assert first == second

    batch = next(iter(datamodule.val_dataloader()[0]))  # the first batch of the first validation set
    video = batch["video"]
    grid = module.model.video.patch_embed.grid_size
    mvm = cfg.model.mvm
    generator = torch.Generator().manual_seed(cfg.seed)
    mask = make_mask(mvm.mask_type, video.shape[0], video.shape[1], grid, mvm.mask_ratio, generator).flatten(1)
    module.eval()
    with torch.no_grad():
        pred = module.mvm.head(module.model.video(video, mask=mask).tokens[:, 1:]).double()
        target = module.snapshot(video).tokens[:, 1:].double()
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    expected = (pred - target).pow(2).mean(-1)[mask].mean().item()  # MSE over the masked patches only
    assert first == pytest.approx(expected, rel=1e-4)
    logged = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    p, t = pred[mask].numpy(), target[mask].numpy()  # (masked patches, D), float64
    variance = ((t - t.mean(0)) ** 2).mean(0).mean()
    cosine = ((p * t).sum(-1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1))).mean()
    assert logged["val/mvm_heldout_target_var"] == pytest.approx(variance, rel=1e-4)
    assert logged["val/mvm_heldout_nmse"] == pytest.approx(expected / variance, rel=1e-4)
    assert logged["val/mvm_heldout_cos"] == pytest.approx(cosine, rel=1e-4, abs=1e-5)


def test_regression_readings_are_scale_free_and_normed_joint_targets_ignore_the_projection_scale(tiny_demo_root):
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 6, 8, generator=g) * 3 + 1
    pred = target + torch.randn(2, 6, 8, generator=g)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, :4] = True
    one, doubled = regression_diagnostics(pred, target, mask), regression_diagnostics(2 * pred, 2 * target, mask)
    assert doubled["mvm_target_var"].item() == pytest.approx(4 * one["mvm_target_var"].item(), rel=1e-5)
    assert doubled["mvm_nmse"].item() == pytest.approx(one["mvm_nmse"].item(), rel=1e-5)
    assert doubled["mvm_cos"].item() == pytest.approx(one["mvm_cos"].item(), rel=1e-5)
    module = _module(MILES, tiny_demo_root, "model.mvm.target=joint")
    video, _ = _batch()
    with torch.no_grad():
        out = module.snapshot(video)
        raw, normed = (regression_targets(out, module.model, "joint", norm) for norm in (False, True))
        module.model.video_proj.weight.mul_(2)
        module.model.video_proj.bias.mul_(2)
        raw2, normed2 = (regression_targets(out, module.model, "joint", norm) for norm in (False, True))
    assert torch.allclose(raw2, 2 * raw, atol=1e-5)  # the raw joint target follows the projection's scale...
    assert torch.allclose(normed2, normed, atol=1e-4)  # ...the normed one does not
    assert torch.allclose(normed.double().var(-1, unbiased=False), torch.ones(normed.shape[:2], dtype=torch.double),
                          atol=1e-3)  # fmt: skip


def test_a_miles_run_logs_both_diagnostics(tiny_demo_root, tmp_path):
    cfg = load_config(MILES, tiny_overrides(tiny_demo_root, tmp_path, steps=2) + ["data.test=[]", "data.val=[msrvtt]"])
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    trainer.fit(build_module(cfg), datamodule=build_datamodule(cfg))
    logged = scalars(tmp_path / "run")
    assert len(logged["train/snapshot_cls_cos"]) == 2 and len(logged["val/mvm_heldout"]) == 1
    assert all(-1 <= v <= 1 for v in logged["train/snapshot_cls_cos"])
    assert logged["train/snapshot_cls_cos"][0] == pytest.approx(1.0, abs=1e-5)  # the snapshot starts as a copy
    assert len(logged["train/mvm_nmse"]) == 2 and all(0 < v for v in logged["train/mvm_nmse"])
    assert len(logged["val/mvm_heldout_nmse"]) == 1
