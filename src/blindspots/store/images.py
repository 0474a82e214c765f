"""Content-addressed PNG storage: an image is stored once under the hash of its pixels, written atomically.

Reads check the hash: a PNG that was deleted, truncated or edited after it was stored is reported as
`ImageMissingError` / `ImageDamagedError` (naming the file), never passed on as another picture, so no stage,
export or report uses an image that is not the one the run's records describe.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from PIL import Image


class ImageStoreError(RuntimeError):
    """A stored image cannot be used; the message names the file."""


class ImageMissingError(ImageStoreError):
    """The run's records name an image whose file is gone."""


class ImageDamagedError(ImageStoreError):
    """The image file exists but does not decode, or decodes to other pixels than those it was stored with."""


def image_hash(image: Image.Image) -> str:
    """SHA-256 of the mode, size and raw pixels, so the same picture has the same id whatever PNG encoder."""
    rgb = image.convert("RGB")
    digest = hashlib.sha256()
    digest.update(f"{rgb.mode}:{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def write_atomic(target: Path, data: bytes) -> None:
    """Write beside the target then rename, so a killed process never leaves a truncated file under a valid
    name. The file gets the user's umask, like any file they create (mkstemp alone makes it 0600, which hid a
    shared run from colleagues)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    # The only portable way to read the umask is to set it; it is set straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
        write_atomic(target, buffer.getvalue())
        return digest

    def get(self, digest: str) -> Image.Image:
        """The stored image, checked against its hash."""
        return self._decode(digest, self._read(digest))

    def read_bytes(self, digest: str) -> bytes:
        """The stored PNG's bytes, checked to decode to the image the hash names."""
        data = self._read(digest)
        self._decode(digest, data)
        return data

    def verify(self, digest: str) -> ImageStoreError | None:
        """None when the image is present and intact, else the error a read would raise (for a resume to
        regenerate what is missing, or an export to count what it leaves out)."""
        try:
            self.get(digest)
        except ImageStoreError as err:
            return err
        return None

    def __contains__(self, digest: str) -> bool:
        return self.path(digest).exists()

    def _read(self, digest: str) -> bytes:
        path = self.path(digest)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ImageMissingError(
                f"image {path} is missing from the run folder (it was deleted or the folder was copied "
                "without it)") from None

    def _decode(self, digest: str, data: bytes) -> Image.Image:
        path = self.path(digest)
        try:
            with Image.open(io.BytesIO(data)) as image:
                rgb = image.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise ImageDamagedError(f"image {path} is damaged: it does not decode ({err})") from None
        if image_hash(rgb) != digest:
            raise ImageDamagedError(f"image {path} is damaged: its pixels changed after it was stored")
        return rgb
