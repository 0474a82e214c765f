"""Time what a person runs after discovery — the HTML report, both export formats, compare — on one run, and
print the sizes of what they write.

    .venv/bin/python benchmarks/report_speed.py [RUN_DIR]

Without RUN_DIR it first runs a small discovery on the built-in world (four classes, two rounds).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

SMALL = dict(classes=["boat", "car", "house", "fish"], baseline_per_class=60, confirm_per_candidate=32,
             budget=3000, rounds=2, max_candidates_per_class=3)


def timed(label: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    print(f"{label:<28} {time.perf_counter() - start:>7.2f} s")
    return result


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(run_dir: Path | None) -> None:
    from blindspots.pipeline.compare import compare_runs

    from blindspots.outputs.export.dataset import export_dataset
    from blindspots.outputs.report.html import write_report
    from blindspots.store import RunStore

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if run_dir is None:
            import blindspots

            run_dir = timed("discovery (built-in world)", blindspots.discover,
                            dict(SMALL, out=str(scratch / "runs"))).run_dir
        with RunStore.open(run_dir) as store:
            print(f"run {run_dir}: {len(store.candidates.bugs())} bugs, {store.samples.images_generated()} images")
        report = timed("report.html", write_report, run_dir)
        print(f"{'  size':<28} {report.stat().st_size / 1e6:>7.2f} MB")
        for format in ("imagefolder", "parquet"):
            summary = timed(f"export {format}", export_dataset, run_dir, scratch / format, format=format)
            print(f"{'  images / size':<28} {summary.images:>7} / {folder_size(scratch / format) / 1e6:.2f} MB")
        comparison = timed("compare (run with itself)", compare_runs, run_dir, run_dir)
        print(f"{'  matched':<28} {len(comparison.both):>7}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
