"""Which images show a description's condition, as the run's embedder sees them.

A description ("boat on road") claims a condition under which a class fails. Whether two descriptions claim
the same condition ("boat on street"), whether one is a narrower form of another, and whether a failing
image is explained by a bug are questions about images, so they are answered from images the run already
has, never from a list of synonyms: the pipeline must work the same with the built-in world, CLIP, SigLIP
or open_clip, and with captioners that word one thing many ways.

**Phrase checks.** A description is checked phrase by phrase. For the phrase p of class c, an image's score
is how much more it resembles the prompt with p ("a photo of a boat on road") than the class's plain
prompt ("a photo of a boat"): its embedding times the difference of the two text embeddings. That
direction comes from the embedder's text side; where on it "shows p" begins is calibrated on images: the
description's own generated images show p as often as the generator follows prompts, the class's plain
images only as often as the generator draws p unasked. The threshold is the cut that best separates the two
samples (Youden's), moved a little towards the plain images (`threshold_between`). A phrase whose two
samples barely differ in score
(`min_separation`, the probability that an own image outscores a plain one) is one the embedder cannot see;
it decides nothing, and a description none of whose phrases can be seen shows nothing.

**Relations.** Whether B lies within A is asked of B's images: do they show A's condition about as often as
A's own images do (`keep` of A's own share)? Each way round gives one of four answers (`Relation`): the same
condition (paraphrases: "boat on road", "ship on a highway"), narrower, wider, or apart ("green umbrella"
and "umbrella on grass"). These decide which description of a failure mode is its headline; the claim that
a description causes failures is always its own test's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

# An own image must outscore a plain one at least this often for a phrase to count as visible. 0.5 is a coin
# flip; with scores that separate perfectly it is 0.5 + (a - p) / 2 for a generator that draws the phrase in a
# share a of the images that ask for it and p of the plain ones, so 0.6 still sees a phrase drawn two times in
# three when plain images show it one time in three.
MIN_SEPARATION = 0.6
# ... and do so more often than chance would (one-sided, 5%).
VISIBLE_Z = 1.645
# B lies within A when A's condition holds for at least this share of B's images, relative to A's own.
KEEP_SHARE = 0.75
# How far the threshold between "shows a phrase" and not moves from Youden's cut towards the plain images.
CUT_SLACK = 0.25


class Relation(str, Enum):
    """How one description's condition stands to another's (B's to A's)."""

    SAME = "same"            # each holds for the other's images: paraphrases
    NARROWER = "narrower"    # A holds for B's images, not the other way round: B is a more specific form
    WIDER = "wider"          # B holds for A's images, not the other way round
    APART = "apart"          # neither: different conditions


@dataclass(frozen=True)
class PhraseCheck:
    """Does an image show one phrase? Its score along `direction` is above `threshold`."""

    phrase: str
    direction: np.ndarray
    threshold: float
    separation: float

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        return np.asarray(embeddings, dtype=np.float64) @ self.direction

    def holds(self, embeddings: np.ndarray) -> np.ndarray:
        return self.scores(embeddings) > self.threshold


@dataclass(frozen=True)
class Condition:
    """A description's condition as phrase checks the embedder can see, and how often its own images show it."""

    checks: tuple[PhraseCheck, ...]
    own_share: float

    @property
    def visible(self) -> bool:
        """Can any of its phrases be seen? A condition of unseen phrases holds for no image."""
        return bool(self.checks)

    def holds(self, embeddings: np.ndarray) -> np.ndarray:
        """Per image: does it show every visible phrase?"""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if not self.checks or not len(embeddings):
            return np.zeros(len(embeddings), dtype=bool)
        shown = np.ones(len(embeddings), dtype=bool)
        for check in self.checks:
            shown &= check.holds(embeddings)
        return shown

    def only(self, phrases: Collection[str]) -> Condition:
        """The condition of some of its phrases alone: "what does dropping this phrase lose?" is asked of its own
        check, not of the checks the shorter form keeps."""
        return Condition(tuple(check for check in self.checks if check.phrase in phrases), self.own_share)

    def share(self, embeddings: np.ndarray) -> float:
        """Share of the images that show the condition (0 for no image)."""
        shown = self.holds(embeddings)
        return float(shown.mean()) if len(shown) else 0.0


def separation(higher: np.ndarray, lower: np.ndarray) -> float:
    """P(a score from `higher` exceeds one from `lower`), ties counting half: the area under the ROC curve."""
    higher, lower = np.asarray(higher, dtype=np.float64), np.asarray(lower, dtype=np.float64)
    if not len(higher) or not len(lower):
        return 0.5
    ranks = _midranks(np.concatenate([higher, lower]))
    return float((ranks[: len(higher)].sum() - len(higher) * (len(higher) + 1) / 2) / (len(higher) * len(lower)))


def clearly_separated(area: float, n_higher: int, n_lower: int, z: float = VISIBLE_Z) -> bool:
    """Is a separation this far above a coin flip more than chance gives two samples of these sizes? The
    Mann-Whitney statistic's normal approximation (its standard error under no difference), one-sided: a
    dozen own images separate an unseen phrase from the plain ones above 0.6 about one time in eight."""
    standard_error = np.sqrt((n_higher + n_lower + 1) / (12.0 * n_higher * n_lower))
    return (area - 0.5) / standard_error > z


def _midranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    unique, inverse = np.unique(values, return_inverse=True)
    if len(unique) < len(values):
        sums = np.bincount(inverse, weights=ranks)
        counts = np.bincount(inverse)
        ranks = (sums / counts)[inverse]
    return ranks


def calibrate(directions: Mapping[str, np.ndarray], own: np.ndarray, plain: np.ndarray,
              min_separation: float = MIN_SEPARATION) -> Condition:
    """The condition of a description from its phrases' text directions (phrase -> text embedding of the
    prompt with the phrase minus that of the plain prompt), its own images' embeddings and the class's plain
    images' embeddings."""
    if not 0.5 <= min_separation < 1:
        raise ValueError(f"min_separation={min_separation!r} must be in [0.5, 1): 0.5 would count a phrase "
                         f"the embedder cannot tell apart as seen.")
    own = np.asarray(own, dtype=np.float64)
    plain = np.asarray(plain, dtype=np.float64)
    checks = [check for phrase, direction in directions.items()
              if (check := phrase_check(phrase, direction, own, plain, min_separation)) is not None]
    return Condition(tuple(checks), _own_share_left_out(tuple(checks), own, plain))


def phrase_check(phrase: str, direction: np.ndarray, shown: np.ndarray, rest: np.ndarray,
                 min_separation: float = MIN_SEPARATION, z: float = VISIBLE_Z) -> PhraseCheck | None:
    """The check of a phrase the embedder sees, or None where it does not: along `direction`, the images that
    should show the phrase (`shown`) outscore the others (`rest`) at least `min_separation` of the time and more
    often than chance (`clearly_separated` at `z`); "shows it" begins at `threshold_between` the two."""
    direction = np.asarray(direction, dtype=np.float64)
    if not len(shown) or not len(rest) or not np.any(direction):
        return None
    shown_scores = np.asarray(shown, dtype=np.float64) @ direction
    rest_scores = np.asarray(rest, dtype=np.float64) @ direction
    seen = separation(shown_scores, rest_scores)
    if seen < min_separation or not clearly_separated(seen, len(shown_scores), len(rest_scores), z):
        return None
    return PhraseCheck(phrase, direction, threshold_between(shown_scores, rest_scores), seen)


def orthonormal(vectors: Sequence[np.ndarray]) -> list[np.ndarray]:
    """An orthonormal basis of the vectors' span (Gram-Schmidt), to judge a phrase on what it adds to them."""
    basis: list[np.ndarray] = []
    for vector in vectors:
        rest = beyond(np.asarray(vector, dtype=np.float64), basis)
        size = float(np.linalg.norm(rest))
        if size > 1e-12:
            basis.append(rest / size)
    return basis


def beyond(direction: np.ndarray, basis: Sequence[np.ndarray]) -> np.ndarray:
    """What a phrase's direction adds to an orthonormal basis (`orthonormal`): its part outside their span.
    "Large" said of a lamp already described "in a big room" is judged on what it says that the room does not."""
    direction = np.asarray(direction, dtype=np.float64)
    return direction - sum((direction @ b) * b for b in basis) if basis else direction


def _own_share_left_out(checks: tuple[PhraseCheck, ...], own: np.ndarray, plain: np.ndarray) -> float:
    """How often an own image shows the condition when the cuts are drawn without it. Another description's
    images are never among those the cuts were drawn from, so its share is compared with this one, not with
    the share on the images that placed the cuts (which is higher, most of all for few images)."""
    if not checks or not len(own):
        return 0.0
    shown = np.ones(len(own), dtype=bool)
    for check in checks:
        own_scores, plain_scores = check.scores(own), check.scores(plain)
        for i in range(len(own)):
            cut = threshold_between(np.delete(own_scores, i), plain_scores) if len(own) > 1 else check.threshold
            shown[i] &= own_scores[i] > cut
    return float(shown.mean())


def threshold_between(higher: np.ndarray, lower: np.ndarray) -> float:
    """Where "shows the phrase" begins on a score: Youden's cut between the two samples (the most of `higher`
    above it less the most of `lower` above it), moved a quarter of the way towards the median of the `lower`
    scores below it. Youden's cut hugs the lowest of the own images it was drawn from; an own image not among
    them falls below it too often (most of all for a description tested on a handful of images), and the
    quarter step leaves it room without reaching into the plain images' bulk."""
    higher, lower = np.asarray(higher, dtype=np.float64), np.asarray(lower, dtype=np.float64)
    values = np.unique(np.concatenate([higher, lower]))
    cuts = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2])
    above_higher = (higher[None, :] > cuts[:, None]).mean(axis=1)
    above_lower = (lower[None, :] > cuts[:, None]).mean(axis=1)
    cut = float(cuts[int(np.argmax(above_higher - above_lower))])
    below = lower[lower <= cut]
    return cut - CUT_SLACK * (cut - float(np.median(below))) if len(below) else cut


def relate(a: Condition, a_images: np.ndarray, b: Condition, b_images: np.ndarray,
           keep: float = KEEP_SHARE) -> Relation:
    """How B's condition stands to A's, from each one's images (see the module docstring)."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep={keep!r} must be in (0, 1]: the share of its own images' rate a condition "
                         f"must keep on the other's images.")
    if not a.visible or not b.visible:
        return Relation.APART  # nothing the embedder can see relates them: never merge without evidence
    b_within_a = lies_within(b_images, a, keep)
    a_within_b = lies_within(a_images, b, keep)
    if b_within_a and a_within_b:
        return Relation.SAME
    if b_within_a:
        return Relation.NARROWER
    if a_within_b:
        return Relation.WIDER
    return Relation.APART


def lies_within(images: np.ndarray, condition: Condition, keep: float = KEEP_SHARE) -> bool:
    """Do these images show `condition` about as often as its own images do? (Never for a condition the
    embedder cannot see.)"""
    if not condition.visible or condition.own_share <= 0 or not len(images):
        return False
    return condition.share(images) >= keep * condition.own_share


# Two phrases are wordings of one condition when the images' scores along their text directions rise and fall
# together (Pearson's r over a class's plain images): "on a street" and "on the road" do, "flat style" and
# "shaded style" do not, however often a group of failures shows both.
SYNONYM_CORRELATION = 0.9


def wordings(directions: Mapping[str, np.ndarray], images: np.ndarray,
             correlation: float = SYNONYM_CORRELATION) -> list[list[str]]:
    """Phrases grouped into wordings of one condition, each group in the order given (the first is the group's
    wording of choice): a phrase joins the first group whose first phrase's scores over `images` correlate
    with its own at least `correlation`. A phrase with no direction the images vary along stands alone."""
    images = np.asarray(images, dtype=np.float64)
    groups: list[tuple[np.ndarray | None, list[str]]] = []
    for phrase, direction in directions.items():
        scores = images @ np.asarray(direction, dtype=np.float64) if len(images) else np.zeros(0)
        varies = len(scores) > 2 and float(np.std(scores)) > 0
        for head, members in groups:
            if varies and head is not None and float(np.corrcoef(head, scores)[0, 1]) >= correlation:
                members.append(phrase)
                break
        else:
            groups.append((scores if varies else None, [phrase]))
    return [members for _, members in groups]


def shown_together(phrases: Sequence[tuple[str, np.ndarray, np.ndarray]], members: np.ndarray, plain: np.ndarray,
                   share: float) -> list[str]:
    """The phrases most of a group of images show together, chosen step by step.

    `phrases` come in order of preference, each with its text direction and which members' captions name it.
    At each step a phrase is judged on what is new in it: its direction less its projection on the directions
    already kept. A group of failures differs from the plain images in its condition, and every direction
    correlated with that condition would seem to separate the two ("flat style" on planes at night because
    night images score differently along it); once "at night" is kept, only what the style adds is left to
    judge. A phrase the embedder sees the members show (on that remainder, by `calibrate`'s rule) counts for
    every member whose image shows it, whether or not its caption said it: captioners name a few things each,
    and "tiny", said of one bird of a cluster of small birds in snow, is shown by all of them. A phrase it does
    not see counts for the members whose captions name it, and so does every phrase in a group of fewer than
    `MIN_SHOWN_MEMBERS` images, where the captions alone decide. A phrase joins when, with those kept, at least
    `share` of the members still show or name all of them; one with nothing new (another wording of a kept
    one) does not join.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share={share!r} must be in (0, 1], e.g. 0.5 for most of the images.")
    members, plain = np.asarray(members, dtype=np.float64), np.asarray(plain, dtype=np.float64)
    basis: list[np.ndarray] = []
    kept: list[str] = []
    together = np.ones(len(members), dtype=bool)
    for phrase, direction, said in phrases:
        direction = np.asarray(direction, dtype=np.float64)
        new = direction - sum((direction @ b) * b for b in basis) if basis else direction
        size = float(np.linalg.norm(new))
        if size <= NOTHING_NEW * float(np.linalg.norm(direction)):
            continue
        shown = _shown_along(new, members, plain)
        shown = np.asarray(said, dtype=bool) if shown is None else shown
        joint = together & shown
        if len(joint) and joint.mean() >= share:
            kept.append(phrase)
            together = joint
            basis.append(new / size)
    return kept


# A phrase whose direction keeps less than this share of its length once the kept phrases' directions are
# taken out adds nothing the images could show: another wording of a kept phrase.
NOTHING_NEW = 0.2
# The images of a group say which of them show a phrase only when there are at least this many (as a relation
# needs six images of each description): three images can line up by chance so as to seem to show two readings
# of one attribute at once ("in clear weather" and "in rain"), where the captions, naming one each, do not.
MIN_SHOWN_MEMBERS = 6


def _shown_along(direction: np.ndarray, members: np.ndarray, plain: np.ndarray) -> np.ndarray | None:
    """Which members show what `direction` stands for, or None when the embedder does not see it in them."""
    if len(members) < MIN_SHOWN_MEMBERS:
        return None
    check = phrase_check("", direction, members, plain)
    return None if check is None else check.holds(members)


def explained(embeddings: np.ndarray, called: Sequence[str | None], condition: Condition,
              failure_mode: str | None) -> np.ndarray:
    """Per failing image: is it explained by a bug, that is called what the bug's failures are mostly called
    and showing the bug's condition?"""
    same_mode = np.array([label is not None and label == failure_mode for label in called], dtype=bool)
    return same_mode & condition.holds(embeddings)


# A condition holds a set of failures when it shows on at least this share of them (and on at most half as many of
# the passing images beside them): the share at which a wider description counts as a narrower bug said less
# exactly (`decisions.WIDER_EXPLAINED_SHARE`).
HOLDS_SHARE = 0.75


def holds_failures(condition: Condition, failing: np.ndarray, passing: np.ndarray, min_images: int) -> bool | None:
    """Does the condition hold these failures? It shows on at least `HOLDS_SHARE` of the failing images and on at
    most half as many of the passing ones drawn beside them: where it shows is where those images fail. A
    condition the embedder sees on most images alike, failing or not, holds nothing. None (no evidence) with
    fewer than `min_images` failing or passing images: a description that fails nearly always, or seldom,
    cannot show where its failures lie."""
    if min(len(failing), len(passing)) < min_images:
        return None
    in_failures, in_passes = condition.share(failing), condition.share(passing)
    return in_failures >= HOLDS_SHARE and in_passes <= in_failures / 2
