from blindspots.store.database import RunDamagedError, RunStoreError
from blindspots.store.images import (
           ImageDamagedError,
           ImageMissingError,
           ImageStore,
           ImageStoreError,
           image_hash,
)
from blindspots.store.lock import LockFileError, RunLockedError
from blindspots.store.records import Candidate, Purpose, RunSummary, Sample, Verdict, VerdictKind
from blindspots.store.run_store import RunStore

__all__ = ["Candidate", "ImageDamagedError", "ImageMissingError", "ImageStore", "ImageStoreError", "LockFileError",
           "Purpose", "RunDamagedError", "RunLockedError", "RunStore", "RunStoreError", "RunSummary", "Sample",
           "Verdict", "VerdictKind", "image_hash"]
