"""`TextEnum`: the base of every enum whose members are stored or shown as text (a sample's purpose, a
candidate's status, a confirmation mode). Members compare equal to their text, and print and format as it,
so a stored value or a message reads "sequential", never "ConfirmationMode.SEQUENTIAL"."""

from __future__ import annotations

from enum import Enum


class TextEnum(str, Enum):
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)
