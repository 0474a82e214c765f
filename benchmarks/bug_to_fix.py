"""What the walk-through in docs/from-bug-to-fix.md costs: each of its commands run in turn on the built-in world,
in a fresh folder, with its wall time and CPU time (user + system of the command's process and its children).

    python benchmarks/bug_to_fix.py --save

Prints JSON: per step the command, wall and CPU seconds, and what it worked on (images, bugs, cases); and
whether the loop closed (the first classifier fails the suite, the fine-tuned one passes every case).
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from result_file import REPOSITORY, parse_args, write_result

FINETUNE = REPOSITORY / "examples" / "finetune_world_classifier.py"


def timed_step(command: list[str], folder: Path, expect: tuple[int, ...] = (0,)) -> tuple[dict[str, Any], str]:
    """Run one command in `folder`: (its wall and CPU seconds, its stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in expect:
        raise SystemExit(f"error: `{shlex.join(command)}` exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shown = shlex.join(["blindspots", *command[3:]] if command[1:3] == ["-m", "blindspots"] else
                       ["python", str(Path(command[1]).relative_to(REPOSITORY)), *command[2:]])
    return {"command": shown, "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="two classes, one round, one epoch: checks the script")
    args = parse_args(parser)
    cli = [sys.executable, "-m", "blindspots"]
    run_options = ["--classes", "boat,car", "--rounds", "1", "--budget", "800"] if args.smoke else []
    finetune_options = ["--epochs", "1", "--replay", "200"] if args.smoke else []
    steps: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="blindspots-bug-to-fix-") as scratch:
        folder = Path(scratch)
        steps["run"], out = timed_step([*cli, "run", "--out", "runs", "--run-id", "world", "--json", *run_options],
                                       folder)
        run = json.loads(out)
        steps["run"].update(images=run["summary"]["images_generated"], bugs=len(run["bugs"]))
        steps["suite"], _ = timed_step([*cli, "suite", "runs/world", "-o", "bugs.yaml"], folder)
        steps["check"], out = timed_step([*cli, "check", "bugs.yaml", "--classifier", "world:classifier",
                                          "--junit", "check.xml", "--json"], folder, expect=(0, 1))
        first = json.loads(out)
        steps["check"].update(cases=len(first["cases"]), images_generated=first["images"]["generated"],
                              passed=all(case["results"]["world:classifier"]["passed"] for case in first["cases"]))
        steps["export"], _ = timed_step([*cli, "export", "runs/world", "--out", "hard-set"], folder)
        steps["export"]["images"] = sum(1 for _ in (folder / "hard-set").rglob("*.png"))
        steps["finetune"], _ = timed_step([sys.executable, str(FINETUNE), "--hard-set", "hard-set", "--out",
                                           "fixed-world", *finetune_options], folder)
        both = ["--classifier", "world:classifier", "--classifier", "world:classifier@fixed-world"]
        steps["check_again"], out = timed_step([*cli, "check", "bugs.yaml", *both, "--json"], folder,
                                               expect=(0, 1))
        again = json.loads(out)
        fixed = "world:classifier@fixed-world"
        steps["check_again"].update(images_generated=again["images"]["generated"],
                                    fixed_passes_every_case=all(case["results"][fixed]["passed"]
                                                                for case in again["cases"]))
    figures = {"steps": steps}
    print(json.dumps(figures, indent=1))
    write_result(args, "bug_to_fix", figures, uses_world=True)


if __name__ == "__main__":
    main()
