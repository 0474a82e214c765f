"""Export a run's confirmed blind spots as a hard image dataset that Hugging Face `datasets` reads directly.

`imagefolder`: `images/<class>/<file>.png` with `metadata.jsonl` beside them;
`datasets.load_dataset("imagefolder", data_dir=OUT)`.
`parquet`: `data/train-00000-of-00001.parquet` with the image bytes and the same columns;
`datasets.load_dataset("parquet", data_dir=OUT)` (or `data_files=`).

Each image keeps its provenance (class, accepted labels, prompt, seed, description, bug id, the prediction of
the classifier under test, whether that was a failure), and a README.md card says how the set was made. The
folder is written beside the target and renamed into place, so an interrupted export leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blindspots.outputs.bugs import Bug, bug_key, read_bugs
from blindspots.outputs.finished import require_finished
from blindspots.pipeline.config import stored_run_config
from blindspots.pipeline.decisions import bug_of
from blindspots.store import RunStore
from blindspots.store.guard import check_output_path
from blindspots.store.images import current_umask

FORMATS = ("imagefolder", "parquet")
METADATA_NAME = "metadata.jsonl"
PARQUET_PATH = "data/train-00000-of-00001.parquet"


class ExportError(ValueError):
    """The export cannot be written as asked; the message says what to change."""


@dataclass
class ExportSummary:
    out: Path
    format: str
    images: int
    failures: int
    bugs: int
    per_bug: dict[str, int] = field(default_factory=dict)
    left_out: int = 0  # images skipped because their file was missing or damaged (--skip-damaged)


def export_dataset(run_dir: str | Path, out: str | Path, format: str = "imagefolder",
                   only_failures: bool = False, skip_damaged: bool = False,
                   unfinished: bool = False) -> ExportSummary:
    """Write the confirmation images of the run's confirmed bugs to `out` (a new or empty folder).

    Every image is checked against its hash first: a missing or damaged PNG stops the export with a line that
    says how many there are, unless `skip_damaged`, which leaves them out and says so in the card. A run that
    has not finished is exported only with `unfinished` (and the card says so)."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    out = Path(out)
    check_output_path(out, what="export folder")
    _check_target(out)
    with RunStore.open(run_dir, read_only=True) as store:
        require_finished(store, unfinished, "the dataset")
        records = list(_records(store, only_failures))
        if not records:
            what = "misclassified images of confirmed blind spots" if only_failures else "confirmed blind spots"
            raise ExportError(f"run {store.root} has no {what} to export; run a larger discovery "
                              "(more --budget or --rounds) or export without --only-failures")
        records, left_out = _intact(store, records, skip_damaged)
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=_staging_prefix(out) + f"{os.getpid()}-"))
        try:
            if format == "imagefolder":
                _write_imagefolder(store, records, staging)
            else:
                _write_parquet(store, records, staging)
            summary = _summary(out, format, records, read_bugs(store, examples=0))
            summary.left_out = left_out
            (staging / "README.md").write_text(_card(store, summary, only_failures), encoding="utf-8")
            os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide the set from others
            if out.exists():
                out.rmdir()  # checked empty above; rename cannot replace it on every platform
            os.replace(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return summary


def _staging_prefix(out: Path) -> str:
    return f".{out.name}.partial-"


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the hidden staging folders that killed exports to `out` left behind (the staging folder is
    named after the pid that writes it; a folder whose process is gone is stale). Returns what it removed."""
    removed = []
    for folder in out.parent.glob(_staging_prefix(out) + "*"):
        pid_text = folder.name.removeprefix(_staging_prefix(out)).split("-", 1)[0]
        if folder.is_dir() and not (pid_text.isdigit() and _process_alive(int(pid_text))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's process
    return True


def _intact(store: RunStore, records: list[dict[str, Any]], skip_damaged: bool) -> tuple[list[dict[str, Any]], int]:
    """The records whose image is present and decodes to its hash; an export never ships a broken image."""
    problems = {}
    for digest in dict.fromkeys(r["image_hash"] for r in records):
        error = store.images.verify(digest)
        if error is not None:
            problems[digest] = error
    if not problems:
        return records, 0
    kept = [r for r in records if r["image_hash"] not in problems]
    if not skip_damaged:
        first = next(iter(problems.values()))
        raise ExportError(
            f"{len(problems)} image(s) of the hard set are missing or damaged in {store.images.root} (first: "
            f"{first}); pass --skip-damaged to export the other {len(kept)} images without them, or restore the "
            "run folder from a copy")
    if not kept:
        raise ExportError(f"every image of the hard set is missing or damaged in {store.images.root}; restore "
                          "the run folder from a copy")
    return kept, len(records) - len(kept)


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"export target {out} is a file; pass a new folder with --out")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(f"export target {out} exists and is not empty; pass a new folder with --out "
                          "or remove the old export first")


def _records(store: RunStore, only_failures: bool) -> Iterator[dict[str, Any]]:
    candidates = {c.id: c for c in store.candidates.all()}
    summary = store.log.summary()
    accepted = summary.accepted_labels() if summary is not None else {}
    for sample in store.samples.hard_set(only_failures):
        candidate = candidates[sample.candidate_id]
        bug_id = bug_key(bug_of(candidate, candidates))
        top = sample.topk[0] if sample.topk else [sample.predicted, None]
        yield {
            "image_hash": sample.image_hash,
            "file_name": f"images/{_slug(sample.class_name)}/{bug_id}-{sample.id}-{sample.image_hash[:12]}.png",
            "class_name": sample.class_name,
            "accepted_labels": accepted.get(sample.class_name, [sample.class_name]),
            "prompt": sample.prompt,
            "seed": int(sample.seed),
            "generator": sample.generator,
            "description": candidate.text.replace("{label}", sample.class_name),
            "description_template": candidate.text,
            "bug_id": bug_id,
            "candidate_id": int(candidate.id),
            "predicted": sample.predicted,
            "predicted_probability": None if top[1] is None else float(top[1]),
            "is_failure": bool(sample.is_failure),
            "run_id": store.root.name,
        }


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "class"


def _write_imagefolder(store: RunStore, records: list[dict[str, Any]], root: Path) -> None:
    with open(root / METADATA_NAME, "w", encoding="utf-8") as metadata:
        for record in records:
            target = root / record["file_name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.images.read_bytes(record["image_hash"]))
            row = {k: v for k, v in record.items() if k != "image_hash"}
            metadata.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_parquet(store: RunStore, records: list[dict[str, Any]], root: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ExportError("the parquet format needs pyarrow; install it with: pip install 'blindspots[export]' "
                          "or use --format imagefolder") from err
    columns = [k for k in records[0] if k not in ("image_hash", "file_name")]
    images = [{"bytes": store.images.read_bytes(r["image_hash"]), "path": Path(r["file_name"]).name}
              for r in records]
    table = pa.table({"image": images, **{name: [r[name] for r in records] for name in columns}})
    # The `huggingface` schema note tells `datasets` that the struct column is an Image, so it decodes to PIL.
    features = {name: _feature(table.schema.field(name).type) for name in columns}
    features["image"] = {"_type": "Image"}
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    (root / PARQUET_PATH).parent.mkdir(parents=True)
    pq.write_table(table, root / PARQUET_PATH)


def _feature(arrow_type) -> dict[str, Any]:
    import pyarrow as pa

    if pa.types.is_list(arrow_type):
        return {"feature": _feature(arrow_type.value_type), "_type": "Sequence"}
    names = {pa.string(): "string", pa.int64(): "int64", pa.float64(): "float64", pa.bool_(): "bool"}
    return {"dtype": names.get(arrow_type, "string"), "_type": "Value"}


def _summary(out: Path, format: str, records: list[dict[str, Any]], bugs: list[Bug]) -> ExportSummary:
    """Counts, and the images per bug in the run's ranking, each bug by its id and headline."""
    counts = Counter(r["bug_id"] for r in records)
    per_bug = {f"{bug.id}: {bug.description}": counts[bug.id] for bug in bugs if counts[bug.id]}
    return ExportSummary(out=out, format=format, images=len(records),
                         failures=sum(r["is_failure"] for r in records), bugs=len(counts), per_bug=per_bug)


def _card(store: RunStore, summary: ExportSummary, only_failures: bool) -> str:
    run_summary = store.log.summary()
    config = stored_run_config(store)
    models = run_summary.models if run_summary is not None else {}
    spec = {role: (models.get(role) or {}).get("spec") or getattr(config, role)
            for role in ("classifier", "generator", "captioner", "embedder")}
    loader = ('load_dataset("imagefolder", data_dir="<this folder>")' if summary.format == "imagefolder"
              else 'load_dataset("parquet", data_dir="<this folder>")')
    bug_lines = "\n".join(f"| {_md(name)} | {count} |" for name, count in summary.per_bug.items())
    chosen = "only the misclassified images" if only_failures else "all images"
    status = store.log.status()
    if summary.left_out:
        chosen += (f"; {summary.left_out} image(s) were left out because their files in the run folder were "
                   "missing or damaged")
    unfinished = "" if status == "complete" else (
        f"\n> The run had not finished when this set was exported (status: {status}); rerun the export after "
        "it completes for the final set.\n")
    return f"""# Hard images for `{spec['classifier']}` — blindspots run `{store.root.name}`

Images on which the classifier `{spec['classifier']}` fails significantly more often than on ordinary images
of the same class. Each comes from a blind spot that `blindspots` found and confirmed in run
`{store.root.name}`: the description was tested on fresh images against the class baseline and kept only if
significant under Benjamini–Hochberg control at FDR {config.fdr}.
{unfinished}
- Images: {summary.images} ({summary.failures} misclassified by the classifier under test); {chosen} of the
  confirmation sets of every confirmed description (each blind spot, its shorter forms and duplicates;
  `bug_id` names the blind spot, `candidate_id` the description), excluding images that the validity check
  judged not to show their class.
- Blind spots: {summary.bugs}
- Generator: `{spec['generator']}`; captioner: `{spec['captioner']}`; embedder: `{spec['embedder']}`
- Format: {summary.format}. Load with `datasets`: `{loader}`

Columns: `class_name`, `accepted_labels` (labels counted as correct), `prompt`, `seed`, `generator`,
`description` (the description the image was generated from), `bug_id` (the blind spot it belongs to, as the
run and its report name it), `candidate_id`, `predicted` and `predicted_probability`
(the classifier under test), `is_failure`, `run_id`.

| blind spot (most severe first) | images |
|---|---|
{bug_lines}
"""


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
