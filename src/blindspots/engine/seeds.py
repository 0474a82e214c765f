"""Seeds derived from what an image is for, so that reruns, resumes and re-tests draw the same images."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def derive_seed(*parts: Any) -> int:
    """A seed that depends only on what the image is for, so reruns and resumes draw the same images."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
