"""Training of the expression CNNs (needs the ``train`` extra: torch, onnx, optuna).

Inference never imports this package: it only reads what ``export`` writes,
ONNX files plus one JSON manifest.
"""
