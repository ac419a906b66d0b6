"""Sensitive-data detectors benchmark: MB/s per core of the engine over a labelled corpus of
mixed files (csv, json, jsonl, parquet, txt, some gzipped), beside a raw read of the same bytes
(the floor), reading + decoding alone, and a plain per-cell loop (Python `re` prefilter, then
the same validation) over the same decoded cells. Also precision/recall per detector family.

    python -m bench.detectors [--files 200 --rows 2000 --positive-rate 0.002]

Times are CPU seconds of this process with pyarrow held to one thread, so figures are per core
and less skewed by other work on the machine; each figure is the median of --repeat rounds (the
measurements taken in turn in each round), printed with its ratio to read + decode and to the
plain loop, both measured in the same run.
"""
from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from harness.corpus import FAMILIES, finding_key, generate, score
from services.adapters.arrow_memory import keep_freed_pages
from services.adapters.file_cells import load, pieces, scan_files
from services.domain.detectors import Engine


def cpu(fn):
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--positive-rate", type=float, default=0.002, help="share of cells holding a true positive")
    parser.add_argument("--negative-rate", type=float, default=0.01, help="share of cells holding a hard negative")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="rounds of the read, decode and engine measurements")
    parser.add_argument("--skip-plain", action="store_true")
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    keep_freed_pages()  # the memory pool the worker scans with (cli/main.py)

    corpus = generate(args.seed, files=args.files, rows=args.rows, positive_rate=args.positive_rate,
                      negative_rate=args.negative_rate)
    engine = Engine()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for f in corpus.files:
            path = Path(tmp) / f.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.data)
            paths.append((path, f.name))
        size = corpus.size
        print(f"{len(paths)} files, {size / 1e6:.1f} MB, {len(corpus.truth)} planted true positives")

        # A worker is long-lived: phonenumbers and stdnum load their metadata on first use.
        scan_files([(f.data, f.name) for f in generate(args.seed + 1, files=10, rows=50).files], engine)
        times: dict[str, list[float]] = {}
        for _ in range(args.repeat):  # in turn, so the machine's drift touches every measurement alike
            times.setdefault("raw read (floor)", []).append(cpu(lambda: [p.read_bytes() for p, _ in paths])[0])
            decode, cells = cpu(lambda: sum(len(piece.values) for p, n in paths
                                            for piece in pieces(*load(p.read_bytes(), n))))
            times.setdefault("read + decode", []).append(decode)
            times.setdefault("detect only (decoded cells in memory)", []).append(detect_only(paths, engine))
            scan, results = cpu(lambda: scan_files([(p.read_bytes(), n) for p, n in paths], engine))
            times.setdefault("engine: read + decode + detect", []).append(scan)
        if not args.skip_plain:
            times["plain per-cell loop, Python re prefilter"] = [cpu(lambda: plain(paths, engine))[0]]
    print(f"{cells} cells/lines; medians of {args.repeat} rounds (the plain loop: one), CPU seconds")
    median = {label: statistics.median(t) for label, t in times.items()}
    decode, loop = median["read + decode"], median.get("plain per-cell loop, Python re prefilter")
    print(f"  {'':42s} {'MB/s per core':>14s} {'CPU s':>6s} {'range':>11s} {'speed vs read+decode':>20s}"
          f" {'vs plain loop':>13s}")
    for label, t in times.items():
        m = median[label]
        print(f"  {label:42s} {size / m / 1e6:14.1f} {m:6.2f} {min(t):5.2f}-{max(t):.2f} {decode / m:20.2f}"
              + (f" {loop / m:13.1f}" if loop else ""))
    scan = median["engine: read + decode + detect"]
    print(f"  detection in the engine (engine less read + decode): {scan - decode:.2f} s")
    found = {finding_key(f.name, x) for f, r in zip(corpus.files, results, strict=True) for x in r.findings}
    print(f"findings {len(found)}, {len(found) / scan:.0f}/s")
    scores = score(corpus, found)
    print(f"  {'family':14s} {'precision':>9s} {'recall':>7s} {'tp':>6s} {'fp':>4s} {'fn':>4s}")
    for family in FAMILIES:
        s = scores[family]
        print(f"  {family:14s} {s['precision']:9.4f} {s['recall']:7.4f} {s['tp']:6d} {s['fp']:4d} {s['fn']:4d}")


def detect_only(paths, engine: Engine) -> float:
    """CPU seconds of the engine over every file's decoded cells, handed to it as one batch."""
    decoded = [piece for p, n in paths for piece in pieces(*load(p.read_bytes(), n))]
    return cpu(lambda: engine.scan(decoded))[0]


def plain(paths, engine: Engine) -> int:
    """The same detectors without vectorization: every cell through Python's re (the union of
    the prefilters), then the engine's validation."""
    union = re.compile("|".join(f"(?:{d.prefilter})" for d in engine.detectors))
    found = 0
    for path, name in paths:
        for piece in pieces(*load(path.read_bytes(), name)):
            for cell in piece.values.to_pylist():
                if cell and union.search(cell):
                    found += len(engine._validate(cell, engine.detectors))
    return found


if __name__ == "__main__":
    main()
