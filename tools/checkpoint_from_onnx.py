"""Rebuild a trainable run folder from an exported float VGG member, to fine-tune it further.

    python tools/checkpoint_from_onnx.py MANIFEST MODEL_NAME --data FER2013_DIR --out RUN_DIR

The shipped members' PyTorch checkpoints were lost with the machine that trained
them; only their float ONNX graphs survive (experiments/float32-ensemble). The
export folded each batch norm into its convolution, so the graph holds one
weight and one bias per convolution. This puts them back into the ``vgg``
architecture and gives each batch norm the mean and variance its convolution's
output really has on the training faces, with scale and shift set so that the
network computes exactly what the graph does, in eval mode and (up to batch
noise) in train mode too. The result is checked against the ONNX graph.

The run folder gets ``best.pt`` and ``config.json``; pass ``RUN_DIR/best.pt`` to
``memegen train fit --init-from``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from memegen.expressions import normalise
from memegen.training.datasets import load_split
from memegen.training.export import INPUT_NAME
from memegen.training.train import TrainConfig, build_model, predict_probabilities

STATISTICS_FACES = 4096


def _plain_pass_layers(graph: onnx.GraphProto) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of every Conv, then the Gemm, of the pass that reads the input directly."""
    values = {item.name: numpy_helper.to_array(item) for item in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    reached, layers = {INPUT_NAME}, []
    for node in graph.node:
        if node.op_type == "Slice" or not reached.intersection(node.input):
            continue
        reached.update(node.output)
        if node.op_type in ("Conv", "Gemm"):
            layers.append((values[node.input[1]], values[node.input[2]]))
    return layers


def rebuild(graph: onnx.GraphProto, config: TrainConfig, faces: np.ndarray) -> torch.nn.Module:
    """The ``vgg`` network of ``config`` with the graph's weights and data-fitted batch norms."""
    network = build_model(config).eval()
    convolutions = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    linear = next(m for m in network.modules() if isinstance(m, torch.nn.Linear))
    *conv_layers, (linear_weight, linear_bias) = _plain_pass_layers(graph)
    if len(conv_layers) != len(convolutions):
        raise ValueError(f"the graph has {len(conv_layers)} convolutions, the network "
                         f"{len(convolutions)}: is the architecture in the manifest right?")
    sums = torch.zeros(len(convolutions), 3, max(conv.out_channels for conv in convolutions),
                       dtype=torch.float64)

    def count(index: int, output: torch.Tensor) -> None:
        channels = output.shape[1]
        values = output.double().transpose(0, 1).reshape(channels, -1)
        sums[index, 0, :channels] += values.shape[1]
        sums[index, 1, :channels] += values.sum(dim=1)
        sums[index, 2, :channels] += values.pow(2).sum(dim=1)

    with torch.no_grad():
        hooks = []
        for index, (conv, (weight, _)) in enumerate(zip(convolutions, conv_layers, strict=True)):
            conv.weight.copy_(torch.from_numpy(weight))
            hooks.append(conv.register_forward_hook(
                lambda _module, _inputs, output, index=index: count(index, output)
            ))
        for norm, (_, bias) in zip(norms, conv_layers, strict=True):
            # Identity for now: scale 1 over a unit variance, shift = the folded bias.
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
            norm.weight.fill_(1.0)
            norm.bias.copy_(torch.from_numpy(bias))
        linear.weight.copy_(torch.from_numpy(linear_weight))
        linear.bias.copy_(torch.from_numpy(linear_bias))
        for batch in np.array_split(faces, max(1, len(faces) // 256)):
            network(torch.from_numpy(normalise(batch, config.mean, config.std)))
        for hook in hooks:
            hook.remove()
        for index, norm in enumerate(norms):
            channels = norm.num_features
            total, first, second = sums[index, :, :channels]
            mean = first / total
            variance = second / total - mean**2
            norm.running_mean.copy_(mean.float())
            norm.running_var.copy_(variance.float())
            norm.weight.copy_((variance + norm.eps).sqrt().float())
            norm.bias.add_(mean.float())
    return network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path, help="manifest.json of a float ensemble")
    parser.add_argument("model", help="the member's name in the manifest")
    parser.add_argument("--data", required=True, help="its training data (train split is used)")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    args = parser.parse_args()

    entry = next(e for e in json.loads(args.manifest.read_text())["models"]
                 if e["name"] == args.model)
    architecture = entry["architecture"]
    config = TrainConfig(family=architecture["family"], width=architecture["width"],
                         depth=architecture["depth"], mean=entry["input"]["mean"],
                         std=entry["input"]["std"])
    if config.family != "vgg":
        raise SystemExit("only the vgg family is rebuilt (its layers map one to one)")
    path = args.manifest.parent / entry["file"]
    faces = load_split(args.data, "train").images
    chosen = np.random.default_rng(0).permutation(len(faces))[:STATISTICS_FACES]
    network = rebuild(onnx.load(path).graph, config, faces[np.sort(chosen)])

    check = faces[:512]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {INPUT_NAME: normalise(check, config.mean, config.std)})[0]
    mirror = entry["input"]["mirror_averaged_in_graph"]
    got = predict_probabilities(network, check, config, mirror=mirror)
    difference = float(np.abs(got - expected).max())
    print(f"largest difference from the ONNX graph on 512 faces: {difference:.2e}")
    if difference > 1e-4:
        raise SystemExit("the rebuilt network does not match the graph")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    torch.save({"model": network.state_dict(), "config": asdict(config)}, args.out / "best.pt")
    print(args.out / "best.pt")


if __name__ == "__main__":
    main()
