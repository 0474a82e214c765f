from blindspots.store.images import ImageStore, image_hash
from blindspots.store.records import Candidate, Purpose, RunSummary, Sample, Verdict, VerdictKind
from blindspots.store.run_store import RunStore, RunStoreError

__all__ = ["Candidate", "ImageStore", "Purpose", "RunStore", "RunStoreError", "RunSummary", "Sample", "Verdict",
           "VerdictKind", "image_hash"]
