from blindspots.store.images import (
           ImageDamagedError,
           ImageMissingError,
           ImageStore,
           ImageStoreError,
           image_hash,
)
from blindspots.store.lock import RunLockedError
from blindspots.store.run_store import RunDamagedError, RunStore, RunStoreError, Sample

__all__ = ["ImageDamagedError", "ImageMissingError", "ImageStore", "ImageStoreError", "RunDamagedError",
           "RunLockedError", "RunStore", "RunStoreError", "Sample", "image_hash"]
