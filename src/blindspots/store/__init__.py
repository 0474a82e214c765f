from blindspots.store.images import ImageStore, image_hash
from blindspots.store.run_store import RunStore, RunStoreError, Sample

__all__ = ["ImageStore", "RunStore", "RunStoreError", "Sample", "image_hash"]
