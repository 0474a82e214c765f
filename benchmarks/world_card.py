"""A world's model card as a result file: the classifiers' accuracy in distribution, their failure rates outside
and inside each planted spot, the captioner's accuracy per axis and the embedder's zero-shot accuracy, each on
fresh images with its Wilson interval, and the targets `blindspots world card --verify` checks.

    python benchmarks/world_card.py --save                                    # the built-in world
    python benchmarks/world_card.py --world src/blindspots/world/worlds/touching --save
"""

from __future__ import annotations

import argparse
from pathlib import Path

from result_file import parse_args, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=None, help="a trained world folder (default: the built-in world)")
    parser.add_argument("--n", type=int, default=300, help="fresh images per cell")
    parser.add_argument("--seed", type=int, default=7, help="seed of the fresh images")
    parser.add_argument("--smoke", action="store_true", help="20 images per cell: checks the script")
    args = parse_args(parser)

    from blindspots.world.card import failed_thresholds, model_card
    from blindspots.world.folder import open_world

    card = model_card(args.world, n=20 if args.smoke else args.n, seed=args.seed)
    card["targets_missed"] = failed_thresholds(card)
    for key in ("classifier", "classifier_b"):
        section = card[key]
        weakest = min(section["blind_spots"], key=lambda spot: spot["failure_rate"])
        print(f"{key}: in-distribution accuracy {section['in_distribution_accuracy']:.3f}, outside-spot failure "
              f"{section['outside_failure_rate']:.3f}, weakest spot {weakest['name']} {weakest['failure_rate']:.2f}")
    print(f"targets missed: {', '.join(card['targets_missed']) or 'none'}")
    write_result(args, f"world_card-{open_world(args.world).spec.name}", card, world=args.world, uses_world=True)


if __name__ == "__main__":
    main()
