"""The discovery benchmark: region, exactness, precision and minimality scoring on hand-made cases, and one
end-to-end run on the built-in world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blindspots.evaluation import regions
from blindspots.evaluation.discovery_benchmark import (
    SHIPPED_WORLDS,
    credited_spots,
    duplication,
    failure_modes,
    ground_truth_generator,
    mode_overrides,
    realism_overrides,
    resolve_world,
    run_benchmark,
    score_findings,
)
from blindspots.pipeline.config import ConfigError, load_config
from blindspots.world.spec import load_spec

SPECS = Path(load_spec.__code__.co_filename).parent / "specs"

PRIOR = {
    "class": {"fish": 0.5, "lamp": 0.5},
    "background": {"sand": 0.5, "grass": 0.5},
    "weather": {"clear": 0.25, "fog": 0.25, "rain": 0.25, "snow": 0.25},
    "size": {"small": 0.5, "large": 0.5},
}
FISH_ON_SAND = {"class": "fish", "background": "sand"}
FISH_SPOTS = [{**FISH_ON_SAND, "weather": w} for w in ("clear", "fog", "rain", "snow")]


@pytest.fixture(scope="module")
def touching():
    return load_spec(SPECS / "touching.yaml")


# ------------------------------------------------------------------------------------------ region rules

def test_union_mass_is_the_prior_probability_of_the_union():
    assert regions.union_mass(PRIOR, FISH_SPOTS) == pytest.approx(0.25)
    assert regions.union_mass(PRIOR, FISH_SPOTS[:2]) == pytest.approx(0.125)
    # Overlapping conjunctions are not counted twice.
    assert regions.union_mass(PRIOR, [FISH_ON_SAND, FISH_SPOTS[0]]) == pytest.approx(0.25)
    assert regions.union_mass(PRIOR, FISH_SPOTS, within={"class": "lamp"}) == 0.0


def test_a_description_naming_the_union_of_touching_spots_is_exact_for_each():
    for spot in FISH_SPOTS:
        assert regions.names_exactly(PRIOR, FISH_ON_SAND, spot, FISH_SPOTS)
    assert regions.region_precision(PRIOR, FISH_ON_SAND, FISH_SPOTS) == pytest.approx(1.0)
    assert regions.region_recall(PRIOR, FISH_SPOTS, [FISH_ON_SAND]) == pytest.approx(1.0)


def test_a_wider_description_is_imprecise_and_covers_nothing():
    assert regions.region_precision(PRIOR, {"class": "fish"}, FISH_SPOTS) == pytest.approx(0.5)
    assert not regions.names_exactly(PRIOR, {"class": "fish"}, FISH_SPOTS[0], FISH_SPOTS)
    assert regions.region_recall(PRIOR, FISH_SPOTS, [{"class": "fish"}]) == 0.0


def test_a_narrower_description_is_precise_but_not_exact_for_the_spot_it_is_part_of():
    small_fish_in_fog = {**FISH_SPOTS[1], "size": "small"}
    assert regions.region_precision(PRIOR, small_fish_in_fog, FISH_SPOTS) == pytest.approx(1.0)
    assert not regions.names_exactly(PRIOR, small_fish_in_fog, FISH_SPOTS[1], FISH_SPOTS)
    assert regions.region_recall(PRIOR, FISH_SPOTS, [small_fish_in_fog]) == pytest.approx(0.125)


def test_cells_are_weighted_by_the_prior():
    prior = {**PRIOR, "weather": {"clear": 0.7, "fog": 0.1, "rain": 0.1, "snow": 0.1}}
    clear_and_fog = FISH_SPOTS[:2]
    assert regions.region_precision(prior, FISH_ON_SAND, clear_and_fog) == pytest.approx(0.8)
    assert regions.region_recall(prior, clear_and_fog, [FISH_SPOTS[0]]) == pytest.approx(0.7 / 0.8)
    assert regions.region_recall(prior, clear_and_fog, [FISH_SPOTS[1]]) == pytest.approx(0.1 / 0.8)


def test_one_spot_named_exactly_among_touching_ones():
    assert regions.names_exactly(PRIOR, FISH_SPOTS[2], FISH_SPOTS[2], FISH_SPOTS)
    assert not regions.names_exactly(PRIOR, FISH_SPOTS[2], FISH_SPOTS[3], FISH_SPOTS)
    assert regions.region_recall(PRIOR, FISH_SPOTS, [FISH_SPOTS[2], FISH_SPOTS[3]]) == pytest.approx(0.5)


def test_bad_region_input_names_the_problem():
    with pytest.raises(ValueError, match="'colour' is not in the prior"):
        regions.union_mass(PRIOR, [{"class": "fish", "colour": "red"}])
    with pytest.raises(ValueError, match="'mud' of 'background'"):
        regions.region_precision(PRIOR, {"class": "fish", "background": "mud"}, FISH_SPOTS)
    with pytest.raises(ValueError, match="region is empty"):
        regions.region_recall(PRIOR, [], [FISH_ON_SAND])


def test_overlap_of_conjunctions():
    assert regions.overlaps(FISH_ON_SAND, FISH_SPOTS[0]) and regions.overlaps(FISH_SPOTS[0], FISH_ON_SAND)
    assert not regions.overlaps(FISH_SPOTS[0], FISH_SPOTS[1])
    assert regions.overlaps({"class": "fish", "size": "small"}, FISH_SPOTS[2])


def test_minimality_margin():
    assert regions.is_minimal(0.9, [0.3, 0.5], margin=0.1)
    assert not regions.is_minimal(0.9, [0.3, 0.85], margin=0.1)  # one phrase added nothing
    assert regions.is_minimal(0.9, [0.79], margin=0.1)
    assert regions.is_minimal(0.9, [], margin=0.1)  # a single phrase has no shorter form
    with pytest.raises(ValueError, match="margin"):
        regions.is_minimal(0.9, [0.3], margin=1.5)


# ---------------------------------------------------------------------------------- crediting spots

def _cell(**values):
    base = {"class": "fish", "colour": "blue", "pattern": "plain", "background": "grass", "lighting": "day",
            "size": "medium", "weather": "clear", "style": "shaded"}
    return {**base, **values}


FISH_SPOT_NAMES = ["fish_on_sand_clear", "fish_on_sand_fog", "fish_on_sand_rain", "fish_on_sand_snow"]


def test_one_description_of_touching_spots_credits_all_of_them(touching):
    # Few failures (a sequential test that stopped early), none in snow: the words still reach every weather.
    failures = [_cell(background="sand", weather=w) for w in ("clear", "fog", "fog")]
    assert credited_spots(touching, failures, {"class": "fish", "background": "sand"}) == FISH_SPOT_NAMES
    fog = {"class": "fish", "background": "sand", "weather": "fog"}
    assert credited_spots(touching, failures[1:], fog) == ["fish_on_sand_fog"]


def test_a_nested_spot_with_its_own_label_is_not_credited_by_the_broader_description(touching):
    on_road = {"class": "boat", "background": "road"}
    failures = [_cell(**{"class": "boat"}, background="road", lighting=light)
                for light in ("day", "day", "dusk", "night")]
    assert credited_spots(touching, failures, on_road) == ["boat_on_road"]
    nested = [_cell(**{"class": "boat"}, background="road", lighting="night")] * 3
    assert credited_spots(touching, nested, {**on_road, "lighting": "night"}) == ["boat_on_road_at_night"]
    # Half and half: no failure mode holds a majority, so neither spot is credited.
    assert credited_spots(touching, failures[:1] + nested[:1], on_road) == []


def test_spots_of_one_class_with_different_labels_are_credited_apart(touching):
    indoors = {"class": "lamp", "background": "indoor"}
    lamps = [_cell(**{"class": "lamp"}, background="indoor", size=s) for s in ("small", "small", "small", "large")]
    assert credited_spots(touching, lamps, indoors) == ["small_lamp_indoors"]
    assert credited_spots(touching, lamps[:1] + lamps[3:] * 3, indoors) == ["large_lamp_indoors"]
    assert credited_spots(touching, lamps[:2] + lamps[3:] * 2, indoors) == []  # a merged bug credits neither
    outside = [_cell(**{"class": "lamp"}, background="grass")] * 3 + [lamps[0]]
    assert credited_spots(touching, outside, {"class": "lamp"}) == []


def _finding(id, cls, cells, spots, refines=None):
    return {"id": id, "class": cls, "description": "", "cells": {"class": cls, **cells}, "spots": spots,
            "refines": refines, "failures": 10}


def test_score_findings_credits_unions_refinements_and_counts_imprecise_bugs(touching):
    fish_spots = FISH_SPOT_NAMES
    findings = [
        _finding(1, "fish", {"background": "sand"}, fish_spots),               # the union, exactly
        _finding(2, "lamp", {"background": "indoor"}, ["small_lamp_indoors"]),  # wider than both lamp spots
        _finding(3, "lamp", {"background": "indoor", "size": "large"}, ["large_lamp_indoors"], refines=2),
        _finding(4, "cup", {"colour": "red"}, []),                             # unplanted
    ]
    scored = score_findings(touching, findings)
    figures = scored["figures"]
    assert scored["spots_found"] == sorted([*fish_spots, "large_lamp_indoors", "small_lamp_indoors"])
    assert scored["spots_missed"] == ["boat_on_road", "boat_on_road_at_night"]
    # The refinement names large lamps indoors exactly; "lamp indoors" reaches medium lamps.
    assert scored["spots_exact"] == sorted([*fish_spots, "large_lamp_indoors"])
    assert figures["recall"] == pytest.approx(6 / 8)
    assert figures["exactness"] == pytest.approx(5 / 6)
    assert figures["precision"] == pytest.approx(2 / 3)  # bugs only: the refinement is not a bug
    assert [b["region_precision"] for b in scored["bugs"]] == pytest.approx([1.0, 2 / 3, 0.0])
    assert figures["region_precision"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    # Over the bugs that credit a spot only: the unplanted cup bug is left out.
    assert figures["planted_region_precision"] == pytest.approx((1 + 2 / 3) / 2)
    # Planted mass: fish on sand (1/7 of fish), small and large lamps indoors (2/3 * 1/7 of lamps), boat on
    # road (1/7 of boats); covered: fish on sand and large lamps indoors.
    planted = 1 / 7 + 2 / 21 + 1 / 7
    assert figures["region_recall"] == pytest.approx((1 / 7 + 1 / 21) / planted)
    assert scored["region_recall_by_class"]["lamp"] == pytest.approx(0.5)
    assert scored["refinements"][0]["refines"] == 2
    assert scored["spots_only_in_refinements"] == ["large_lamp_indoors"]
    # Two bugs credit two failure modes (the refinement is not a bug, the cup bug credits none).
    assert figures["duplication"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------- duplication

def test_paraphrases_of_one_failure_mode_are_duplicates_and_distinct_modes_are_not():
    paraphrases = [{"spots": ["boat_on_road"]}, {"spots": ["boat_on_road"]}]        # road, street
    assert duplication(paraphrases) == pytest.approx(2.0)
    distinct = [{"spots": ["green_umbrella"]}, {"spots": ["umbrella_on_grass"]}]
    assert duplication(distinct) == pytest.approx(1.0)
    assert duplication([*paraphrases, *distinct, {"spots": []}]) == pytest.approx(4 / 3)
    assert duplication([{"spots": []}]) is None and duplication([]) is None


def test_bugs_whose_credited_spots_overlap_are_one_mode():
    # "fish on sand" credits every weather; "fish on sand in fog" one of them; so both state one mode.
    bugs = [{"spots": FISH_SPOT_NAMES}, {"spots": ["fish_on_sand_fog"]}, {"spots": ["small_lamp_indoors"]}]
    assert sorted(map(sorted, failure_modes(bugs))) == [sorted(FISH_SPOT_NAMES), ["small_lamp_indoors"]]
    assert duplication(bugs) == pytest.approx(3 / 2)
    # A chain joins modes: a-b and b-c are one mode even though no bug credits a and c together.
    assert len(failure_modes([{"spots": ["a", "b"]}, {"spots": ["b", "c"]}, {"spots": ["d"]}])) == 2


def test_score_findings_on_a_world_without_spots_has_no_planted_figures():
    null = load_spec(SPECS / "null.yaml")
    scored = score_findings(null, [_finding(1, "cup", {"colour": "red"}, [])])
    assert all(value is None for value in scored["figures"].values())
    assert scored["bugs"][0]["region_precision"] == 0.0


# ---------------------------------------------------------------------------------- modes and worlds

def test_modes_become_the_confirmation_setting_and_an_unknown_mode_is_named():
    assert mode_overrides("fixed") == {"confirmation": "fixed"}
    assert mode_overrides("sequential") == {"confirmation": "sequential"}
    with pytest.raises(ConfigError, match="'adaptive' is unknown; use fixed or sequential"):
        mode_overrides("adaptive")


def test_realism_levels_set_the_three_roles_and_keep_their_other_options():
    assert realism_overrides("real") == {"models": {role: {"realism": "real"}
                                                    for role in ("generator", "captioner", "embedder")}}
    merged = realism_overrides("clean", {"generator": {"size": 32}, "classifier": {"batch_size": 8}})
    assert merged["models"]["generator"] == {"size": 32, "realism": "clean"}
    assert merged["models"]["classifier"] == {"batch_size": 8}
    with pytest.raises(ConfigError, match="realism level 'noisy' is unknown; use clean or real"):
        realism_overrides("noisy")


def test_ground_truth_follows_the_runs_own_generator():
    config = load_config({**realism_overrides("real"), "generator": "world:generator"})
    truth, clean = ground_truth_generator(config), ground_truth_generator(load_config({}))
    assert truth.realism.adherence["size"] < 1.0 and clean.realism.is_clean
    prompts, seeds = ["a small bird in falling snow"] * 50, list(range(50))
    drawn = [r.attributes for r in truth.render_prompts(prompts, seeds)]
    assert drawn == [r.attributes for r in _configured_generator(config).render_prompts(prompts, seeds)]
    assert drawn != [r.attributes for r in clean.render_prompts(prompts, seeds)]


def _configured_generator(config):
    from blindspots.models.registry import load_model

    return load_model("generator", config.generator, **config.model_options("generator"))


def test_shipped_worlds_resolve_by_name_and_a_bad_name_is_named(tmp_path):
    assert resolve_world("null") == str(SHIPPED_WORLDS / "null")
    assert resolve_world(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ConfigError, match="'nowhere' is neither a world folder nor a shipped test world"):
        resolve_world("nowhere")


def test_bad_confirmation_option_is_one_line_before_any_run(tmp_path):
    from blindspots.cli.main import app

    result = CliRunner().invoke(app, ["bench", "discovery", "--confirmation", "fixed,fixed",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "must name each one once" in result.output
    assert not any(tmp_path.iterdir())
    result = CliRunner().invoke(app, ["bench", "discovery", "--realism", "clean,noisy", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "realism level 'noisy' is unknown" in result.output
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_benchmark_on_the_built_in_world_scores_every_figure(tmp_path):
    overrides = {"classes": ["boat", "plane", "cup"], "rounds": 1, "budget": 1000}
    result = run_benchmark(seeds=1, out=tmp_path, overrides=overrides, modes=["fixed", "sequential"],
                           fresh_images=40)
    modes = result["realism"]["clean"]["modes"]
    assert list(result["realism"]) == ["clean"] and list(modes) == ["fixed", "sequential"]
    for mode in modes.values():
        for key in ("recall", "replication", "exactness", "precision", "region_recall", "region_precision",
                    "minimality", "planted_region_precision", "planted_minimality", "images", "images_per_bug"):
            assert mode[key] is not None, key
    # Both modes ran the same seed on the same world, each in its own run folder with its own setting.
    from blindspots.pipeline.config import stored_run_config
    from blindspots.store.run_store import RunStore

    for name, mode in modes.items():
        with RunStore.open(mode["seeds"][0]["run_dir"]) as store:
            assert stored_run_config(store).confirmation == name
    fixed = modes["fixed"]
    run = fixed["seeds"][0]
    # Boats on a road and planes at night are planted and easy: discovery finds both, exactly.
    assert {"boat_on_road", "plane_at_night"} <= set(run["spots_found"])
    assert fixed["recall"] == pytest.approx(2 / 6)
    assert 0 < fixed["images"] <= 1000
    for bug in run["bug_details"]:
        assert bug["fresh"]["n"] > 0 and 0 <= bug["fresh"]["interval"][0] <= bug["fresh"]["rate"]
        assert isinstance(bug["minimal"], bool)
        assert all(form["n"] > 0 and form["dropped"] for form in bug["shorter_forms"])
    json.dumps(result, default=str)
