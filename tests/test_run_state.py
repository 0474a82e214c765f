"""What a run keeps in memory (the image budget's counts, the candidates) is what its database holds, at
every ask, across an interruption and the resume that follows; and asking for the budget costs no query."""

import sqlite3

import pytest

import blindspots
from blindspots.engine.sampling import Sampler
from blindspots.pipeline.budget import ImageBudget
from blindspots.store import RunStore
from blindspots.store.budget import BudgetCounts
from blindspots.store.candidates import read_candidates

TINY = dict(classes=["boat", "car", "fish"], budget=1200, baseline_per_class=40, confirm_per_candidate=24, rounds=2,
            max_candidates_per_class=2)


@pytest.fixture
def open_stores(monkeypatch):
    """Every RunStore opened while the test runs, with the statements its connection sends."""
    stores: list[tuple[RunStore, list[str]]] = []
    opened = RunStore.__init__

    def recording(self, database):
        opened(self, database)
        statements: list[str] = []
        database.connection.set_trace_callback(statements.append)
        stores.append((self, statements))

    monkeypatch.setattr(RunStore, "__init__", recording)
    return stores


def _store_of(budget: ImageBudget, stores) -> RunStore:
    return next(store for store, _ in stores if store.budget is budget.counts)


def _recount(store: RunStore) -> tuple[BudgetCounts, list]:
    """The counts and candidates as a fresh reader of the database sees them."""
    reader = sqlite3.connect(store.root / "records.sqlite")
    reader.row_factory = sqlite3.Row
    try:
        database = type(store.database)(store.root, reader, read_only=True)
        return BudgetCounts.read(database), read_candidates(database)
    finally:
        reader.close()


def test_memory_equals_the_database_at_every_budget_ask_across_an_interruption(tmp_path, monkeypatch, open_stores):
    asks = []
    remaining = ImageBudget.remaining

    def checked(self):
        store = _store_of(self, open_stores)
        counts, candidates = _recount(store)
        assert self.counts == counts
        assert store.candidates.all() == candidates
        asks.append(store)
        return remaining(self)

    monkeypatch.setattr(ImageBudget, "remaining", checked)
    reference = blindspots.discover(dict(TINY, out=str(tmp_path / "reference")))

    calls = {"n": 0}
    process = Sampler.process

    def interrupted_once(self, pending, what):
        calls["n"] += 1
        if calls["n"] == 12:  # in the first round's confirmation batches
            raise KeyboardInterrupt
        return process(self, pending, what)

    monkeypatch.setattr(Sampler, "process", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        blindspots.discover(dict(TINY, out=str(tmp_path / "interrupted")))
    interrupted = open_stores[-1][0]
    assert interrupted.candidates.all(), "the interruption came before any candidate: move it later"
    assert (interrupted.budget, interrupted.candidates.all()) == _recount(interrupted)

    asked_before = len(asks)
    resumed = blindspots.discover(dict(TINY, out=str(tmp_path / "interrupted")))
    assert len(asks) > asked_before
    found_as = [(b.id, b.class_name, b.found_as.key, b.found_as.n, b.found_as.failures, b.found_as.p)
                for b in resumed.bugs]
    assert found_as == [(b.id, b.class_name, b.found_as.key, b.found_as.n, b.found_as.failures, b.found_as.p)
                        for b in reference.bugs]


def test_a_budget_ask_sends_no_query(tmp_path, monkeypatch, open_stores):
    asks = []
    remaining = ImageBudget.remaining

    def counted(self):
        asks.append(1)
        return remaining(self)

    monkeypatch.setattr(ImageBudget, "remaining", counted)
    blindspots.discover(dict(TINY, out=str(tmp_path)))
    (store, statements), = open_stores
    assert len(asks) > 20
    # The two counts the budget is made of: samples planned for the run, candidates waiting for images.
    counting = [s for s in statements if s.startswith("SELECT COUNT(*) FROM samples WHERE purpose IN")
                or "FROM candidates WHERE status" in s]
    assert not counting, f"the budget was counted in the database: {counting[:2]}"
