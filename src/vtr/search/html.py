"""One self-contained results page: thumbnails are inlined as JPEG data URIs, so the file can be
mailed or opened anywhere without the videos next to it."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image

from data_modules.video import MediaError, read_image, read_video

from .query import Hit

THUMBS = 4
THUMB_HEIGHT = 96

_STYLE = (
    "body{font-family:sans-serif;margin:2em}h2{margin-top:2em}.hit{margin:1em 0}"
    f".strip img{{height:{THUMB_HEIGHT}px;margin-right:4px}}.meta{{color:#555;font-size:90%}}"
)


def thumbnails(root: Path, hit: Hit) -> list[str]:
    """JPEG data URIs of ``THUMBS`` frames spread over the hit's window (one for an image)."""
    path = root / hit.path
    if hit.end <= hit.start:  # an image
        frames = read_image(path)
    else:
        frames = read_video(path, THUMBS, "uniform", window=(hit.start, hit.end))
    uris = []
    for frame in frames:
        image = Image.fromarray(frame.permute(1, 2, 0).numpy())
        image.thumbnail((4 * THUMB_HEIGHT, THUMB_HEIGHT))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        uris.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    return uris


def _hit_html(root: Path, rank: int, hit: Hit) -> str:
    try:
        strip = "".join(
            f'<img src="{uri}" alt="frame {i + 1} of {html.escape(hit.path)}">'
            for i, uri in enumerate(thumbnails(root, hit))
        )
    except MediaError as err:
        strip = f"<em>no thumbnails: {html.escape(err.reason)}</em>"
    span = "" if hit.end <= hit.start else f" &middot; {hit.start:.1f}&ndash;{hit.end:.1f} s"
    return (
        f'<div class="hit"><div class="strip">{strip}</div><div class="meta">{rank}. '
        f"<b>{html.escape(hit.path)}</b>{span} &middot; score {hit.score:.4f}</div></div>"
    )


def results_page(root: Path, queries: list[str], results: list[list[Hit]]) -> str:
    """The page for ``queries`` and their hits; ``root`` is the indexed folder (for the frames)."""
    sections = []
    for query, hits in zip(queries, results):
        body = (
            "".join(_hit_html(root, rank, hit) for rank, hit in enumerate(hits, start=1)) or "<p>no clips indexed</p>"
        )
        sections.append(f"<h2>{html.escape(query)}</h2>{body}")
    title = html.escape(queries[0] if len(queries) == 1 else f"{len(queries)} queries")
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title><style>{_STYLE}</style></head>'
        f"<body>{''.join(sections)}</body></html>\n"
    )
