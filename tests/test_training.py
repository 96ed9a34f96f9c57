"""A few real training steps of tiny models on the tiny demo corpus."""

import copy
import json
import re
from pathlib import Path

import pytest
import torch
from helpers.runs import custom_scalars_layout, scalars, tiny_overrides

from vtr.build import build_datamodule, build_module, build_trainer, run
from vtr.callbacks.snapshot_ema import SnapshotEMA
from vtr.config import load_config, resolve_run_dir

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(ROOT.glob("experiments/**/*.yaml"))


def test_miles_pretraining_logs_losses_metrics_and_checkpoints(tiny_demo_root, tmp_path):
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", tiny_overrides(tiny_demo_root, tmp_path, steps=3))
    results = run(cfg)
    run_dir = resolve_run_dir(cfg).parent / "version_0"
    logged = scalars(run_dir)
    for tag in (
        "train/loss",
        "train/loss_contrastive",
        "train/loss_mvm",
        "train/ema_momentum",
        "val/msrvtt/t2v_R1",
        "val/webvid/v2t_MedR",
    ):
        assert tag in logged, tag
    assert len(logged["train/loss"]) == 3
    assert (run_dir / "checkpoints/last.ckpt").is_file() and (run_dir / "checkpoints/best.ckpt").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(results))
    test = metrics["test"]["msrvtt"]
    assert 0 <= test["t2v"]["R1"] <= test["t2v"]["R5"] <= test["t2v"]["R10"] <= 100
    assert test["num_videos"] == test["num_captions"]  # JSFUSION: one caption a test video
    assert (run_dir / "config.yaml").read_text().count("mvm") >= 1
    for tag in ("perf/clips_per_sec", "perf/step_time", "perf/data_wait"):
        assert len(logged[tag]) == 2, tag  # every step but the first, which has no previous step end
    assert all(0 <= w <= 1 for w in logged["perf/data_wait"])
    # the custom-scalars layout: every chart's tag pattern matches scalars the run logged
    layout = custom_scalars_layout(run_dir)
    charts = {chart.title: chart for category in layout.category for chart in category.chart}
    assert {"loss terms", "val msrvtt t2v R@1/5/10", "val webvid v2t R@1/5/10", "test msrvtt v2t R@1/5/10"} <= set(
        charts
    )
    losses = [t for t in logged if any(re.match(p, t) for p in charts["loss terms"].multiline.tag)]
    assert set(losses) == {"train/loss", "train/loss_contrastive", "train/loss_mvm"}
    for title in ("val msrvtt t2v R@1/5/10", "val webvid v2t R@1/5/10", "test msrvtt v2t R@1/5/10"):
        matched = [t for t in logged if any(re.match(p, t) for p in charts[title].multiline.tag)]
        stage, dataset, direction = title.split()[:3]
        assert sorted(matched) == sorted(f"{stage}/{dataset}/{direction}_R{k}" for k in (1, 5, 10)), title


def test_snapshot_is_the_ema_of_the_online_encoder_and_gets_no_gradient(tiny_demo_root, tmp_path):
    cfg = load_config(
        ROOT / "experiments/pretrain/demo.yaml",
        tiny_overrides(tiny_demo_root, tmp_path, steps=1)
        + ["model.mvm.ema_momentum=0.9", "data.val=[]", "data.test=[]"],
    )
    module = build_module(cfg)
    # Make the snapshot differ from the online encoder so the average is visible.
    with torch.no_grad():
        for p in module.snapshot.parameters():
            p.add_(torch.randn_like(p))
    before = copy.deepcopy(module.snapshot.state_dict())
    trainer, _ = build_trainer(cfg, tmp_path / "run")
    trainer.fit(module, datamodule=build_datamodule(cfg))
    assert any(isinstance(c, SnapshotEMA) for c in trainer.callbacks)
    online = dict(module.model.video.named_parameters())
    for name, param in module.snapshot.named_parameters():
        assert not param.requires_grad and param.grad is None
        expected = 0.9 * before[name] + 0.1 * online[name].detach()
        assert torch.allclose(param, expected, atol=1e-6), name


def test_resuming_restores_the_snapshot_exactly(tiny_demo_root, tmp_path):
    cfg = load_config(
        ROOT / "experiments/pretrain/demo.yaml", tiny_overrides(tiny_demo_root, tmp_path, steps=2) + ["data.test=[]"]
    )
    run(cfg)
    ckpt = resolve_run_dir(cfg).parent / "version_0/checkpoints/last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    fresh = build_module(cfg)
    fresh.load_state_dict(state)
    for name, value in fresh.snapshot.state_dict().items():
        assert torch.equal(value, state[f"snapshot.{name}"])
    assert not torch.equal(fresh.snapshot.pos_embed, fresh.model.video.pos_embed)  # a real EMA, not a copy


@pytest.mark.parametrize("snapshot_init", ["encoder", "checkpoint"])
def test_init_from_starts_the_snapshot_from_the_loaded_encoder_unless_asked_to_keep_the_stored_one(
    snapshot_init, tiny_demo_root, tmp_path
):
    recipe = ROOT / "experiments/pretrain/demo.yaml"
    cfg = load_config(recipe, tiny_overrides(tiny_demo_root, tmp_path, steps=2) + ["data.test=[]"])
    run(cfg)
    ckpt = resolve_run_dir(cfg).parent / "version_0/checkpoints/last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert not torch.equal(state["snapshot.pos_embed"], state["model.video.pos_embed"])  # the stored one lags
    overrides = [f"init_from={ckpt}", f"model.mvm.snapshot_init={snapshot_init}"]
    module = build_module(load_config(recipe, tiny_overrides(tiny_demo_root, tmp_path / "b", steps=2) + overrides))
    source = "model.video" if snapshot_init == "encoder" else "snapshot"
    for name, value in module.snapshot.state_dict().items():
        assert torch.equal(value, state[f"{source}.{name}"]), name


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_every_experiment_runs_a_step(path, tiny_demo_root, tmp_path):
    cfg = load_config(path, tiny_overrides(tiny_demo_root, tmp_path, steps=1))
    results = run(cfg)
    for name in cfg.data.test:
        assert results["test"][name]["num_videos"] > 0


def test_finetuning_inherits_the_checkpoint_architecture_and_rejects_a_mismatch(tiny_demo_root, tmp_path):
    from vtr.checkpoints import CheckpointMismatch

    pre = load_config(
        ROOT / "experiments/pretrain/demo.yaml", tiny_overrides(tiny_demo_root, tmp_path, steps=1) + ["data.test=[]"]
    )
    run(pre)
    ckpt = resolve_run_dir(pre).parent / "version_0/checkpoints/last.ckpt"
    # The fine-tuning recipe names no architecture: it comes from the checkpoint.
    ft = load_config(
        ROOT / "experiments/finetune/msrvtt.yaml",
        [f"init_from={ckpt}", f"data.root={tiny_demo_root}", "data.num_workers=0"],
    )
    assert ft.model.video.width == 32 and ft.model.text.width == 32 and not ft.model.mvm.enabled
    module = build_module(ft)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(module.model.video.pos_embed, state["model.video.pos_embed"])
    deeper = load_config(ROOT / "experiments/finetune/msrvtt.yaml", [f"init_from={ckpt}", "model.video.depth=2"])
    with pytest.raises(CheckpointMismatch, match=r"missing: .*model\.video\.blocks\.1\."):
        build_module(deeper)


def test_a_frozen_text_tower_keeps_its_weights_and_its_dropout_off(tiny_demo_root, tmp_path):
    """``model.text.freeze``: a pre-trained tower comes out of training as it went in, dropout off."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from vtr.config import ConfigError
    from vtr.models.text_encoder import TextEncoder

    tower = tmp_path / "tower"
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_root / "tokenizer")
    sizes = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_dropout_prob=0.5, **sizes)).save_pretrained(tower)
    tokenizer.save_pretrained(tower)
    pretrained = BertModel.from_pretrained(tower).state_dict()

    def trained_tower(freeze: bool) -> dict[str, torch.Tensor]:
        out = tmp_path / f"freeze_{freeze}"
        overrides = tiny_overrides(tiny_demo_root, out, steps=2) + [
            f"model.text.name_or_path={tower}", "model.text.pretrained=true", f"model.text.freeze={freeze}",
            "data.val=[]", "data.test=[]"]  # fmt: skip
        cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", overrides)
        encoder = TextEncoder(cfg.model.text).train()
        dropout = encoder.model.encoder.layer[0].output.dropout
        assert encoder.model.training is not freeze and dropout.training is not freeze
        run(cfg)
        state = torch.load(resolve_run_dir(cfg).parent / "version_0/checkpoints/last.ckpt", weights_only=True)
        prefix = "model.text.model."
        return {k[len(prefix) :]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}

    frozen, trained = trained_tower(True), trained_tower(False)
    assert frozen.keys() == {k for k in pretrained if not k.startswith("pooler.")}
    assert all(torch.equal(frozen[k], pretrained[k]) for k in frozen)
    assert not all(torch.equal(trained[k], pretrained[k]) for k in trained)  # what freezing prevents
    with pytest.raises(ConfigError, match="model.text.freeze"):
        load_config(None, ["model.text.pretrained=false", "model.text.freeze=true"])


@pytest.mark.parametrize(("interval", "expected"), [(1, {"best": 1, "last": 3}), (2, {"best": 2, "last": 3})])
def test_last_checkpoint_is_the_latest_step_even_without_improvement(tiny_demo_root, tmp_path, interval, expected):
    """With a learning rate of 0 the validation recall never improves after the first check:
    best.ckpt stays there while last.ckpt follows the run to its last validation and to its end."""
    overrides = tiny_overrides(tiny_demo_root, tmp_path, steps=3) + [
        f"trainer.val_check_interval={interval}",
        "optim.lr=0.0",
        "data.test=[]",
        "data.val=[msrvtt]",
    ]
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", overrides)
    run(cfg)
    folder = resolve_run_dir(cfg).parent / "version_0/checkpoints"
    steps = {name: torch.load(folder / f"{name}.ckpt", weights_only=True)["global_step"] for name in ("best", "last")}
    assert steps == expected
