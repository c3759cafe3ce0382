"""Turn an exported float VGG member back into a run folder that training can continue.

The PyTorch checkpoints of MemeGen's first shipped members were lost with the
machine that trained them; only their float ONNX graphs survived. The export
folded each batch norm into its convolution, so the graph holds one weight and
one bias per convolution. ``rebuild_vgg`` puts them back into the ``vgg``
architecture and gives each batch norm the mean and variance that its
convolution's output really has on training faces, with scale and shift set so
that the network computes exactly what the graph does: in eval mode to float
precision, and in train mode up to the difference between a batch's statistics
and the whole sample's. Without those statistics the first training step would
renormalise every layer and throw away what the folded weights had learned.

The run folder gets ``best.pt`` and ``config.json``; ``memegen train fit
--init-from RUN/best.pt`` fine-tunes from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from memegen.errors import UserError
from memegen.expressions import normalise, read_manifest
from memegen.training.datasets import FaceDataset
from memegen.training.export import INPUT_NAME
from memegen.training.mirror import plain_pass_nodes
from memegen.training.quantize import calibration_faces
from memegen.training.train import (
    TrainConfig,
    build_model,
    predict_probabilities,
    save_checkpoint,
)

STATISTICS_FACES = 4096
CHECK_FACES = 512
TOLERANCE = 1e-4


def _plain_pass_layers(graph: onnx.GraphProto) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of every Conv, then of every Gemm, of the graph's unmirrored pass."""
    values = {item.name: numpy_helper.to_array(item) for item in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return [
        (values[node.input[1]], values[node.input[2]])
        for node in plain_pass_nodes(graph)
        if node.op_type in ("Conv", "Gemm")
    ]


def rebuild_vgg(graph: onnx.GraphProto, config: TrainConfig, faces: np.ndarray) -> torch.nn.Module:
    """The ``vgg`` network of ``config`` with the graph's weights and data-fitted batch norms."""
    network = build_model(config).eval()
    convolutions = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    linears = [m for m in network.modules() if isinstance(m, torch.nn.Linear)]
    layers = _plain_pass_layers(graph)
    conv_layers, linear_layers = layers[: -len(linears)], layers[-len(linears) :]
    if len(conv_layers) != len(convolutions):
        raise ValueError(f"the graph has {len(conv_layers)} convolutions, the network "
                         f"{len(convolutions)}: is the architecture in the manifest right?")
    # Per convolution and output channel: count, sum and sum of squares of its outputs.
    sums = [torch.zeros(3, conv.out_channels, dtype=torch.float64) for conv in convolutions]

    def count(index: int, output: torch.Tensor) -> None:
        values = output.double().transpose(0, 1).reshape(output.shape[1], -1)
        sums[index] += torch.stack(
            [torch.full_like(values[:, 0], values.shape[1]), values.sum(1), values.pow(2).sum(1)]
        )

    with torch.no_grad():
        hooks = []
        for index, (conv, (weight, _)) in enumerate(zip(convolutions, conv_layers, strict=True)):
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            hooks.append(conv.register_forward_hook(
                lambda _module, _inputs, output, index=index: count(index, output)
            ))
        for norm, (_, bias) in zip(norms, conv_layers, strict=True):
            # Identity for now: scale 1 over a unit variance, shift = the folded bias.
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
            norm.weight.fill_(1.0)
            norm.bias.copy_(torch.from_numpy(bias.copy()))
        for linear, (weight, bias) in zip(linears, linear_layers, strict=True):
            linear.weight.copy_(torch.from_numpy(weight.copy()))
            linear.bias.copy_(torch.from_numpy(bias.copy()))
        for batch in np.array_split(faces, max(1, len(faces) // 256)):
            network(torch.from_numpy(normalise(batch, config.mean, config.std)))
        for hook in hooks:
            hook.remove()
        for norm, (total, first, second) in zip(norms, sums, strict=True):
            mean = first / total
            variance = second / total - mean**2
            norm.running_mean.copy_(mean.float())
            norm.running_var.copy_(variance.float())
            norm.weight.copy_((variance + norm.eps).sqrt().float())
            norm.bias.add_(mean.float())
    return network


def rebuild_run(
    manifest_path: Path, model_name: str, train_set: FaceDataset, out_dir: Path
) -> float:
    """Write ``out_dir`` (``best.pt``, ``config.json``) for one float member of a manifest.

    ``train_set`` should be the member's training data: the batch norms take
    their statistics (not its labels) from a sample of it. Returns the largest
    difference from the graph's probabilities on its first faces; above 1e-4
    nothing is written.

    A member that is not there, not a VGG or an int8 copy, or an ``out_dir`` that already
    holds a run (which this would overwrite), is the user's choice to fix
    (:class:`UserError`). A rebuilt network that does not answer like its graph is not:
    its batch norms undo their own statistics whatever the faces, so the difference is
    a bug and stays a ``ValueError``.
    """
    manifest_path = Path(manifest_path)
    if any((out_dir / name).exists() for name in ("best.pt", "config.json", "last.pt")):
        raise UserError(f"{out_dir} already holds a run; rebuild into a new folder")
    entries = read_manifest(manifest_path)["models"]
    entry = next((e for e in entries if e["name"] == model_name), None)
    if entry is None:
        raise UserError(f"{manifest_path} has no model named {model_name!r}")
    architecture = entry["architecture"]
    if architecture["family"] != "vgg":
        raise UserError("only the vgg family is rebuilt: its layers map one to one")
    if "quantization" in entry:
        raise UserError(f"{model_name} is an int8 copy; rebuild its float original")
    config = TrainConfig(
        family="vgg",
        width=architecture["width"],
        depth=architecture["depth"],
        head=architecture.get("head", "pool"),
        mean=entry["input"]["mean"],
        std=entry["input"]["std"],
    )
    path = manifest_path.parent / entry["file"]
    sample = calibration_faces(train_set, STATISTICS_FACES, seed=0)
    network = rebuild_vgg(onnx.load(path).graph, config, sample)

    check = train_set.images[:CHECK_FACES]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {INPUT_NAME: normalise(check, config.mean, config.std)})[0]
    mirror = entry["input"]["mirror_averaged_in_graph"]
    got = predict_probabilities(network, check, config, mirror=mirror)
    difference = float(np.abs(got - expected).max())
    if difference > TOLERANCE:
        raise ValueError(f"the rebuilt network differs from the graph by {difference:.1e}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    save_checkpoint({"model": network.state_dict(), "config": asdict(config)}, out_dir / "best.pt")
    return difference
