"""Checkpoints: safe reading, released Frozen-in-Time / MILES layouts against a float64
reference of the released model, load_model, convert, init_from, and errors that name keys."""

from __future__ import annotations

import logging
import pathlib
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from helpers.released_reference import (
    FRAMES,
    IMG,
    reference_embeddings,
    reference_video_features,
    released_checkpoint,
    released_video_state,
    tiny_text_model,
)
from transformers import AutoConfig, AutoModel, AutoTokenizer

from vtr.checkpoints import CheckpointError, CheckpointMismatch, load_checkpoint, read_checkpoint, safe_torch_load
from vtr.cli import main

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = ["a red circle moves left", "a", "two blue squares and a green triangle rotate slowly"]


@pytest.fixture(scope="module")
def tokenizer_dir(tiny_demo_root) -> Path:
    return tiny_demo_root / "tokenizer"


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def _text(tokenizer) -> dict:
    batch = tokenizer(CAPTIONS, padding=True, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def _inputs():
    g = torch.Generator().manual_seed(7)
    return [torch.randn(2, t, 3, IMG, IMG, generator=g) for t in (4, 2, 1)]


# --- safe reading -----------------------------------------------------------------------------
def test_foreign_config_object_is_ignored_and_weights_load(tmp_path, caplog, monkeypatch):
    """The released trainer pickles its ``parse_config.ConfigParser``: a module users lack."""
    parse_config = types.ModuleType("parse_config")  # importable only while the checkpoint is written
    exec("class ConfigParser:\n    def __init__(self, c):\n        self.c = c\n", parse_config.__dict__)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "parse_config", parse_config)
        weights = {"video_model.cls_token": torch.randn(1, 1, 8)}
        torch.save({"arch": "x", "epoch": 1, "state_dict": weights, "config": parse_config.ConfigParser({"a": 1})},
                   tmp_path / "model.pth")  # fmt: skip
    with pytest.raises(ModuleNotFoundError):  # what an unrestricted torch.load does now
        torch.load(tmp_path / "model.pth", weights_only=False)
    with caplog.at_level(logging.WARNING):
        raw = read_checkpoint(tmp_path / "model.pth")
    assert torch.equal(raw.state["video_model.cls_token"], weights["video_model.cls_token"])
    assert "ignored 1 foreign object: parse_config.ConfigParser" in caplog.text


class _TouchOnLoad:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


class _OpenOnLoad:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_pickle_that_would_create_a_file_is_read_without_running(tmp_path, zip_format):
    markers = [tmp_path / "touched", tmp_path / "opened"]
    weights = {"w": torch.arange(6.0)}
    path = tmp_path / "evil.pth"
    obj = {"state_dict": weights, "a": _TouchOnLoad(markers[0]), "b": _OpenOnLoad(markers[1])}
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    loaded = safe_torch_load(path)
    assert torch.equal(loaded["state_dict"]["w"], weights["w"])
    assert not any(m.exists() for m in markers)
    assert torch.equal(read_checkpoint(path).state["w"], weights["w"])
    assert not any(m.exists() for m in markers)
    torch.load(path, weights_only=False)  # the unsafe load does run it: the test is not vacuous
    assert all(m.exists() for m in markers)


# --- the released block wiring ----------------------------------------------------------------
def test_encoder_computes_the_released_forward_in_float64():
    from helpers.released_reference import DEPTH, HEADS, PATCH, WIDTH

    from vtr.models.video_encoder import SpaceTimeViT

    sd = released_video_state()
    enc = SpaceTimeViT(img_size=IMG, patch_size=PATCH, width=WIDTH, depth=DEPTH, heads=HEADS, num_frames=FRAMES)
    ours = {k.replace(".norm3.", ".norm_time.").replace(".timeattn.", ".attn_time."): v for k, v in sd.items()}
    missing = enc.load_state_dict(ours, strict=False).missing_keys
    assert missing == ["mask_token"]
    enc = enc.double().eval()
    for video in _inputs():
        with torch.no_grad():
            got = enc(video.double()).tokens[:, 0]
        assert torch.allclose(got, reference_video_features(sd, video), atol=1e-10, rtol=0), video.shape
    # The residual_temporal wiring (earlier checkpoints of this project) computes something else.
    for block in enc.blocks:
        block.wiring = "residual_temporal"
    with torch.no_grad():
        other = enc(_inputs()[0].double()).tokens[:, 0]
    assert (other - reference_video_features(sd, _inputs()[0])).abs().max() > 1e-3


# --- released checkpoints ---------------------------------------------------------------------
LAYOUTS = [  # (projection name, text family, module. prefix)
    ("text_proj", "distilbert", True),  # MILES
    ("text_proj", "distilbert", False),
    ("txt_proj", "distilbert", True),  # Frozen with DistilBERT
    ("txt_proj", "bert", False),  # Frozen with BERT: pooler output
]


@pytest.mark.parametrize("proj, family, prefix", LAYOUTS)
def test_released_checkpoints_load_and_match_the_reference(
    proj, family, prefix, tokenizer, tokenizer_dir, tmp_path, caplog
):
    text_model = tiny_text_model(family, len(tokenizer))
    ckpt = released_checkpoint(text_model, proj, prefix)
    torch.save(ckpt, tmp_path / "released.pth")
    with caplog.at_level(logging.WARNING):
        loaded = load_checkpoint(tmp_path / "released.pth", text_model=str(tokenizer_dir))
    assert "filled in project-only parts" in caplog.text and "logit_scale" in caplog.text
    cfg = loaded.model_config
    assert (cfg["video"]["width"], cfg["video"]["depth"], cfg["video"]["img_size"], cfg["video"]["num_frames"]) == (
        128, 2, 32, 4)  # fmt: skip
    assert cfg["text"]["model_type"] == family and cfg["video"]["block_wiring"] == "released"
    assert loaded.tokenizer == str(tokenizer_dir) and len(loaded.weights_hash) == 64
    model = loaded.model
    assert not model.training
    pooler = proj == "txt_proj" and family == "bert"
    text = _text(tokenizer)
    with torch.no_grad():
        t = model.embed_text(text)[0]
        for video in _inputs():
            v_ref, t_ref = reference_embeddings(ckpt, text_model, video, text, pooler=pooler)
            v = model.embed_video(video)[0]
            assert (v.double() - v_ref).abs().max() <= 1e-4, video.shape
            assert (t.double() - t_ref).abs().max() <= 1e-4


def _sized_text_model(family: str, vocab_size: int, ffn_width: int, heads: int, positions: int):
    """A random float64 text tower whose feed-forward is not 4x its width (64)."""
    torch.manual_seed(3)
    if family == "distilbert":
        sizes = dict(dim=64, n_layers=2, n_heads=heads, hidden_dim=ffn_width, max_position_embeddings=positions)
    else:
        sizes = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=heads, intermediate_size=ffn_width,
                     max_position_embeddings=positions)  # fmt: skip
    model = AutoModel.from_config(AutoConfig.for_model(family, vocab_size=vocab_size, pad_token_id=0, **sizes))
    return model.double().eval()


@pytest.mark.parametrize("family, ffn_width, heads, positions", [("distilbert", 96, 2, 40), ("bert", 80, 4, 48)])
def test_released_text_towers_of_any_size_load_from_their_tensors_and_named_config(
    family, ffn_width, heads, positions, tokenizer, tokenizer_dir, tmp_path
):
    text_model = _sized_text_model(family, len(tokenizer), ffn_width, heads, positions)
    ckpt = released_checkpoint(text_model, "text_proj", True)
    torch.save(ckpt, tmp_path / "released.pth")
    named = tmp_path / "tower"  # the tokenizer beside the tower's own config, as a user's folder holds them
    shutil.copytree(tokenizer_dir, named)
    text_model.config.save_pretrained(named)
    loaded = load_checkpoint(tmp_path / "released.pth", text_model=str(named))
    cfg = loaded.model_config["text"]
    assert (cfg["ffn_width"], cfg["heads"], cfg["max_positions"], cfg["depth"]) == (ffn_width, heads, positions, 2)
    text = _text(tokenizer)
    with torch.no_grad():
        _, t_ref = reference_embeddings(ckpt, text_model, _inputs()[0], text)
        t = loaded.model.embed_text(text)[0]
    assert (t.double() - t_ref).abs().max() <= 1e-4
    # without a config, heads fall back to width / 64 (one here): the feed-forward still fits
    cfg = load_checkpoint(tmp_path / "released.pth", text_model=str(tokenizer_dir)).model_config["text"]
    assert (cfg["ffn_width"], cfg["heads"], cfg["max_positions"]) == (ffn_width, 1, positions)


def test_a_named_text_config_that_disagrees_with_the_tensors_is_an_error(tokenizer, tokenizer_dir, tmp_path):
    text_model = _sized_text_model("distilbert", len(tokenizer), 96, 2, 40)
    torch.save(released_checkpoint(text_model, "text_proj", False), tmp_path / "released.pth")
    named = tmp_path / "tower"
    shutil.copytree(tokenizer_dir, named)
    text_model.config.hidden_dim = 256
    text_model.config.save_pretrained(named)
    with pytest.raises(CheckpointError, match="has hidden_dim=256, the checkpoint's text tower 96"):
        load_checkpoint(tmp_path / "released.pth", text_model=str(named))


def test_load_model_is_importable_from_the_package_and_round_trips_through_convert(tokenizer, tokenizer_dir, tmp_path):
    from vtr import load_model

    text_model = tiny_text_model("distilbert", len(tokenizer))
    ckpt = released_checkpoint(text_model, "text_proj", True)
    torch.save(ckpt, tmp_path / "miles.pth")
    out = tmp_path / "conv" / "miles.safetensors"
    assert main(["convert", str(tmp_path / "miles.pth"), str(out), f"--text-model={tokenizer_dir}"]) == 0
    assert out.is_file() and out.with_suffix(".json").is_file()
    a = load_checkpoint(tmp_path / "miles.pth", text_model=str(tokenizer_dir))
    b = load_checkpoint(out)
    assert a.weights_hash == b.weights_hash and b.model_config == a.model_config
    text, video = _text(tokenizer), _inputs()[0]
    model = load_model(out)
    with torch.no_grad():
        assert torch.equal(a.model.embed_video(video)[0], model.embed_video(video)[0])
        assert torch.equal(a.model.embed_text(text)[0], model.embed_text(text)[0])


def test_missing_and_misshaped_keys_are_listed(tokenizer, tokenizer_dir, tmp_path):
    text_model = tiny_text_model("distilbert", len(tokenizer))
    ckpt = released_checkpoint(text_model, "text_proj", False)
    del ckpt["state_dict"]["video_model.blocks.1.timeattn.proj.weight"]
    ckpt["state_dict"]["text_proj.1.bias"] = torch.zeros(5)
    torch.save(ckpt, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatch) as err:
        load_checkpoint(tmp_path / "bad.pth", text_model=str(tokenizer_dir))
    assert "missing: video.blocks.1.attn_time.proj.weight" in str(err.value)
    assert "shape mismatch: text_proj.1.bias (5,) vs (24,)" in str(err.value)


# --- the same loader behind init_from / CKPT= ---------------------------------------------------
EVAL_ARGS = ["data.num_workers=0", "data.eval_batch_size=8", "trainer.accelerator=cpu", "trainer.devices=1",
             "trainer.enable_progress_bar=false"]  # fmt: skip


@pytest.fixture(scope="module")
def released_for_demo(tiny_demo_root, tmp_path_factory):
    """A tiny MILES checkpoint whose text tower fits the demo corpus' tokenizer."""
    tok = AutoTokenizer.from_pretrained(tiny_demo_root / "tokenizer")
    ckpt = released_checkpoint(tiny_text_model("distilbert", len(tok)), "text_proj", True)
    path = tmp_path_factory.mktemp("released") / "MILES.pth"
    torch.save(ckpt, path)
    return path, ckpt


@pytest.mark.parametrize("dataset", ["msrvtt", "lsmdc", "activitynet", "didemo"])
def test_evaluate_and_finetune_recipes_take_a_released_checkpoint(dataset, released_for_demo, tiny_demo_root, tmp_path):
    from vtr.build import build_module
    from vtr.config import load_config

    path, ckpt = released_for_demo
    tokenizer = f"model.text.name_or_path={tiny_demo_root / 'tokenizer'}"
    args = [f"init_from={path}", f"data.root={tiny_demo_root}", tokenizer, f"output_dir={tmp_path}", *EVAL_ARGS]
    cfg = load_config(ROOT / f"experiments/finetune/{dataset}.yaml", ["task=evaluate", *args])
    assert (cfg.model.video.width, cfg.model.video.num_frames, cfg.model.text.model_type) == (128, 4, "distilbert")
    module = build_module(cfg)  # the fine-tuning module, objective parts and all
    state = ckpt["state_dict"]
    time_qkv = state["module.video_model.blocks.1.timeattn.qkv.weight"]
    assert torch.equal(module.model.video.blocks[1].attn_time.qkv.weight, time_qkv)
    assert torch.equal(module.model.text_proj[1].weight, state["module.text_proj.1.weight"])
    assert main(["evaluate", "-c", f"experiments/finetune/{dataset}.yaml", *args]) == 0
    metrics = next(tmp_path.glob("*/version_0/metrics.json"))
    assert f'"{dataset}"' in metrics.read_text()


def test_stretched_temporal_embedding_when_a_recipe_builds_more_frames(released_for_demo, tiny_demo_root):
    from vtr.build import build_module
    from vtr.config import load_config

    path, ckpt = released_for_demo
    cfg = load_config(ROOT / "experiments/finetune/activitynet.yaml", [
        f"init_from={path}", f"data.root={tiny_demo_root}", f"model.text.name_or_path={tiny_demo_root / 'tokenizer'}",
        "model.video.num_frames=7"])  # fmt: skip
    got = build_module(cfg).model.video.temporal_embed[0].detach()
    old = ckpt["state_dict"]["module.video_model.temporal_embed"][0]  # 4 frames -> 7: every second one is a midpoint
    assert torch.allclose(got[::2], old, atol=1e-6) and torch.allclose(got[1], (old[0] + old[1]) / 2, atol=1e-6)


# --- this project's own checkpoints -------------------------------------------------------------
@pytest.fixture(scope="module")
def own_checkpoint(tiny_demo_root, tmp_path_factory):
    from helpers.runs import tiny_overrides

    from vtr.build import run
    from vtr.config import load_config, resolve_run_dir

    out = tmp_path_factory.mktemp("own")
    overrides = tiny_overrides(tiny_demo_root, out, steps=1) + ["data.test=[]"]
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", overrides)
    run(cfg)
    return resolve_run_dir(cfg).parent / "version_0/checkpoints/last.ckpt"


def test_own_checkpoint_holds_only_plain_objects_and_loads_as_trained(own_checkpoint, tiny_demo_root, tmp_path):
    from vtr.config import load_config
    from vtr.models import DualEncoder

    ckpt = torch.load(own_checkpoint, map_location="cpu", weights_only=True)  # Lightning's contents are plain
    model_cfg = ckpt["hyper_parameters"]["config"]["model"]
    assert model_cfg["video"]["block_wiring"] == "released"
    loaded = load_checkpoint(own_checkpoint)
    assert loaded.model_config["video"]["width"] == 32 and loaded.tokenizer == model_cfg["text"]["name_or_path"]
    # The reference: a DualEncoder of the run's config given the checkpoint's model.* tensors by hand.
    ref = DualEncoder(load_config(None, [f"model.{k}={v}" for k, v in _flat(model_cfg)]).model)
    ref.load_state_dict({k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")})
    video, text = _inputs()[1][:, :, :, :32, :32], _text(AutoTokenizer.from_pretrained(tiny_demo_root / "tokenizer"))
    with torch.no_grad():
        assert torch.equal(loaded.model.embed_video(video)[0], ref.eval().embed_video(video)[0])
        assert torch.equal(loaded.model.embed_text(text)[0], ref.embed_text(text)[0])
    out = tmp_path / "own.safetensors"
    assert main(["convert", str(own_checkpoint), str(out)]) == 0
    again = load_checkpoint(out)
    assert again.weights_hash == loaded.weights_hash
    with torch.no_grad():
        assert torch.equal(again.model.embed_video(video)[0], ref.embed_video(video)[0])


def test_checkpoints_from_before_block_wiring_keep_their_function(own_checkpoint, tiny_demo_root, tmp_path):
    from vtr.config import load_config

    ckpt = torch.load(own_checkpoint, map_location="cpu", weights_only=True)
    del ckpt["hyper_parameters"]["config"]["model"]["video"]["block_wiring"]
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    cfg = load_config(ROOT / "experiments/finetune/msrvtt.yaml", [f"init_from={old}", f"data.root={tiny_demo_root}"])
    assert cfg.model.video.block_wiring == "residual_temporal"
    model = load_checkpoint(old).model
    assert {block.wiring for block in model.video.blocks} == {"residual_temporal"}
    assert load_checkpoint(own_checkpoint).model.video.blocks[0].wiring == "released"


def _flat(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", "null" if value is None else value


# --- text tower sizes -----------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_random_init_text_encoder_has_the_configured_sizes(family, tokenizer_dir):
    from vtr.config import TextEncoderConfig
    from vtr.models.text_encoder import TextEncoder

    sizes = dict(width=48, depth=3, heads=4)
    cfg = TextEncoderConfig(name_or_path=str(tokenizer_dir), pretrained=False, model_type=family, **sizes)
    model = TextEncoder(cfg).model
    if family == "bert":
        layers = model.encoder.layer
        ffn, heads = layers[0].intermediate.dense.out_features, layers[0].attention.self.num_attention_heads
    else:
        layers = model.transformer.layer
        ffn, heads = layers[0].ffn.lin1.out_features, layers[0].attention.n_heads
    assert (model.embeddings.word_embeddings.weight.shape[1], len(layers), heads, ffn) == (48, 3, 4, 192)
