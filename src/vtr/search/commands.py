"""The ``index`` and ``search`` subcommands: their arguments and what they print."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .query import Hit


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="embed the videos and images of a folder into a searchable index")
    p.add_argument("video_dir", type=Path)
    p.add_argument("--ckpt", required=True, help="checkpoint whose video tower embeds the clips")
    p.add_argument("--out", type=Path, required=True, help="index folder (created, or brought up to date)")
    p.add_argument("--window", type=float, default=0.0, help="seconds per clip of a long video (0: whole videos)")
    p.add_argument("--stride", type=float, default=None, help="seconds between window starts (default: --window)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers decoding videos")
    p.add_argument("--text-model", help="tokenizer (HF name or folder) for a released checkpoint; recorded for search")
    p.add_argument("--rebuild", action="store_true", help="replace an index built with another checkpoint or settings")
    p.add_argument("--only", type=Path, help="a file naming the files to index, one relative path a line")
    p.add_argument("overrides", nargs="*", help="trainer.key=value, e.g. trainer.devices=2 trainer.precision=16-mixed")

    s = sub.add_parser("search", help="find the clips of an index that match a text query")
    s.add_argument("index_dir", type=Path)
    s.add_argument("query", nargs="?", help="the text to search for (or --queries)")
    s.add_argument("-k", type=int, default=10, help="hits per query")
    s.add_argument("--queries", type=Path, help="a file with one query a line")
    s.add_argument(
        "--json", action="store_true", help="print only JSON: hits of the query (a list per query with --queries)"
    )
    s.add_argument("--html", type=Path, help="write a page with 4 thumbnails per hit")
    s.add_argument("--faiss", action="store_true", help="search with FAISS (pip install faiss-cpu) instead of exactly")
    s.add_argument("--ckpt", help="where the index's checkpoint is now, if it moved")


def run_index(args: argparse.Namespace) -> int:
    from .index import build_index

    report = build_index(args.video_dir, args.ckpt, args.out, args.window, args.stride, args.batch_size,
                         args.workers, args.overrides, args.rebuild, text_model=args.text_model,
                         only=args.only)  # fmt: skip
    if report is None:  # not rank 0
        return 0
    resumed = f", {report.resumed} taken over from an interrupted run" if report.resumed else ""
    dropped = f"{report.dropped} dropped (removed or changed)"
    print(f"{report.embedded} clips embedded: {report.added} files added{resumed}, {dropped}")
    print(f"index {args.out}: {report.entries} clips; {len(report.errors)} files skipped as unreadable")
    for error in report.errors:
        print(f"  skipped {error['path']}: {error['reason']}")
    return 0


def _table(query: str, hits: list[Hit]) -> str:
    lines = [f"query: {query}", f"{'rank':>4}  {'score':>7}  {'window (s)':>15}  path"]
    for rank, hit in enumerate(hits, start=1):
        span = "image" if hit.end <= hit.start else f"{hit.start:.1f}-{hit.end:.1f}"
        lines.append(f"{rank:>4}  {hit.score:>7.4f}  {span:>15}  {hit.path}")
    return "\n".join(lines)


def run_search(args: argparse.Namespace) -> int:
    from .html import results_page
    from .query import SearchIndex

    if (args.query is None) == (args.queries is None):
        print("error: give a query or --queries FILE (one of them)", file=sys.stderr)
        return 2
    if args.queries is not None and not args.queries.is_file():
        raise FileNotFoundError(f"queries file not found: {args.queries}")
    queries = [q.strip() for q in args.queries.read_text().splitlines() if q.strip()] if args.queries else [args.query]
    index = SearchIndex(args.index_dir, args.ckpt)
    try:
        results = index.search(queries, args.k, faiss=args.faiss)
    except ImportError as err:  # --faiss without faiss installed
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        as_json = [
            [{"path": h.path, "start": h.start, "end": h.end, "score": h.score} for h in hits] for hits in results
        ]
        print(json.dumps(as_json if args.queries else as_json[0]))
    else:
        print("\n\n".join(_table(q, hits) for q, hits in zip(queries, results)))
    if args.html:
        args.html.write_text(results_page(Path(index.info["root"]), queries, results))
        if not args.json:
            print(f"page written to {args.html}")
    return 0
