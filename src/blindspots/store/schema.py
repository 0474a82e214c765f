"""The run database's tables, as SQLite holds them, and the one migration from an older layout.

The layout is the on-disk format of every run folder: a column is only ever added (with its migration), so a
run folder written by an earlier version opens, resumes and reports.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2
# Columns added since schema 1; a run folder of schema 1 gains them (empty) when opened, so it stays readable.
_ADDED_IN_2 = (
    ("candidates", "evalue", "REAL"),            # sequential confirmation: the e-value where sampling stopped
    ("candidates", "decision", "TEXT"),          # sequential: confirm | futile | loses effect |
    #                                              effect out of reach | keep unsettled | max images | budget
    ("candidates", "reference_id", "INTEGER"),   # a shortened form: the bug whose effect it must keep
)
DATABASE_NAME = "records.sqlite"
CONFIG_NAME = "config.yaml"
# What the store writes inside a run folder (SQLite adds the -wal, -shm and -journal files itself).
RUN_FILES = (DATABASE_NAME, f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm", f"{DATABASE_NAME}-journal",
             CONFIG_NAME, "images")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- One row per generated image. purpose: baseline | explore | confirm | replicate | regenerate
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    purpose TEXT NOT NULL,
    round INTEGER NOT NULL,
    class_name TEXT NOT NULL,
    prompt TEXT NOT NULL,
    seed INTEGER NOT NULL,
    generator TEXT NOT NULL,
    candidate_id INTEGER NOT NULL DEFAULT 0,  -- the candidate this image was generated for; 0 = none
    -- (0, not NULL: SQLite treats NULLs as distinct in UNIQUE, which would let a resume plan a row twice)
    image_hash TEXT,                    -- NULL until generated
    predicted TEXT,                     -- top-1 label of the classifier under test; NULL until classified
    topk TEXT,                          -- JSON [[label, probability], ...]
    is_failure INTEGER,
    valid INTEGER,                      -- zero-shot check says the image depicts its class
    validity_margin REAL,
    embedding BLOB,                     -- float32 image embedding
    cluster INTEGER,                    -- cluster id within (round, class) among failures; -1 = unclustered
    caption TEXT,
    error TEXT,                         -- why the generator produced no image (the sample is left out)
    UNIQUE (purpose, round, class_name, prompt, seed, candidate_id)
);
CREATE INDEX IF NOT EXISTS samples_by_candidate ON samples (candidate_id);
CREATE INDEX IF NOT EXISTS samples_by_class ON samples (class_name, purpose);

-- One row per candidate description tested. A confirmed candidate is a bug.
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    round INTEGER NOT NULL,
    class_name TEXT NOT NULL,
    key TEXT NOT NULL,                  -- normalised description, for deduplication within a class
    description TEXT NOT NULL,          -- JSON of the Description
    text TEXT NOT NULL,                 -- display text, e.g. "{label} on a road"
    prompt TEXT NOT NULL,               -- the prompt images are generated from
    origin TEXT NOT NULL,               -- consensus | caption | shortened
    parent_id INTEGER,                  -- the candidate this one was derived from (shortening, refinement)
    source_cluster TEXT,                -- JSON {round, cluster, size}
    n INTEGER, failures INTEGER, valid_n INTEGER, generated_n INTEGER,
    baseline_n INTEGER, baseline_failures INTEGER,
    rate REAL, rate_low REAL, rate_high REAL,
    baseline_rate REAL, baseline_low REAL, baseline_high REAL,
    lift REAL, difference REAL, p REAL, q REAL, test TEXT,
    validity_rate REAL,
    wrong_labels TEXT,                  -- JSON [[label, count], ...] among failures
    status TEXT NOT NULL DEFAULT 'planned',   -- planned | tested | skipped (never tested; see verdict)
    confirmed INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,                       -- confirmed | not significant | effect too small | mostly invalid images | duplicate
    shortest_id INTEGER,                -- for a confirmed bug: the shortest description that still confirms
    evalue REAL, decision TEXT, reference_id INTEGER,
    UNIQUE (class_name, key)
);

-- Stage markers for resuming: a key is written when the stage's work is complete.
CREATE TABLE IF NOT EXISTS stages (key TEXT PRIMARY KEY, finished_at REAL NOT NULL, info TEXT);

-- Predictions of other classifiers on stored images (transfer), keyed by classifier spec.
CREATE TABLE IF NOT EXISTS transfer_predictions (
    sample_id INTEGER NOT NULL,
    classifier TEXT NOT NULL,
    predicted TEXT NOT NULL,
    topk TEXT NOT NULL,
    is_failure INTEGER NOT NULL,
    PRIMARY KEY (sample_id, classifier)
);
"""


def add_missing_columns(connection: sqlite3.Connection) -> None:
    """Bring a schema-1 database to schema 2: the columns added since, empty. (Within the caller's transaction.)"""
    existing = {row[1] for row in connection.execute("PRAGMA table_info(candidates)")}
    for table, column, kind in _ADDED_IN_2:
        if column not in existing:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
