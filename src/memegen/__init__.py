"""MemeGen: turn a photo into a meme that fits the faces in it."""

import os

# ONNX Runtime 1.32 on Linux starts a telemetry client when it is imported: it leaves a
# `.ses` file in the temp folder, keeps a database under ~/.cache/Microsoft, and sends
# events over HTTPS when it finds a CA bundle. MemeGen runs offline and leaves no files
# behind, so it is switched off before any module imports onnxruntime, unless whoever
# runs MemeGen has set the variable themselves.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

__version__ = "0.1.0"
