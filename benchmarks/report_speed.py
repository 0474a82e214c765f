"""Time what a person runs after discovery — the HTML report, both export formats, compare — on one run, and
print the sizes of what they write.

    python benchmarks/report_speed.py --save [RUN_DIR]

Without RUN_DIR it first runs a small discovery on the built-in world (four classes, two rounds).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from result_file import parse_args, write_result

SMALL = dict(classes=["boat", "car", "house", "fish"], baseline_per_class=60, confirm_per_candidate=32,
             budget=3000, rounds=2, max_candidates_per_class=3)


def timed(label: str, seconds: dict[str, float], function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    seconds[label] = round(time.perf_counter() - start, 3)
    print(f"{label:<28} {seconds[label]:>7.2f} s")
    return result


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a finished run (default: a small discovery first)")
    parser.add_argument("--smoke", action="store_true", help="a smaller discovery, one round: checks the script")
    args = parse_args(parser)

    from blindspots.outputs.export.dataset import export_dataset
    from blindspots.outputs.report.compare import compare_runs
    from blindspots.outputs.report.html import write_report
    from blindspots.store import RunStore

    seconds: dict[str, float] = {}
    figures: dict = {"seconds": seconds}
    run_dir = args.run_dir
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if run_dir is None:
            import blindspots

            config = dict(SMALL, out=str(scratch / "runs"))
            if args.smoke:
                config.update(classes=["boat", "car"], rounds=1, baseline_per_class=30)
            run_dir = timed("discovery", seconds, blindspots.discover, config).run_dir
        with RunStore.open(run_dir) as store:
            figures.update(bugs=len(store.candidates.bugs()), images=store.samples.images_generated())
        print(f"run {run_dir}: {figures['bugs']} bugs, {figures['images']} images")
        report = timed("report", seconds, write_report, run_dir)
        figures["report_mb"] = round(report.stat().st_size / 1e6, 2)
        print(f"{'  size':<28} {figures['report_mb']:>7.2f} MB")
        for format in ("imagefolder", "parquet"):
            summary = timed(f"export {format}", seconds, export_dataset, run_dir, scratch / format, format=format)
            figures[f"export_{format}"] = {"images": summary.images,
                                           "mb": round(folder_size(scratch / format) / 1e6, 2)}
            print(f"{'  images / size':<28} {summary.images:>7} / {figures[f'export_{format}']['mb']:.2f} MB")
        comparison = timed("compare with itself", seconds, compare_runs, run_dir, run_dir)
        figures["compare_matched"] = len(comparison.both)
        print(f"{'  matched':<28} {len(comparison.both):>7}")
    write_result(args, "report_speed", figures, uses_world=args.run_dir is None)


if __name__ == "__main__":
    main()
