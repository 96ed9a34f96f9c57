"""The probes of vtr.probes: per-patch labels against the rendered pixels and a hand-labelled
scene, the ridge probe on features of known separability, pointing and per-attribute errors on
hand-made cases, and gallery scoring against a float64 computation written out here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import tiny_overrides

from data_modules.demo.render import draw_coverage, draw_frame, state_at
from data_modules.demo.truth import grounding_scene, probe_scene
from data_modules.demo.world import COLOURS, SHAPES, Canvas, Look, Scene
from data_modules.video import IMAGENET_MEAN, IMAGENET_STD
from vtr.build import check_data, run
from vtr.callbacks.retrieval_eval import score_galleries
from vtr.config import ConfigError, load_config, resolve_run_dir
from vtr.probes.clips import BACKGROUND, render_clip
from vtr.probes.errors import attribute_errors
from vtr.probes.grounding import pointing
from vtr.probes.linear import balanced_accuracy, probe

COLOUR_NAMES = list(COLOURS)
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("index", range(6))
def test_coverage_explains_every_rendered_pixel(index: int) -> None:
    """Each pixel of a frame is the coverage-weighted mix of the background and the shapes' colours."""
    scene = probe_scene(0, "fit", index) if index < 3 else grounding_scene(0, index)
    for t in (0, scene.n_frames - 1):
        state = state_at(scene.keyframes, t)
        pixels = np.asarray(draw_frame(scene, state), dtype=np.float64)
        cover = draw_coverage(scene, state).astype(np.float64)
        colours = [scene.canvas.bg_rgb] + [COLOURS[p.colour] for p in scene.shape_parts]
        mixed = np.einsum("khw,kc->hwc", cover, np.array(colours, dtype=np.float64))
        assert np.allclose(cover.sum(0), 1.0) and cover.min() >= 0
        assert np.abs(mixed - pixels).max() <= 1.0  # PIL rounds each box average to an integer


def _still(shape: str, colour: str, centre: tuple[float, float], radius: float) -> Scene:
    canvas = Canvas(64, 64, 8, "black", (25, 25, 25))
    frames = ((0, 0.0, 0.0, 1.0, 0.0), (7, 0.0, 0.0, 1.0, 0.0))
    return Scene(Look(1, "large", colour, shape), canvas, (centre,), (0.0,), radius, ("stay_still",), frames)


def test_a_hand_labelled_scene() -> None:
    """A red square of half-side 12/sqrt(2) = 8.5 px centred at x = 40, y = 24 of a 64 px frame covers
    the 16 px patch at row 1 (pixels 16-31), column 2 (pixels 32-47) almost whole and no other patch by
    a quarter."""
    _, kind, colour = render_clip(_still("square", "red", (40.0, 24.0), 12.0), 2, 64, 16)
    grid_kind, grid_colour = kind.reshape(2, 4, 4), colour.reshape(2, 4, 4)
    expected = torch.full((4, 4), BACKGROUND)
    expected[1, 2] = SHAPES.index("square")
    assert (grid_kind == expected).all()
    expected[1, 2] = COLOUR_NAMES.index("red")
    assert (grid_colour == expected).all()


def test_patch_labels_agree_with_the_pixels_the_model_sees() -> None:
    """Where a patch is labelled with a colour, a good share of its input pixels show that colour;
    where it is background, few show any shape's colour."""
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    labelled = 0
    for index in range(8):
        scene = grounding_scene(0, index)
        video, _, colour = render_clip(scene, 2, 64, 16)
        rgb = ((video * std + mean) * 255).permute(0, 2, 3, 1).numpy()  # (T, H, W, 3)
        patches = rgb.reshape(2, 4, 16, 4, 16, 3).transpose(0, 1, 3, 2, 4, 5).reshape(32, 256, 3)
        shape_colours = [np.array(COLOURS[p.colour]) for p in scene.shape_parts]
        for patch, label in zip(patches, colour.tolist()):
            near = [(np.abs(patch - c).max(-1) < 40).mean() for c in shape_colours]
            if label == BACKGROUND:
                assert sum(near) < 0.3
            else:
                mine = np.abs(patch - np.array(COLOURS[COLOUR_NAMES[label]])).max(-1) < 40
                assert mine.mean() >= 0.1 and mine.mean() == max(near)
                labelled += 1
    assert labelled >= 20


def test_ridge_probe_separable_features_and_shuffled_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    classes, per_class = 5, 200
    y = torch.arange(classes).repeat_interleave(per_class)
    x = 3.0 * torch.nn.functional.one_hot(y, 12).double() + 0.2 * torch.randn(len(y), 12, generator=gen).double()
    fit, score = slice(0, None, 2), slice(1, None, 2)
    separable = probe(x[fit], y[fit], x[score], y[score], classes)
    assert separable["accuracy"] == 1.0 and separable["balanced_accuracy"] == 1.0
    assert separable["chance"] == pytest.approx(1 / classes)
    noise = torch.randn(4000, 12, generator=gen)
    labels = torch.randint(0, classes, (4000,), generator=gen)
    shuffled = probe(noise[:2000], labels[:2000], noise[2000:], labels[2000:], classes)
    assert abs(shuffled["balanced_accuracy"] - 1 / classes) < 0.05


def test_balanced_accuracy_by_hand() -> None:
    """Three of class 0 right, the one of class 1 wrong: accuracy 3/4, balanced (1 + 0) / 2."""
    pred, true = torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 0, 1])
    assert balanced_accuracy(pred, true) == 0.5


def test_pointing_by_hand() -> None:
    """Two clips of four patches; the text of query 0 matches a patch of its shape, that of query 1 a
    background patch. Chance: the named shape's share of its clip's patches (2/4 and 1/4); on a
    shape: query 0 only; among shapes: the named shape's share of the shape patches (2/3 and 1/1)."""
    joint = torch.eye(4).repeat(2, 1, 1)  # patch p of either clip embeds as e_p
    labels = torch.tensor([[3, 3, BACKGROUND, 1], [BACKGROUND, 5, BACKGROUND, BACKGROUND]])
    text = torch.stack([torch.eye(4)[1], torch.eye(4)[2]])
    out = pointing(joint, labels, [(0, 3), (1, 5)], text)
    assert out == {
        "accuracy": 0.5,
        "chance": (2 / 4 + 1 / 4) / 2,
        "on_a_shape": 0.5,
        "chance_among_shapes": pytest.approx((2 / 3 + 1) / 2),
        "queries": 2,
    }


def test_attribute_errors_by_hand() -> None:
    attrs = {
        "a": {"kind": "star", "colour": "red", "count": "1", "size": "small", "motion": "grow", "direction": "-"},
        "b": {"kind": "star", "colour": "blue", "count": "1", "size": "small", "motion": "grow", "direction": "-"},
        "c": {"kind": "cross", "colour": "blue", "count": "2", "size": "small", "motion": "move", "direction": "up"},
        "d": {"kind": "cross", "colour": "blue", "count": "2", "size": "small", "motion": "move", "direction": "left"},
    }
    # caption 0 (of a) ranks b first: colour alone; caption 1 (of b) ranks b first: right;
    # caption 2 (of c) ranks a first: kind, colour, count and motion (a move against a grow has no
    # direction to compare); caption 3 (of d) ranks c first: direction alone.
    sim = torch.tensor([[0.1, 0.9, 0.0, 0.0], [0.0, 0.8, 0.1, 0.0], [0.7, 0.2, 0.3, 0.1], [0.0, 0.0, 0.6, 0.5]])
    relevant = torch.eye(4, dtype=torch.bool)
    out = attribute_errors(sim, relevant, ["a", "b", "c", "d"], ["a", "b", "c", "d"], attrs)
    assert out["queries"] == 4 and out["failures"] == 3
    assert out["differs"] == {"kind": 1, "colour": 2, "count": 1, "size": 0, "motion": 1, "direction": 1}
    assert out["only"] == {"kind": 0, "colour": 1, "count": 0, "size": 0, "motion": 0, "direction": 1}


def test_galleries_against_float64_ranks() -> None:
    """Five galleries of 20 among 103 videos (3 left out), two captions a video: each gallery's t2v
    R@1 / R@5 from ranks counted here in float64, then their mean and n-1 standard deviation."""
    gen = torch.Generator().manual_seed(1)
    videos = [f"v{i}" for i in range(103)]
    video = torch.nn.functional.normalize(torch.randn(103, 8, generator=gen), dim=1)
    captions = [f"{v}#{k}" for v in videos for k in range(2)]
    text = torch.nn.functional.normalize(video.repeat_interleave(2, 0) + torch.randn(206, 8, generator=gen), dim=1)
    pairs = {(c, c.split("#")[0]) for c in captions}
    out = score_galleries(video, videos, text, captions, pairs, 20)
    assert out["count"] == 5 and out["size"] == 20
    for k in (1, 5):
        per = []
        for g in range(5):
            v = video[20 * g : 20 * g + 20].double().numpy()
            t = text[40 * g : 40 * g + 40].double().numpy()
            sim = t @ v.T
            own = sim[np.arange(40), np.arange(40) // 2]
            ranks = 1 + (sim > own[:, None]).sum(1)
            per.append(100.0 * (ranks <= k).mean())
        got = out["t2v"][f"R{k}"]
        assert got["values"] == pytest.approx(per)
        assert got["mean"] == pytest.approx(np.mean(per)) and got["std"] == pytest.approx(np.std(per, ddof=1))
    assert not math.isnan(out["v2t"]["R1"]["mean"])


def test_a_demo_run_reports_galleries_and_probes(tiny_demo_root, tmp_path, capsys) -> None:
    """demo.yaml end to end on the tiny corpus: msrvtt_1k's 10 test videos as two galleries of 4
    (two left out), and the probes in metrics.json and in the printed report."""
    cfg = load_config(
        ROOT / "experiments/pretrain/demo.yaml", [*tiny_overrides(tiny_demo_root, tmp_path), "gallery_size=4"]
    )
    run(cfg)
    metrics = json.loads((resolve_run_dir(cfg).parent / "version_0" / "metrics.json").read_text())
    galleries = metrics["test"]["msrvtt_1k"]["galleries"]
    assert galleries["count"] == 2 and len(galleries["t2v"]["R1"]["values"]) == 2
    assert "galleries" in metrics["test"]["msrvtt"]  # 6 videos: one gallery of 4
    probes = metrics["probes"]
    assert probes["corpus_seed"] == 0 and probes["patch"]["middle_block"] == 0  # a 1-block encoder
    for layer in ("final", "middle"):
        for target in ("kind", "colour"):
            reading = probes["patch"][layer][target]
            assert reading["fit_patches"] > 0 and 0 <= reading["balanced_accuracy"] <= 1
    assert set(probes["grounding"]) == {"colour", "kind"} and probes["grounding"]["kind"]["queries"] > 0
    assert set(probes["errors"]) == {"msrvtt", "msrvtt_1k", "single_attribute"}  # binding has no one look
    for table in probes["errors"].values():
        assert table["failures"] <= table["queries"] and all(
            table["only"][a] <= table["differs"][a] <= table["failures"] for a in table["differs"]
        )
    printed = capsys.readouterr().out
    for title in ("Disjoint galleries", "Patch probe", "Grounding probe", "Failed t2v queries"):
        assert title in printed


def test_probes_need_a_demo_corpus(tiny_demo_root, tmp_path) -> None:
    """Every dataset folder there, but no DONE with the corpus seed: a ConfigError naming the key."""
    root = tmp_path / "data"
    root.mkdir()
    for folder in tiny_demo_root.iterdir():
        if folder.is_dir():
            (root / folder.name).symlink_to(folder)
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", tiny_overrides(root, tmp_path))
    with pytest.raises(ConfigError, match="'probes.enabled'"):
        check_data(cfg)
    (root / "DONE").write_text((tiny_demo_root / "DONE").read_text())
    check_data(cfg)
