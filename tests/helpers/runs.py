"""Helpers for tests that run real training: tiny-model overrides and TensorBoard scalars."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_RECIPE = REPO_ROOT / "experiments/pretrain/demo.yaml"  # the recipe the tiny runs shrink


def tiny_overrides(data_root: Path, out: Path, steps: int = 2) -> list[str]:
    """Shrinks any recipe to seconds on a CPU; everything else in the recipe stays as it is."""
    return [
        f"data.root={data_root}",
        f"output_dir={out}",
        "model.video.img_size=32",
        "model.video.patch_size=8",
        "model.video.width=32",
        "model.video.depth=1",
        "model.video.heads=2",
        "model.video.pretrained=null",
        f"model.text.name_or_path={data_root}/tokenizer",
        "model.text.pretrained=false",
        "model.text.width=32",
        "model.text.depth=1",
        "model.text.heads=2",
        "model.text.freeze=false",  # a recipe's frozen pre-trained tower becomes a random one here
        "model.embed_dim=16",
        "model.mvm.start_step=0",  # MVM (where a recipe has it) from the first of these few steps
        "model.mvm.ema_start_step=0",  # and the snapshot following the encoder from it
        # the literal MILES objective (the contrastive loss on the masked clip, layer-normed token
        # targets, EMA 0.999), so that tests do not follow the demo recipe's tuned values
        "model.mvm.contrastive_view=masked",
        "model.mvm.target=tokens",
        "model.mvm.ema_momentum=0.999",
        "model.mascot.decoder_heads=2",
        "data.input_res=32",
        "data.batch_size=4",
        "data.eval_batch_size=8",
        "data.num_workers=0",
        "data.num_frames=2",
        "data.eval_num_frames=2",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=null",
        f"trainer.val_check_interval={steps}",
        "trainer.check_val_every_n_epoch=null",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.strategy=auto",
        "trainer.precision=32-true",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "probes.fit_clips=6",  # where a recipe has the probes: a few clips
        "probes.score_clips=4",
        "probes.grounding_clips=4",
    ]


def scalars(run_dir: Path) -> dict[str, list[float]]:
    """Every scalar a run logged to TensorBoard, by tag, in step order."""
    acc = EventAccumulator(str(run_dir)).Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def custom_scalars_layout(run_dir: Path):
    """The TensorBoard custom-scalars layout a run wrote (a ``layout_pb2.Layout``)."""
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0}).Reload()
    event = acc.Tensors(metadata.CONFIG_SUMMARY_TAG)[-1]
    return layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
