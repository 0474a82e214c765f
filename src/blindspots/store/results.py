"""What the steps learn about a planned sample (its image, the classifier's judgement, its embedding and
validity, its caption, its failure cluster), and other classifiers' judgements of stored images: the typed
writes of the samples and transfer tables. Each record refuses a malformed value when it is made, before
anything reaches the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from blindspots.store.records import check_ids


@dataclass(frozen=True)
class GeneratedImage:
    """The generator drew the sample's image, stored under `image_hash`."""

    sample_id: int
    image_hash: str

    def __post_init__(self) -> None:
        check_ids(self, "sample_id")
        if not isinstance(self.image_hash, str) or not self.image_hash:
            raise ValueError(f"sample {self.sample_id}: an image hash is a non-empty text, not {self.image_hash!r}")


@dataclass(frozen=True)
class GenerationFailure:
    """The generator produced no image for the sample: why, in its own words (kept, and shown in the summary)."""

    sample_id: int
    error: str | None

    def __post_init__(self) -> None:
        check_ids(self, "sample_id")
        if self.error is not None and not isinstance(self.error, str):
            raise TypeError(f"sample {self.sample_id}: a generation error is a text, not {type(self.error).__name__}")


@dataclass(frozen=True)
class Prediction:
    """The classifier under test judged the sample's image (`engine.sampling.judge_predictions`)."""

    sample_id: int
    predicted: str
    topk: list[list[Any]]
    is_failure: bool

    def __post_init__(self) -> None:
        check_ids(self, "sample_id")
        if not isinstance(self.predicted, str):
            raise TypeError(f"sample {self.sample_id}: a predicted label is a text, not {self.predicted!r}")
        if not isinstance(self.topk, list):
            raise TypeError(f"sample {self.sample_id}: top-k is a list of [label, probability], not "
                            f"{type(self.topk).__name__}")
        if not isinstance(self.is_failure, bool):
            raise TypeError(f"sample {self.sample_id}: is_failure is True or False, not {self.is_failure!r}")


@dataclass(frozen=True)
class Validity:
    """The sample's image embedding and the zero-shot verdict on it: does the image show its class?
    `margin` is None for an image no check could judge (blanked, or the check is off)."""

    sample_id: int
    embedding: np.ndarray
    valid: bool
    margin: float | None

    def __post_init__(self) -> None:
        check_ids(self, "sample_id")
        if not isinstance(self.embedding, np.ndarray) or self.embedding.ndim != 1:
            raise TypeError(f"sample {self.sample_id}: an embedding is a 1-d numpy array, not "
                            f"{getattr(self.embedding, 'shape', type(self.embedding).__name__)}")
        if not isinstance(self.valid, bool):
            raise TypeError(f"sample {self.sample_id}: valid is True or False, not {self.valid!r}")


@dataclass(frozen=True)
class Caption:
    """The captioner's words for the sample's image (possibly empty)."""

    sample_id: int
    caption: str

    def __post_init__(self) -> None:
        check_ids(self, "sample_id")
        if not isinstance(self.caption, str):
            raise TypeError(f"sample {self.sample_id}: a caption is a text, not {type(self.caption).__name__}")


@dataclass(frozen=True)
class ClusterLabel:
    """The failure cluster of the sample's image within its (round, class); -1 = unclustered."""

    sample_id: int
    cluster: int

    def __post_init__(self) -> None:
        check_ids(self, "sample_id")
        if not isinstance(self.cluster, int) or isinstance(self.cluster, bool) or self.cluster < -1:
            raise ValueError(f"sample {self.sample_id}: a cluster is an integer >= -1, not {self.cluster!r}")


SampleResult = GeneratedImage | GenerationFailure | Prediction | Validity | Caption | ClusterLabel
SAMPLE_RESULTS: tuple[type, ...] = (GeneratedImage, GenerationFailure, Prediction, Validity, Caption, ClusterLabel)


@dataclass(frozen=True)
class TransferPrediction:
    """Another classifier's judgement of a stored image (`blindspots transfer`)."""

    sample_id: int
    classifier: str
    predicted: str
    topk: list[list[Any]]
    is_failure: bool

    def __post_init__(self) -> None:
        check_ids(self, "sample_id")
        if not isinstance(self.classifier, str) or not self.classifier:
            raise ValueError(f"sample {self.sample_id}: a transfer prediction names its classifier spec")
        if not isinstance(self.predicted, str) or not isinstance(self.topk, list) \
                or not isinstance(self.is_failure, bool):
            raise TypeError(f"sample {self.sample_id}: a transfer prediction holds a label, a top-k list and "
                            "is_failure True or False")
