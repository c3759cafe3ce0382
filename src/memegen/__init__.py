"""MemeGen: turn a photo into a meme that fits the faces in it."""

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

__version__ = "0.1.0"
