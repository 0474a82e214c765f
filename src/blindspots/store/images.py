"""Content-addressed PNG storage: an image is stored once under the hash of its pixels, written atomically.

The id is the SHA-256 of mode, size and raw RGB pixels, never of the PNG bytes, so the compression level (or
a PNG encoder's version) cannot change an image's id, and with it a run's results.

The store writes its PNGs itself: every row filtered with PNG's Up filter (the byte above subtracted, one
numpy operation), then zlib at level 1 with the run-length strategy (zlib's advice for PNG image data). On a
smooth picture (the statistics of a photo) that is as small as zlib's default level at a fraction of its
time, and faster than Pillow's level 1 on every kind of picture, which chooses a filter per row in C and
compresses photos worse (`python benchmarks/png_levels.py` measures each encoder). A PNG encoder is plain:
signature, IHDR, one IDAT, IEND; a test reads every shape back through Pillow.

`put` may be called from many threads at once (zlib and hashlib release the GIL while they work, so encoding on
a pool of threads overlaps the models): each writer uses its own temporary file and an atomic rename, and two
writers of the same image write the same bytes.

Reads check the hash: a PNG that was deleted, truncated or edited after it was stored is reported as
`ImageMissingError` / `ImageDamagedError` (naming the file), never passed on as another picture, so no stage,
export or report uses an image that is not the one the run's records describe.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

PNG_COMPRESS_LEVEL = 1
PNG_COMPRESS_TYPE = zlib.Z_RLE


class ImageStoreError(RuntimeError):
    """A stored image cannot be used; the message names the file."""


class ImageMissingError(ImageStoreError):
    """The run's records name an image whose file is gone."""


class ImageDamagedError(ImageStoreError):
    """The image file exists but does not decode, or decodes to other pixels than those it was stored with."""


def image_hash(image: Image.Image) -> str:
    """SHA-256 of the mode, size and raw pixels, so the same picture has the same id whatever PNG encoder."""
    rgb = _rgb(image)
    return _digest(rgb.width, rgb.height, rgb.tobytes())


def pixels_hash(pixels: np.ndarray) -> str:
    """`image_hash` of a uint8 (H, W, 3) array, without making a PIL image; equal for the same pixels."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise TypeError(f"pixels must be uint8 of shape (H, W, 3), got {pixels.dtype} {pixels.shape}")
    return _digest(pixels.shape[1], pixels.shape[0], np.ascontiguousarray(pixels).tobytes())


def _digest(width: int, height: int, raw: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(f"RGB:{width}x{height}:".encode())
    digest.update(raw)
    return digest.hexdigest()


def write_atomic(target: Path, data: bytes) -> None:
    """Write beside the target then rename, so a killed process never leaves a truncated file under a valid
    name. The file is created with mode 0666, which the kernel narrows by the user's umask like any file they
    create (mkstemp's 0600 hid a shared run from colleagues), without reading the umask for every image. The
    temporary name is unique to this process and thread, since several threads write at once."""
    temporary = target.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{target.name}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(temporary, flags, 0o666)
    except FileExistsError:  # left by a killed process that had the same pid and thread id
        temporary.unlink()
        fd = os.open(temporary, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (images are written from many threads,
    and setting the umask to read it would briefly change it for all of them)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, straight back
    os.umask(mask)
    return mask


def encode_png(image: Image.Image | np.ndarray) -> bytes:
    """An RGB PNG of a PIL image or a uint8 (H, W, 3) array (module docstring: Up filter, zlib level 1 with the
    run-length strategy). Every PNG decoder reads it; a test checks Pillow gets the same pixels back."""
    pixels = image if isinstance(image, np.ndarray) else np.asarray(_rgb(image))
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, width * 3)
    # Each scanline: the filter type byte (2, Up), then each byte minus the one above it, modulo 256.
    filtered = np.empty((height, 1 + width * 3), dtype=np.uint8)
    filtered[:, 0] = 2
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    compressor = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, 15, 8, PNG_COMPRESS_TYPE)
    data = compressor.compress(memoryview(filtered).cast("B")) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


class ImageStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.png"

    def put(self, image: Image.Image | np.ndarray, replace: bool = False) -> str:
        """Store a PIL image or a uint8 (H, W, 3) array; returns its id. Safe to call from several threads.
        `replace` rewrites a file already there (a damaged copy being restored)."""
        pixels = image if isinstance(image, np.ndarray) else np.asarray(_rgb(image))
        digest = pixels_hash(pixels)
        target = self.path(digest)
        if target.exists() and not replace:
            return digest
        data = encode_png(np.ascontiguousarray(pixels))
        try:
            write_atomic(target, data)
        except FileNotFoundError:  # the first image of its folder: create the folder once, not per image
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data)
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
