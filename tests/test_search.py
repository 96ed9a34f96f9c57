"""Indexing a folder of clips and searching it with text (``python -m vtr index`` / ``search``)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers.index import index_rows
from PIL import Image
from transformers import AutoTokenizer

from data_modules.video import build_transform, read_image, read_video
from vtr.checkpoints import load_checkpoint
from vtr.search import embed as embed_module
from vtr.search import files as files_module
from vtr.search.files import IMAGE_SUFFIXES
from vtr.search.index import build_index
from vtr.search.query import SearchIndex, exact_topk
from vtr.search.store import IndexMismatch, IndexStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tiny_demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dual encoder trained for two steps on the tiny demo corpus."""
    from helpers.runs import tiny_overrides

    from vtr.build import run
    from vtr.config import load_config, resolve_run_dir

    out = tmp_path_factory.mktemp("search_run")
    extra = ["data.val=[]", "data.test=[]", "model.mvm.enabled=false", "model.video.num_frames=3"]
    cfg = load_config(ROOT / "experiments/pretrain/demo.yaml", tiny_overrides(tiny_demo_root, out, steps=2) + extra)
    run(cfg)
    return resolve_run_dir(cfg).parent / "version_0/checkpoints/last.ckpt"


@pytest.fixture(scope="module")
def model(ckpt: Path):
    return load_checkpoint(ckpt)


def reference_video_embedding(model, path: Path, window=None) -> np.ndarray:
    """The evaluation's pipeline, written out: uniform frames, test transform, video tower, in float64."""
    cfg = model.model_config["video"]
    frames = (
        read_image(path)
        if path.suffix in IMAGE_SUFFIXES
        else read_video(path, cfg["num_frames"], "uniform", window=window)
    )
    with torch.no_grad():
        emb = model.model.embed_video(build_transform(cfg["img_size"], train=False)(frames)[None])[0]
    return emb[0].double().numpy()


def reference_text_embedding(model, captions: list[str]) -> np.ndarray:
    tokens = AutoTokenizer.from_pretrained(model.tokenizer)(
        captions, padding="longest", truncation=True, max_length=32, return_tensors="pt"
    )
    with torch.no_grad():
        return (
            model.model.embed_text({"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]})[0]
            .double()
            .numpy()
        )


def media_folder(tiny_demo_root: Path, dest: Path) -> tuple[Path, dict[str, str]]:
    """MSR-VTT test videos and a few CC3M images, in sub-folders; and each video's caption."""
    videos = dest / "videos" / "msrvtt"
    videos.mkdir(parents=True)
    with open(tiny_demo_root / "msrvtt/MSRVTT_JSFUSION_test.csv") as f:
        captions = {f"msrvtt/{row['video_id']}.mp4": row["sentence"] for row in csv.DictReader(f)}
    for rel in captions:
        shutil.copy(tiny_demo_root / "msrvtt/videos/all" / Path(rel).name, videos / Path(rel).name)
    (dest / "videos/stills").mkdir()
    images = sorted(p for p in (tiny_demo_root / "cc3m/training").iterdir() if p.is_file())[:3]
    for image, suffix in zip(images, (".jpg", ".png", ".webp")):  # CC3M files have no extension
        Image.open(image).save(dest / "videos/stills" / f"{image.name}{suffix}")
    return dest / "videos", captions


class EmbedSpy:
    """Records the clips read for embedding (runs here use no workers, so reads happen in this
    process), and can stop a run, like a kill, after some batches."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_after: int | None = None) -> None:
        self.paths: list[str] = []
        self.batches = 0
        read, predict = files_module.ClipDataset.__getitem__, embed_module.ClipEmbedder.predict_step
        spy = self

        def getitem(dataset, row):
            spy.paths.append(dataset.clips[row].path)
            return read(dataset, row)

        def predict_step(module, batch, batch_idx):
            if fail_after is not None and spy.batches >= fail_after:
                raise KeyboardInterrupt("simulated kill")
            spy.batches += 1
            return predict(module, batch, batch_idx)

        monkeypatch.setattr(files_module.ClipDataset, "__getitem__", getitem)
        monkeypatch.setattr(embed_module.ClipEmbedder, "predict_step", predict_step)


def test_search_ranks_match_the_evaluation_embeddings(tiny_demo_root, ckpt, model, tmp_path):
    folder, captions = media_folder(tiny_demo_root, tmp_path)
    report = build_index(folder, ckpt, tmp_path / "index", workers=0, batch_size=4, progress=False)
    assert report.entries == len(captions) + 3 and report.errors == []
    rows = index_rows(tmp_path / "index")
    paths = sorted({p for p, _, _ in rows})
    reference = {p: reference_video_embedding(model, folder / p) for p in paths}
    for (path, start, end), emb in rows.items():
        assert emb.dtype == np.float16
        np.testing.assert_allclose(emb, reference[path], atol=2e-3)  # float16 storage of the same vector
        assert start == 0.0 and (end == 0.0) == path.startswith("stills/")
    index = SearchIndex(tmp_path / "index")
    queries = list(captions.values())
    results = index.search(queries, k=len(paths))
    text = reference_text_embedding(model, queries)
    matrix = np.stack([reference[p] for p in paths])
    exact_ranks = 0
    for (own, caption), hits, q in zip(captions.items(), results, text):
        scores = matrix @ q
        own_score = scores[paths.index(own)]
        rank = [h.path for h in hits].index(own) + 1
        # float16 storage may swap clips whose scores lie within its rounding of each other
        best, worst = 1 + int((scores > own_score + 2e-3).sum()), int((scores >= own_score - 2e-3).sum())
        assert best <= rank <= worst, caption
        exact_ranks += best == worst
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert exact_ranks >= len(captions) // 2  # most captions are not near a tie


def test_reindexing_embeds_only_added_and_changed_files(tiny_demo_root, ckpt, tmp_path, monkeypatch):
    folder, _ = media_folder(tiny_demo_root, tmp_path)
    build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False)
    before = index_rows(tmp_path / "index")
    videos = sorted(folder.glob("msrvtt/*.mp4"))
    shutil.copy(videos[0], folder / "added.mp4")
    shutil.copy(videos[2], videos[1])  # changed content (size and mtime)
    videos[3].unlink()
    spy = EmbedSpy(monkeypatch)
    report = build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False)
    changed, removed = videos[1].relative_to(folder).as_posix(), videos[3].relative_to(folder).as_posix()
    assert sorted(spy.paths) == sorted(["added.mp4", changed])
    assert (report.embedded, report.added, report.dropped) == (2, 2, 2)  # the changed file: dropped, added again
    after = index_rows(tmp_path / "index")
    assert {p for p, _, _ in after} == ({p for p, _, _ in before} - {removed}) | {"added.mp4"}
    for key, emb in before.items():
        if key[0] not in (changed, removed):
            np.testing.assert_array_equal(after[key], emb)  # kept rows are copied, not re-embedded
    copy_of = {p: e for (p, _, _), e in after.items()}
    np.testing.assert_array_equal(copy_of[changed], copy_of[videos[2].relative_to(folder).as_posix()])
    spy.paths.clear()
    build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False)
    assert spy.paths == []  # nothing new: nothing embedded


def test_only_the_listed_files_are_indexed(tiny_demo_root, ckpt, tmp_path):
    folder, _ = media_folder(tiny_demo_root, tmp_path)
    videos = sorted(p.relative_to(folder).as_posix() for p in folder.glob("msrvtt/*.mp4"))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(videos[:3]) + "\n\n")
    build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False, only=listing)
    assert sorted({p for p, _, _ in index_rows(tmp_path / "index")}) == videos[:3]
    listing.write_text(videos[0] + "\n" + videos[4] + "\n")
    report = build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False, only=listing)
    assert (report.added, report.dropped) == (1, 2)  # a file no longer listed leaves the index
    assert sorted({p for p, _, _ in index_rows(tmp_path / "index")}) == [videos[0], videos[4]]
    listing.write_text(videos[0] + "\nmsrvtt/nowhere.mp4\n")
    with pytest.raises(FileNotFoundError, match="1 files listed .*: msrvtt/nowhere.mp4"):
        build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False, only=listing)


def test_an_interrupted_index_resumes_where_it_stopped(tiny_demo_root, ckpt, tmp_path, monkeypatch):
    folder, _ = media_folder(tiny_demo_root, tmp_path)
    build_index(folder, ckpt, tmp_path / "fresh", workers=0, progress=False)
    with monkeypatch.context() as patch:
        EmbedSpy(patch, fail_after=3)
        with pytest.raises(SystemExit):  # Lightning's answer to Ctrl-C
            build_index(folder, ckpt, tmp_path / "index", workers=0, batch_size=1, chunk_clips=2, progress=False)
    assert IndexStore(tmp_path / "index").count() == 0  # nothing committed yet...
    assert len(list((tmp_path / "index/pending").glob("chunk-*.npz"))) == 1  # ...but two clips kept
    spy = EmbedSpy(monkeypatch)
    report = build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False)
    assert report.resumed == 2 and len(spy.paths) == report.entries - 2  # the two kept clips are not read again
    fresh, resumed = index_rows(tmp_path / "fresh"), index_rows(tmp_path / "index")
    assert fresh.keys() == resumed.keys()
    for key in fresh:
        np.testing.assert_allclose(resumed[key], fresh[key], atol=1e-3)


def test_unreadable_files_are_listed_and_skipped(tiny_demo_root, ckpt, tmp_path, capsys):
    folder, captions = media_folder(tiny_demo_root, tmp_path)
    (folder / "broken.mp4").write_bytes(b"not a video at all" * 100)
    (folder / "stills/broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    good = next(iter(captions))
    data = (folder / good).read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    from vtr.cli import main

    assert main(["index", str(folder), "--ckpt", str(ckpt), "--out", str(tmp_path / "index"), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "3 files skipped as unreadable" in out
    store = IndexStore(tmp_path / "index")
    assert sorted(e["path"] for e in store.errors()) == ["broken.mp4", "stills/broken.jpg", "truncated.mp4"]
    assert all(e["reason"] for e in store.errors())
    assert store.count() == len(captions) + 3


def test_a_long_video_is_searched_by_windows(tiny_demo_root, ckpt, model, tmp_path):
    """Three 2 s clips written one after the other into one video: each clip's nearest window is its own."""
    sources = sorted((tiny_demo_root / "msrvtt/videos/all").glob("*.mp4"))[:3]
    frames = []
    for path in sources:
        with av.open(str(path)) as container:
            # one frame size for the whole video
            frames.append([np.asarray(f.to_image().resize((112, 64))) for f in container.decode(video=0)][:20])
    folder = tmp_path / "long"
    folder.mkdir()

    def write(path: Path, clip_frames: list[np.ndarray]) -> None:
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=10, options={"g": "8"})
            stream.height, stream.width = clip_frames[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            for frame in clip_frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())

    write(folder / "long.mp4", [f for clip in frames for f in clip])
    for i, clip in enumerate(frames):
        write(tmp_path / f"part{i}.mp4", clip)
    build_index(folder, ckpt, tmp_path / "index", window=2.0, workers=0, progress=False)
    rows = index_rows(tmp_path / "index")
    assert sorted(rows) == [("long.mp4", 0.0, 2.0), ("long.mp4", 2.0, 4.0), ("long.mp4", 4.0, 6.0)]
    windows = np.stack([rows[k] for k in sorted(rows)]).astype(np.float64)
    for i in range(3):
        own = reference_video_embedding(model, tmp_path / f"part{i}.mp4")
        scores = windows @ own
        assert scores.argmax() == i and scores[i] > 0.99
        # the window holds exactly the clip's frames: the same frames as reading the clip alone
        window_frames = read_video(folder / "long.mp4", 3, "uniform", window=(2.0 * i, 2.0 * i + 2))
        alone = read_video(tmp_path / f"part{i}.mp4", 3, "uniform")
        assert (window_frames.float() - alone.float()).abs().mean() < 4


def test_settings_or_checkpoint_change_is_refused_unless_rebuilt(tiny_demo_root, ckpt, tmp_path):
    folder, _ = media_folder(tiny_demo_root, tmp_path)
    build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False)
    with pytest.raises(IndexMismatch, match="window: index has 0.0, this run 2.0.*--rebuild"):
        build_index(folder, ckpt, tmp_path / "index", window=2.0, workers=0, progress=False)
    report = build_index(folder, ckpt, tmp_path / "index", window=2.0, workers=0, progress=False, rebuild=True)
    assert report.entries > len(list(folder.rglob("*.*")))  # long videos now give several windows
    assert IndexStore(tmp_path / "index").info()["identity"]["window"] == 2.0


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.headings = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self.headings += tag == "h2"


def test_cli_json_queries_file_and_html_page(tiny_demo_root, ckpt, tmp_path):
    folder, captions = media_folder(tiny_demo_root, tmp_path)
    build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False)
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    query = next(iter(captions.values()))
    search = [sys.executable, "-m", "vtr", "search", str(tmp_path / "index")]
    cmd = [*search, query, "-k", "3", "--json", "--html", str(tmp_path / "r.html")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    hits = json.loads(done.stdout)  # stdout is the JSON and nothing else
    expected = SearchIndex(tmp_path / "index").search([query], k=3)[0]
    assert [(h["path"], h["start"], h["end"]) for h in hits] == [(h.path, h.start, h.end) for h in expected]
    np.testing.assert_allclose([h["score"] for h in hits], [h.score for h in expected], rtol=1e-6)
    page = _Page()
    page.feed((tmp_path / "r.html").read_text())
    thumbs = sum(1 if h["path"].startswith("stills/") else 4 for h in hits)
    assert len(page.images) == thumbs and all(src.startswith("data:image/jpeg;base64,") for src in page.images)
    assert page.headings == 1
    (tmp_path / "q.txt").write_text("\n".join(list(captions.values())[:2]) + "\n\n")
    cmd = [*search, "--queries", str(tmp_path / "q.txt"), "-k", "2", "--json"]
    lists = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout)
    assert len(lists) == 2 and all(len(hits) == 2 for hits in lists)
    chromium = shutil.which("chromium")
    if chromium:  # where a browser is installed, it renders the page without errors
        page = (tmp_path / "r.html").as_uri()
        headless = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page]
        dom = subprocess.run(headless, check=False, capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0 and dom.stdout.count("<img") == thumbs


def test_exact_topk_in_chunks_matches_a_full_sort():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((1000, 8)).astype(np.float16)
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    scores, rows = exact_topk(matrix, queries, k=7, chunk_rows=64)
    full = matrix.astype(np.float64) @ queries.astype(np.float64).T
    for q in range(3):
        assert rows[q].tolist() == np.argsort(-full[:, q], kind="stable")[:7].tolist()
        np.testing.assert_allclose(scores[q], full[rows[q], q], rtol=1e-5)


def test_faiss_gives_the_exact_results(tiny_demo_root, ckpt, tmp_path):
    # faiss-cpu is optional for users (pip install 'vtr[search]') and pinned in requirements.txt for the tests
    folder, captions = media_folder(tiny_demo_root, tmp_path)
    build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False)
    index = SearchIndex(tmp_path / "index")
    queries = list(captions.values())
    exact, approx = index.search(queries, k=5), index.search(queries, k=5, faiss=True)
    for e, a in zip(exact, approx):
        assert [h.path for h in e] == [h.path for h in a]
        np.testing.assert_allclose([h.score for h in e], [h.score for h in a], atol=1e-5)


def test_an_open_search_index_follows_a_commit_made_after_it_opened(tiny_demo_root, ckpt, tmp_path):
    folder, captions = media_folder(tiny_demo_root, tmp_path)
    build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False)
    index = SearchIndex(tmp_path / "index")
    queries = list(captions.values())[:2]
    first = index.search(queries, k=3)
    removed = first[0][0].path
    (folder / removed).unlink()
    build_index(folder, ckpt, tmp_path / "index", workers=0, progress=False)  # its row is now a tombstone
    again = index.search(queries, k=3)  # the chunks it mapped are stale: it maps them again
    assert all(hit.path != removed for hits in again for hit in hits)
    assert again == SearchIndex(tmp_path / "index").search(queries, k=3)
