"""Content-addressed PNG storage: an image is stored once under the hash of its pixels, written atomically."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from PIL import Image


def image_hash(image: Image.Image) -> str:
    """SHA-256 of the mode, size and raw pixels, so the same picture has the same id whatever PNG encoder."""
    rgb = image.convert("RGB")
    digest = hashlib.sha256()
    digest.update(f"{rgb.mode}:{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


class ImageStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.png"

    def put(self, image: Image.Image) -> str:
        digest = image_hash(image)
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        # Write beside the target then rename, so a killed run never leaves a truncated PNG under a valid name.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(buffer.getvalue())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> Image.Image:
        with Image.open(self.path(digest)) as image:
            return image.convert("RGB")

    def read_bytes(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def __contains__(self, digest: str) -> bool:
        return self.path(digest).exists()
