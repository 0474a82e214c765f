"""Count the candidate descriptions of finished runs that name two values of one attribute of their world
("medium sized small bottle", "boat at dusk in daylight"), as the world's own parser reads them. No image can
match such a description, so a run should propose none.

    .venv/bin/python benchmarks/contradictory_descriptions.py RUN_DIR [RUN_DIR ...]

Each run is read with the spec of the world its generator names (`world:generator@FOLDER`, or the built-in
world). `blindspots bench discovery` reports the same count per seed.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(run_dirs: list[Path]) -> None:
    from blindspots.evaluation.discovery_benchmark import contradictory_descriptions, world_dir_of
    from blindspots.pipeline.config import stored_run_config
    from blindspots.store import RunStore
    from blindspots.world.spec import load_spec

    for run_dir in run_dirs:
        with RunStore.open(run_dir, read_only=True) as store:
            folder = world_dir_of(stored_run_config(store).generator)
            candidates = store.candidates.all()
        found = contradictory_descriptions(load_spec(Path(folder) / "spec.yaml" if folder else None), candidates)
        print(f"{run_dir}: {len(found)} of {len(candidates)} candidate descriptions name two values of one attribute")
        for description in found:
            print(f"  {description}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main([Path(arg) for arg in sys.argv[1:]])
