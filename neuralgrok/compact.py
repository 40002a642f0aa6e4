"""``neuralgrok compact DIR...``: finished runs' metrics as ``metrics.jsonl.xz`` and figures as palette PNGs, for committing.

    neuralgrok compact experiments/results/paper experiments/results/wd_sweep

Every finished run folder under each DIR (one with ``summary.json`` that no live process
holds) gets its ``metrics.jsonl`` replaced by ``metrics.jsonl.xz``, the same bytes
compressed (about 5x smaller; checked by decompressing before the plain file goes); every
reader of metrics reads either (runfolder.read_metrics), and a resumed run decompresses it
first. Every full-colour PNG becomes a 256-colour palette PNG when that keeps each pixel
within a few levels (png.py). Unfinished runs are left as they are, so new runs write plain
``metrics.jsonl`` while they train. Running it again changes nothing; it checks that each
compressed log it finds still decompresses.
"""
from __future__ import annotations

import argparse
import lzma
import sys
from pathlib import Path

from .png import palette_png
from .runfolder import COMPRESSED, MetricsFileError, metrics_text, write_atomic

METRICS = "metrics.jsonl"


def _visible(path: Path, root: Path) -> bool:
    """False for anything inside a hidden folder below ``root`` (a reuse's half copy ``.NAME.reusing``)."""
    return not any(part.startswith(".") for part in path.relative_to(root).parts[:-1])


def compact_metrics(run: Path) -> tuple[int, int] | None:
    """Compresses a finished run's ``metrics.jsonl`` into ``metrics.jsonl.xz``; (bytes before, after) or None.

    None when there is nothing to do: no summary.json, no plain log, or a live process holds
    the folder. An existing ``.xz`` is checked (MetricsFileError when damaged); when the plain
    log exists beside it (a kill mid-compaction or mid-resume), the plain log is the newer one.
    """
    plain, packed = run / METRICS, run / (METRICS + COMPRESSED)
    if packed.exists() and not plain.exists():
        metrics_text(packed)  # still readable?
        return None
    if not (run / "summary.json").is_file() or not plain.is_file() or _held(run):
        return None
    data = plain.read_bytes()
    compressed = lzma.compress(data)  # xz, CRC-64 checked; no time stamp, so the same bytes give the same file
    if lzma.decompress(compressed) != data:
        raise MetricsFileError(f"{packed}: the compressed copy does not give back {plain}; kept the plain log")
    write_atomic(packed, compressed)
    packed.chmod(plain.stat().st_mode & 0o777)  # the plain log's permissions, not the temporary file's 0600
    plain.unlink()
    return len(data), len(compressed)


def _held(run: Path) -> bool:
    """True when a live process writes the run (its ``.lock`` is held); a run never locked has no ``.lock``."""
    if not (run / ".lock").exists():
        return False
    from .runlock import holder_of
    return holder_of(run) is not None


def compact_figure(path: Path) -> tuple[int, int] | None:
    """Rewrites a PNG as a palette PNG when that is smaller and keeps the picture; (bytes before, after) or None."""
    data = path.read_bytes()
    try:
        smaller = palette_png(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if smaller is None or len(smaller) >= len(data):
        return None
    mode = path.stat().st_mode & 0o777
    write_atomic(path, smaller)
    path.chmod(mode)
    return len(data), len(smaller)


def compact(folders: list[Path], say=print) -> dict[str, list[int]]:
    """Compacts every finished run and figure under ``folders``; per kind, [files changed, bytes before, after]."""
    totals = {"metrics": [0, 0, 0], "figures": [0, 0, 0]}
    for root in folders:
        runs = [p.parent for p in sorted(root.rglob("summary.json")) if _visible(p, root)]
        figures = [p for p in sorted(root.rglob("*.png")) if _visible(p, root)]
        for kind, items, step in (("metrics", runs, compact_metrics), ("figures", figures, compact_figure)):
            for item in items:
                done = step(item)
                if done is not None:
                    totals[kind] = [totals[kind][0] + 1, totals[kind][1] + done[0], totals[kind][2] + done[1]]
                    say(f"{item}: {done[0]:,} -> {done[1]:,} bytes")
    return totals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="neuralgrok compact", description="finished runs' metrics as metrics.jsonl.xz "
                                 "and figures as palette PNGs, for committing; re-runnable, changes nothing twice")
    ap.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="results or run folders (searched below)")
    args = ap.parse_args(argv)
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        print(f"neuralgrok compact: error: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        totals = compact(args.folders)
    except ValueError as e:  # a damaged .xz or PNG file, named
        print(f"neuralgrok compact: error: {e}", file=sys.stderr)
        return 1
    for kind, (n, before, after) in totals.items():
        print(f"{kind}: {n} file(s) compacted, {before:,} -> {after:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
