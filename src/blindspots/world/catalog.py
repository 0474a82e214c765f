"""What the procedural renderer knows how to draw: the closed vocabulary a world spec may choose from.

A spec picks its classes and axis values from these names; the renderer has a drawing for each one.
"""

from __future__ import annotations

# Object classes the renderer has a silhouette for (see shapes.py).
DRAWABLE_CLASSES: tuple[str, ...] = (
    "boat", "car", "house", "tree", "fish", "bird", "cup", "plane", "umbrella", "chair", "lamp", "bottle",
)

# Colours as linear 0..1 RGB. Hues are spread so that night tint and fog keep them apart.
COLOUR_RGB: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "orange": (0.98, 0.52, 0.05),
    "yellow": (0.97, 0.88, 0.10),
    "green": (0.12, 0.72, 0.22),
    "blue": (0.10, 0.30, 0.92),
    "purple": (0.58, 0.16, 0.80),
    "pink": (0.98, 0.50, 0.72),
    "brown": (0.50, 0.30, 0.14),
    "cyan": (0.10, 0.80, 0.85),
}

# Axis -> the values the renderer can draw on that axis.
DRAWABLE_AXES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOUR_RGB),
    "pattern": ("plain", "striped", "dotted", "checkered"),
    "background": ("grass", "water", "sand", "snow", "road", "sky", "indoor"),
    "lighting": ("day", "dusk", "night"),
    "size": ("small", "medium", "large"),
    "weather": ("clear", "fog", "rain", "snow"),
    "style": ("shaded", "flat", "sketch"),
}

# What the renderer draws on an axis that a spec leaves out.
AXIS_DEFAULTS: dict[str, str] = {
    "colour": "blue",
    "pattern": "plain",
    "background": "grass",
    "lighting": "day",
    "size": "medium",
    "weather": "clear",
    "style": "shaded",
}
