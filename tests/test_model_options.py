"""Model options on the command line: one `--ROLE-option KEY=VALUE` syntax in every command that loads a
model, values read as YAML scalars, merged over a config file's options, and a fine-tuned checkpoint given by
path gated by `check` and re-tested by `transfer`."""

from __future__ import annotations

import json

import pytest
import yaml
from run_builder import build_run
from typer.testing import CliRunner

from blindspots.cli.errors import UserError
from blindspots.cli.main import app
from blindspots.cli.model_options import model_options, parse_option
from blindspots.models.trust import UntrustedCodeError
from blindspots.outputs.suite import build_suite, write_suite
from blindspots.pipeline.config import load_config

LABELS = ["boat", "car", "plane"]


@pytest.mark.parametrize("entry, expected", [
    ("weights_path=ckpt.pt", ("weights_path", "ckpt.pt")),
    ("num_classes=10", ("num_classes", 10)),
    ("pretrained=false", ("pretrained", False)),
    ("guidance=0.5", ("guidance", 0.5)),
    ("name='10'", ("name", "10")),
    ("zero_shot_template=a photo of a {label}", ("zero_shot_template", "a photo of a {label}")),
    (" device = cpu", ("device", "cpu")),
])
def test_values_are_read_as_yaml_scalars(entry, expected):
    assert parse_option(entry, "--classifier-option") == expected


@pytest.mark.parametrize("entry, named", [
    ("weights_path", "must be KEY=VALUE"),
    ("=3", "must be KEY=VALUE"),
    ("two words=3", "must be KEY=VALUE"),
    ("num_classes=", "gives num_classes no value"),
    ("labels=[a, b]", "not a list"),
    ("size={a: 1}", "not a mapping"),
])
def test_malformed_options_are_named_with_the_fix(entry, named):
    with pytest.raises(UserError, match=named):
        parse_option(entry, "--classifier-option")


def test_device_and_batch_size_reach_every_role_and_a_roles_own_option_wins():
    options = model_options({"classifier": ["batch_size=8", "weights_path=w.pt"], "generator": [], "embedder": []},
                            device="cpu", batch_size=32)
    assert options == {"classifier": {"device": "cpu", "batch_size": 8, "weights_path": "w.pt"},
                       "generator": {"device": "cpu", "batch_size": 32},
                       "embedder": {"device": "cpu", "batch_size": 32}}
    # Nothing given: no role gets an entry, so a config file's options stay as they are.
    assert model_options({"classifier": [], "generator": []}) == {}


def test_command_line_options_merge_over_a_config_files_options(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"models": {"classifier": {"batch_size": 64, "device": "cuda"},
                                                 "generator": {"size": 48}}}))
    merged = load_config(config, models={"classifier": {"device": "cpu"}})
    assert merged.models == {"classifier": {"batch_size": 64, "device": "cpu"}, "generator": {"size": 48}}


def test_a_file_still_may_not_run_code_when_other_options_of_its_role_are_typed(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"models": {"classifier": {"trust_remote_code": True}}}))
    with pytest.raises(UntrustedCodeError, match="trust_remote_code"):
        load_config(config, models={"classifier": {"device": "cpu"}})
    # Typed by the user, the same option is the user's own choice.
    typed = load_config(None, models={"classifier": {"trust_remote_code": True}})
    assert typed.models["classifier"]["trust_remote_code"] is True


def test_run_passes_typed_options_to_the_adapter(tmp_path):
    result = CliRunner().invoke(app, ["run", "--classes", "boat,car", "--out", str(tmp_path),
                                      "--classifier-option", "batch_size=0"])
    assert result.exit_code == 2, result.output
    assert "batch_size must be at least 1" in result.output
    unknown = CliRunner().invoke(app, ["run", "--classes", "boat,car", "--out", str(tmp_path),
                                       "--embedder-option", "colour=blue"])
    assert unknown.exit_code == 2 and "colour" in unknown.output, unknown.output


# ---- a fine-tuned checkpoint, given by path --------------------------------------------------------------------

def _always_boat_checkpoint(path, num_classes=len(LABELS)):
    """A timm `test_resnet` fine-tuned, as far as its head goes, to answer "boat" to every image."""
    import timm
    import torch

    model = timm.create_model("test_resnet", num_classes=num_classes, pretrained=False)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.tensor([10.0] + [0.0] * (num_classes - 1)))
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def checkpoint_args(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    weights = _always_boat_checkpoint(tmp_path / "boat-v2.pt")
    return ["--classifier", "timm:test_resnet", "--classifier-option", f"weights_path={weights}",
            "--classifier-option", f"num_classes={len(LABELS)}", "--classifier-option", f"labels={labels}",
            "--device", "cpu", "--batch-size", "16"]


@pytest.fixture
def run_folder(tmp_path):
    return build_run(tmp_path / "run")


def test_check_gates_a_checkpoint_given_by_path(run_folder, tmp_path, checkpoint_args, hf_offline):
    suite_file = write_suite(build_suite(run_folder, images=12), tmp_path / "bugs.yaml")
    result = CliRunner().invoke(app, ["check", str(suite_file), *checkpoint_args, "--json"])
    assert result.exit_code == 1, result.output  # every car fails: the gate is shut
    payload = json.loads(result.stdout)
    assert payload["config"]["classifier_options"]["num_classes"] == 3
    outcomes = {case["id"]: case["results"]["timm:test_resnet"] for case in payload["cases"]}
    for case in payload["cases"]:
        outcome = outcomes[case["id"]]
        # The weights loaded are the file's: "boat" for every image, so boats pass and cars all fail.
        expected = 0 if case["class"] == "boat" else outcome["n"]
        assert outcome["n"] == 12 and outcome["failures"] == expected, case


@pytest.mark.parametrize("change, named", [
    (("weights_path", "missing.pt"), "missing.pt does not exist"),
    (("num_classes", "5"), "does not fit timm test_resnet"),
])
def test_a_wrong_checkpoint_is_one_line_naming_it(run_folder, tmp_path, checkpoint_args, change, named,
                                                  hf_offline):
    suite_file = write_suite(build_suite(run_folder, images=4), tmp_path / "bugs.yaml")
    key, value = change
    args = [f"{key}={tmp_path / value if key == 'weights_path' else value}" if a.startswith(f"{key}=") else a
            for a in checkpoint_args]
    if key == "num_classes":
        (tmp_path / "labels.txt").write_text("\n".join([*LABELS, "bird", "fish"]) + "\n")
    result = CliRunner().invoke(app, ["check", str(suite_file), *args])
    assert result.exit_code == 2, result.output
    assert named in result.output and "Traceback" not in result.output


def test_transfer_retests_bugs_on_a_checkpoint_given_by_path(run_folder, checkpoint_args, hf_offline):
    result = CliRunner().invoke(app, ["transfer", str(run_folder), *checkpoint_args, "--no-report", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["config"]["classifier_options"]["weights_path"].endswith("boat-v2.pt")
    bugs = [bug for source in payload["sources"].values() for bug in source["bugs"]]
    assert bugs
    for bug in bugs:
        rate = bug["rates"]["timm:test_resnet"]
        assert rate["rate"] == (0.0 if bug["class"] == "boat" else 1.0), bug


def test_classify_takes_the_same_options(tmp_path, checkpoint_args, hf_offline):
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    result = CliRunner().invoke(app, ["classify", *checkpoint_args, "--json", str(image)])
    assert result.exit_code == 0, result.output
    top = json.loads(result.stdout)["images"][0]["top"][0]
    assert top["label"] == "boat" and top["probability"] > 0.99
