"""Generate -> store -> classify -> check validity: the one place that decides what a failure is.

Every image a run, a transfer or a benchmark draws goes through a `Sampler`. An image is a **failure** when
none of its class's accepted labels is among the classifier's top k; it is **valid** when the zero-shot
check says it shows its class (the class's prompt is the most similar of all classes' prompts), since a
generator drawing the wrong thing is not a classifier bug. A safety checker's blanked image shows nothing:
it is kept and counted, never valid, never a failure that counts.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL.Image import Image

from blindspots.engine.executor import ModelExecutor, images_to_pixels
from blindspots.models.protocols import fill_template
from blindspots.progress import ProgressFactory, silent_progress
from blindspots.store.images import ImageStoreError, image_hash
from blindspots.store.records import Sample
from blindspots.store.results import GeneratedImage, GenerationFailure, Prediction, SampleResult, Validity
from blindspots.store.run_store import RunStore


def judge_prediction(probabilities: np.ndarray, labels: Sequence[str], accepted: Sequence[str],
                     top_k: int) -> dict[str, Any]:
    """The failure rule: the top-1 label, the top max(5, k) labels with probabilities, and whether no
    accepted label is among the top k."""
    return judge_predictions(np.asarray(probabilities)[None, :], labels, [accepted], top_k)[0]


def judge_predictions(probabilities: np.ndarray, labels: Sequence[str], accepted: Sequence[Sequence[str]],
                      top_k: int) -> list[dict[str, Any]]:
    """`judge_prediction` for each row of an (n, classes) batch, row i held to `accepted[i]`: one sort for the
    batch (a sort per image was a large share of the judging thread's time outside the models)."""
    orders = np.argsort(-probabilities, axis=1, kind="stable")[:, : max(5, top_k)]
    judged = []
    for row, order, accepted_labels in zip(probabilities, orders, accepted, strict=True):
        top = [[labels[i], round(float(row[i]), 6)] for i in order]
        accepted_set = set(accepted_labels)
        in_top_k = any(label in accepted_set for label, _ in top[:top_k])
        judged.append({"predicted": top[0][0], "topk": top, "is_failure": not in_top_k})
    return judged


def _batch(images: list[Image]) -> np.ndarray | list[Image]:
    """The exact stored pixels as one uint8 batch, which adapters resize and normalise on the model's device
    (a list of PIL images where sizes differ, and for models that take only PIL images)."""
    pixels = images_to_pixels(images)
    return images if pixels is None else pixels


class ZeroShotCheck:
    """Does an image show its class? Its class's zero-shot prompt must be the most similar of all classes'."""

    def __init__(self, executor: ModelExecutor, class_names: Sequence[str]):
        self.executor = executor
        self.index = {name: i for i, name in enumerate(class_names)}
        self.class_names = list(class_names)
        self._texts: np.ndarray | None = None

    def margins(self, class_name: str, embeddings: np.ndarray) -> np.ndarray:
        """Own-class similarity minus the best other class's, per image: valid where positive."""
        similarities = np.asarray(embeddings) @ self._class_texts().T
        own = self.index[class_name]
        others = np.delete(similarities, own, axis=1)
        return similarities[:, own] - others.max(axis=1)

    def _class_texts(self) -> np.ndarray:
        if self._texts is None:
            embedder = self.executor.models.get("embedder")
            self._texts = self.executor.embed_texts(
                [fill_template(embedder.zero_shot_template, name) for name in self.class_names])
        return self._texts


@dataclass
class _Generated:
    """One chunk after the generator: the images it drew (or already stored), and per-sample flags."""

    chunk: list[Sample]
    fresh: dict[int, Image] = field(default_factory=dict)       # sample id -> image generated now
    errors: dict[int, str | None] = field(default_factory=dict)
    blanked: set[int] = field(default_factory=set)


class Sampler:
    """Finishes planned samples: generates what has no image, classifies what has no prediction, and embeds
    and checks what has no validity yet.

    The work streams through three stages that overlap, so the accelerator never waits for the CPU: one
    thread runs the generator up to `lookahead` chunks ahead; a pool hashes, encodes and writes the PNGs
    (zlib and hashlib release the GIL while they work); one thread classifies and embeds. The calling thread is
    the single writer of the store. A chunk's images are committed as soon as they are written, before it is
    classified, so a kill loses at most the one chunk the generator was drawing (and the cheap judgements in
    flight, redone on resume). Chunks keep the same composition as a serial pass, so results are identical.

    `accepted` maps each class to the classifier labels that count as correct. `validity` None with
    `embed` True marks every image valid (one class: nothing to compare against; or the check is off), while
    still storing embeddings for clustering; `embed` False skips embedding and validity altogether.
    """

    def __init__(self, store: RunStore | None, executor: ModelExecutor, accepted: Mapping[str, Sequence[str]],
                 top_k: int, validity: ZeroShotCheck | None, progress: ProgressFactory = silent_progress,
                 chunk: int = 64, embed: bool = True, lookahead: int = 2, encoders: int = 2):
        self.store = store
        self.executor = executor
        self.accepted = {name: list(labels) for name, labels in accepted.items()}
        self.top_k = top_k
        self.validity = validity
        self.progress = progress
        self.chunk = chunk
        self.embed = embed
        self.lookahead = max(1, lookahead)
        self.encoders = max(1, encoders)
        self._threads: tuple[ThreadPoolExecutor, ThreadPoolExecutor, ThreadPoolExecutor] | None = None

    def process(self, pending: Sequence[Sample], what: str | None) -> None:
        """Finish the pending samples, with a progress bar of their images labelled `what` (None: no bar of its
        own, for a caller that shows progress in its own units, such as descriptions decided)."""
        if not pending:
            return
        chunks = [list(pending[i : i + self.chunk]) for i in range(0, len(pending), self.chunk)]
        bar = self.progress(what, len(pending)) if what is not None else silent_progress("", len(pending))
        generating, encoding, judging = self._pools()
        submitted: list[Future] = []

        def submit(pool: ThreadPoolExecutor, work, *args) -> Future:
            # Only futures that may still run are kept (for the cleanup below): a finished one holds its
            # result, a chunk's pixels, and keeping them all made memory grow with the images of one call
            # (`benchmarks/memory_flat.py`).
            submitted[:] = [future for future in submitted if not future.done()]
            submitted.append(pool.submit(work, *args))
            return submitted[-1]

        try:
            # 1. Keep the generator `lookahead` chunks ahead of everything else.
            drawn = deque(submit(generating, self._generate, chunks[k])
                          for k in range(min(self.lookahead, len(chunks))))
            judged: Future | None = None
            for k in range(len(chunks)):
                generated = drawn.popleft().result()
                if k + self.lookahead < len(chunks):
                    drawn.append(submit(generating, self._generate, chunks[k + self.lookahead]))
                # 2. Classify and embed chunk k while its PNGs are written and chunk k-1 is committed.
                next_judged = submit(judging, self._judge, generated)
                self._commit_images(generated, lambda images: submit(encoding, self._write, images))
                if judged is not None:
                    self._commit_judgements(judged.result(), bar)
                judged = next_judged
            if judged is not None:
                self._commit_judgements(judged.result(), bar)
        finally:
            # On an error or an interrupt nothing queued starts, and nothing still running outlives the call.
            for future in submitted:
                future.cancel()
            wait(submitted)
            bar.close()

    def _pools(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor, ThreadPoolExecutor]:
        """The generator, PNG and judging threads, started once and kept for every `process` call: a run makes
        a call per confirmation batch, and starting and joining four threads each time adds up. Idle threads
        are ended by `close` (or when the sampler is garbage collected)."""
        if self._threads is None:
            self._threads = (ThreadPoolExecutor(1, thread_name_prefix="blindspots-generate"),
                             ThreadPoolExecutor(self.encoders, thread_name_prefix="blindspots-encode"),
                             ThreadPoolExecutor(1, thread_name_prefix="blindspots-judge"))
        return self._threads

    def close(self) -> None:
        """End the sampler's threads (they are idle between `process` calls); a later call starts them again."""
        threads, self._threads = self._threads, None
        for pool in threads or ():
            pool.shutdown(wait=True, cancel_futures=True)

    def load_stored(self, sample: Sample) -> Image:
        """A sample's stored image. One whose file is missing or damaged is drawn again from its prompt and
        seed (a generator is deterministic in them) and restored; if the generator no longer gives the same
        pixels, the read's error stands: it names the file and the fix."""
        try:
            return self.store.images.get(sample.image_hash)
        except ImageStoreError:
            result = self.executor.generate([sample.prompt], [sample.seed])
            image = result.images[0]
            if image is None or image_hash(image) != sample.image_hash:
                raise
            self.store.images.put(image, replace=True)
            return self.store.images.get(sample.image_hash)

    def restore_missing(self, samples: Sequence[Sample]) -> int:
        """Draw again the stored images whose files are gone from the run folder (deleted, or moved without
        them). A generator is deterministic in (prompt, seed), so the same pixels come back under the same
        hash; an image that comes back different is forgotten, with its judgements, and redone like a new
        sample. Returns how many were missing."""
        missing = [s for s in samples if s.image_hash is not None and s.image_hash not in self.store.images]
        for start in range(0, len(missing), self.chunk):
            batch = missing[start : start + self.chunk]
            result = self.executor.generate([s.prompt for s in batch], [s.seed for s in batch])
            forgotten = []
            for sample, image in zip(batch, result.images, strict=True):
                if image is None or self.store.images.put(image) != sample.image_hash:
                    forgotten.append(sample.id)
            self.store.samples.forget_results(forgotten)
        return len(missing)

    # ---- the stages ------------------------------------------------------------------------------------------
    def _generate(self, chunk: list[Sample]) -> _Generated:
        generated = _Generated(chunk)
        to_generate = [s for s in chunk if s.image_hash is None]
        if to_generate:
            result = self.executor.generate([s.prompt for s in to_generate], [s.seed for s in to_generate])
            for sample, image, error, is_blank in zip(to_generate, result.images, result.errors,
                                                      result.safety_blanked, strict=True):
                if image is None:
                    generated.errors[sample.id] = error
                    continue
                generated.fresh[sample.id] = image
                if is_blank:
                    generated.blanked.add(sample.id)
        return generated

    def _commit_images(self, generated: _Generated, write: Callable[[list[Image]], Future]) -> None:
        """Hash, encode and write the chunk's new images in parallel, then record them in one transaction.
        Each encoding thread gets one share of the chunk, not a task per image: a hand-over costs a fair part of
        writing a small image, and fewer of them wake the main thread less often while the models run."""
        ids = list(generated.fresh)
        images = [generated.fresh[i] for i in ids]
        # Thread t writes images t, t + encoders, ...: its hashes go back to the same places.
        writes = [write(images[start :: self.encoders]) for start in range(min(self.encoders, len(ids)))]
        hashes: list[str] = [""] * len(ids)
        for start, task in enumerate(writes):
            hashes[start :: self.encoders] = task.result()
        results: list[SampleResult] = [GeneratedImage(i, digest) for i, digest in zip(ids, hashes, strict=True)]
        results += [GenerationFailure(i, error) for i, error in generated.errors.items()]
        self.store.samples.record(results)

    def _write(self, images: list[Image]) -> list[str]:
        return [self.store.images.put(image) for image in images]

    def _judge(self, generated: _Generated) -> tuple[int, list[SampleResult]]:
        chunk, images = generated.chunk, dict(generated.fresh)
        for sample in chunk:
            if sample.image_hash is not None:
                images[sample.id] = self.load_stored(sample)
        results: list[SampleResult] = []
        ready = [s for s in chunk if s.id in images]
        batches: dict[tuple[int, ...], np.ndarray | list[Image]] = {}

        def batch_of(samples: list[Sample]) -> np.ndarray | list[Image]:
            # Usually the same samples are classified and embedded: one pixel batch serves both models.
            key = tuple(s.id for s in samples)
            if key not in batches:
                batches[key] = _batch([images[s.id] for s in samples])
            return batches[key]

        to_classify = [s for s in ready if s.predicted is None]
        if to_classify:
            probabilities, labels = self.executor.classify(batch_of(to_classify))
            judged = judge_predictions(np.asarray(probabilities), labels,
                                       [self.accepted[s.class_name] for s in to_classify], self.top_k)
            results += [Prediction(sample.id, **judgement) for sample, judgement in zip(to_classify, judged, strict=True)]
        to_check = [s for s in ready if s.valid is None] if self.embed else []
        if to_check:
            embeddings = self.executor.embed_images(batch_of(to_check))
            for sample, embedding in zip(to_check, embeddings, strict=True):
                if sample.id in generated.blanked:
                    valid, margin = False, None
                elif self.validity is None:
                    valid, margin = True, 0.0
                else:
                    # One image at a time: a product over a batch may round differently with the batch's
                    # make-up, and a resumed chunk need not be made up as the first one was.
                    margin = float(self.validity.margins(sample.class_name, embedding[None, :])[0])
                    valid = margin > 0
                results.append(Validity(sample.id, np.asarray(embedding), bool(valid), margin))
        return len(chunk), results

    def _commit_judgements(self, judged: tuple[int, list[SampleResult]], bar) -> None:
        size, results = judged
        self.store.samples.record(results)
        bar.advance(size)

    def judge_fresh(self, class_name: str, prompts: Sequence[str], seeds: Sequence[int],
                    batch: int = 100, called: Counter | None = None) -> tuple[int, int]:
        """(failures, valid images) of fresh images drawn and judged by the same rules, stored nowhere:
        the benchmark's replication on new seeds. `called`, when given, counts what the failures were called."""
        failures = n = 0
        for start in range(0, len(prompts), batch):
            result = self.executor.generate(prompts[start:start + batch], seeds[start:start + batch])
            images = [image for image, blank in zip(result.images, result.safety_blanked, strict=True)
                      if image is not None and not blank]
            if not images:
                continue
            probabilities, labels = self.executor.classify(images)
            judged = judge_predictions(np.asarray(probabilities), labels, [self.accepted[class_name]] * len(images),
                                       self.top_k)
            failed = np.array([j["is_failure"] for j in judged], dtype=bool)
            if self.validity is None:
                valid = np.ones(len(images), dtype=bool)
            else:
                valid = self.validity.margins(class_name, self.executor.embed_images(images)) > 0
            n += int(valid.sum())
            failures += int((failed & valid).sum())
            if called is not None:
                called.update(j["predicted"] for j, counted in zip(judged, failed & valid, strict=True) if counted)
        return failures, n
