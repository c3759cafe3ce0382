import json
import os
import shutil

import numpy as np
import pytest

from memegen import LABELS
from memegen.config import DEFAULT_MANIFEST
from memegen.expressions import (
    ExpressionClassifier,
    ManifestError,
    apply_temperature,
    load_classifier,
    shift_priors,
    weighted_vote,
)
from memegen.imaging import load_photo

from sample_images import astronaut_jpeg


def test_weighted_vote_gives_each_model_its_say_per_class():
    probabilities = np.array(
        [
            [[0.6, 0.4]],
            [[0.2, 0.8]],
        ]
    )
    weights = np.array([[3.0, 1.0], [1.0, 1.0]])
    # class 0: (3·0.6 + 1·0.2) / 4 = 0.5; class 1: (0.4 + 0.8) / 2 = 0.6; then renormalised
    np.testing.assert_allclose(weighted_vote(probabilities, weights), [[0.5 / 1.1, 0.6 / 1.1]])


def test_weighted_vote_with_equal_weights_is_the_plain_average():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(7), size=(3, 5))
    np.testing.assert_allclose(
        weighted_vote(probabilities, np.ones((3, 7))), probabilities.mean(axis=0), atol=1e-6
    )


def test_shipped_manifest_lists_our_labels_and_existing_models():
    manifest = json.loads(DEFAULT_MANIFEST.read_text())
    assert tuple(manifest["labels"]) == LABELS
    for model in manifest["models"]:
        assert (DEFAULT_MANIFEST.parent / model["file"]).is_file()
        assert set(model["class_weights"]) == set(LABELS)


def test_batch_of_faces_matches_one_face_at_a_time():
    classifier = load_classifier(DEFAULT_MANIFEST)
    pixels = load_photo(astronaut_jpeg()).pixels
    boxes = [(150, 40, 330, 240), (0, 0, 200, 200), (300, 300, 500, 500)]
    together = classifier.classify(pixels, boxes)
    alone = np.concatenate([classifier.classify(pixels, [box]) for box in boxes])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-5)


def test_no_boxes_gives_an_empty_result():
    classifier = load_classifier(DEFAULT_MANIFEST)
    assert classifier.classify(np.zeros((64, 64, 3), np.uint8), []).shape == (0, len(LABELS))


def test_manifest_with_other_labels_is_refused(tmp_path):
    manifest = json.loads(DEFAULT_MANIFEST.read_text())
    manifest["labels"] = list(reversed(manifest["labels"]))
    for model in manifest["models"]:
        shutil.copy(DEFAULT_MANIFEST.parent / model["file"], tmp_path / model["file"])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="labels"):
        ExpressionClassifier(tmp_path / "manifest.json")


def write_unusable_manifest(path, problem):
    """A manifest at ``path`` with ``problem``; none of the shipped model files lie beside it."""
    if problem == "a folder":
        path.mkdir()
    elif problem == "not JSON":
        path.write_text('{"labels": [')
    elif problem != "missing":
        manifest = json.loads(DEFAULT_MANIFEST.read_text())
        if problem == "an entry without its file":
            del manifest["models"][0]["file"]
        elif problem == "a file that is no model":
            (path.parent / "garbage.onnx").write_bytes(b"not a model")
            manifest["models"][0]["file"] = "garbage.onnx"
        elif problem == "an empty model file":
            (path.parent / "empty.onnx").write_bytes(b"")
            manifest["models"][0]["file"] = "empty.onnx"
        elif problem in FIELD_EDITS:
            for model in (*manifest["models"], *manifest.get("photo_models", [])):
                shutil.copy(DEFAULT_MANIFEST.parent / model["file"], path.parent / model["file"])
            FIELD_EDITS[problem](manifest)
        path.write_text(json.dumps(manifest))


def weigh(models, label, weight):
    for model in models:
        model["class_weights"][label] = weight


#: Hand edits that leave every model file in place but a field that cannot be used.
FIELD_EDITS = {
    "a size the graph does not take": lambda m: m["models"][1]["input"].update(size=64),
    "a size as text": lambda m: m["models"][1]["input"].update(size="48"),
    "a std of 0": lambda m: m["models"][0]["input"].update(std=0),
    "a NaN class weight": lambda m: m["models"][0]["class_weights"].update(happy=float("nan")),
    "every class weight 0": lambda m: m["models"][0].update(
        class_weights=dict.fromkeys(LABELS, 0.0)),
    "a temperature of 0": lambda m: m["models"][0].update(temperature=0),
    "a gate as text": lambda m: m["models"][2].update(consult_below="0.9"),
    "a vote temperature as text": lambda m: m.update(vote_temperature="abc"),
    "a class bias as a list": lambda m: m.update(class_bias=[0.1] * 7),
    "a class bias of true": lambda m: m["class_bias"].update(angry=True),
    "a newer format": lambda m: m.update(format_version=2),
    "models as a number": lambda m: m.update(models=5),
    "photo models as a number": lambda m: m.update(photo_models=5),
    "a class weight of 1e308": lambda m: weigh(m["models"][:1], "angry", 1e308),
    "angry weighted 0 by every model": lambda m: weigh(m["models"], "angry", 0.0),
    "angry weighted 0 by the ungated models": lambda m: weigh(m["models"][:2], "angry", 0.0),
    "angry weighted 0 by every photo model": lambda m: weigh(m["photo_models"], "angry", 0.0),
    "a class bias of 800": lambda m: m["class_bias"].update(angry=800),
    "a class bias of -800 on every class": lambda m: m.update(
        class_bias=dict.fromkeys(LABELS, -800)),
    "a vote temperature of 1e-300": lambda m: m.update(vote_temperature=1e-300),
    "a member temperature of 1e-300": lambda m: m["models"][0].update(temperature=1e-300),
}


@pytest.mark.parametrize(("problem", "message"), [
    ("missing", "cannot read the model manifest (No such file or directory)"),
    ("a folder", "cannot read the model manifest (Is a directory)"),
    ("not JSON", "the model manifest is not valid JSON"),
    ("an entry without its file", 'models[0] names no model "file"'),
    ("a model file missing", "models[0]: the model file"),
    ("a file that is no model", "garbage.onnx is not a model ONNX Runtime can load"),
    ("an empty model file", "empty.onnx is not a model ONNX Runtime can load"),
    ("a size the graph does not take", "models[1] has a malformed field (input size 64 is not "
     "the graph's 48)"),
    ("a size as text", "input size '48' is not the graph's 48"),
    ("a std of 0", "models[0] has a malformed field (input std 0 is out of its range)"),
    ("a NaN class weight", "class weight of happy nan is out of its range"),
    ("every class weight 0", "every class weight is 0"),
    ("a temperature of 0", "temperature 0 is out of its range"),
    ("a gate as text", "models[2] has a malformed field (consult_below '0.9' is not a number)"),
    ("a vote temperature as text", "vote_temperature 'abc' is not a number"),
    ("a class bias as a list", "class_bias is not an object of a number per label"),
    ("a class bias of true", "class_bias of angry True is not a number"),
    ("a newer format", "format_version 2; this MemeGen reads format 1"),
    ("models as a number", '"models" is not a list of model entries'),
    ("photo models as a number", '"photo_models" is not a list of model entries'),
    ("a class weight of 1e308", "class weight of angry 1e+308 is out of its range"),
    ("angry weighted 0 by every model", "no model before the first gated one gives angry a "
     "class weight above 0"),
    ("angry weighted 0 by the ungated models", "no model before the first gated one gives "
     "angry a class weight above 0"),
    ("angry weighted 0 by every photo model", "no photo model gives angry a class weight"),
    ("a class bias of 800", "class_bias of angry 800 is out of its range"),
    ("a class bias of -800 on every class", "class_bias of angry -800 is out of its range"),
    ("a vote temperature of 1e-300", "vote_temperature 1e-300 is out of its range"),
    ("a member temperature of 1e-300", "models[0] has a malformed field (temperature 1e-300 "
     "is out of its range)"),
])
def test_an_unusable_manifest_is_refused_naming_it_and_what_is_wrong(tmp_path, problem, message):
    path = tmp_path / "manifest.json"
    write_unusable_manifest(path, problem)
    with pytest.raises(ManifestError) as refused:
        ExpressionClassifier(path)
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value)


@pytest.mark.parametrize("key", ["models", "photo_models"])
@pytest.mark.parametrize("outside", ["absolute", "up a folder"])
def test_a_model_file_outside_the_manifests_folder_is_refused(tmp_path, key, outside):
    """The training steps copy and delete the files a manifest names, so a name that leaves
    its folder would have them touch files elsewhere."""
    manifest = json.loads(DEFAULT_MANIFEST.read_text())
    folder = tmp_path / "ensemble"
    folder.mkdir()
    for model in (*manifest["models"], *manifest["photo_models"]):
        shutil.copy(DEFAULT_MANIFEST.parent / model["file"], folder / model["file"])
    elsewhere = DEFAULT_MANIFEST.parent / manifest[key][0]["file"]
    manifest[key][0]["file"] = (
        str(elsewhere) if outside == "absolute" else os.path.relpath(elsewhere, folder)
    )
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=rf"{key}\[0\]: the model file .* is not inside "
                       "the manifest's folder"):
        ExpressionClassifier(folder / "manifest.json")


def test_a_graph_scoring_other_than_one_class_a_label_is_refused_naming_it(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]),
         helper.make_node("MatMul", ["flat", "weights"], ["scores"]),
         helper.make_node("Softmax", ["scores"], ["probabilities"])],
        "five classes",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 48, 48])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 5])],
        [numpy_helper.from_array(np.zeros((48 * 48, 5), np.float32), "weights")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              tmp_path / "five.onnx")
    manifest = json.loads(DEFAULT_MANIFEST.read_text())
    manifest["models"][0]["file"] = "five.onnx"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=r"five\.onnx gives 5 scores a face, not one for each "
                       "of the 7 labels"):
        ExpressionClassifier(tmp_path / "manifest.json")


def test_a_bias_shared_by_every_class_or_an_extreme_temperature_gives_no_nan():
    """The last guard behind the manifest's ranges: scores whose exp under- or overflows."""
    vote = np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(shift_priors(vote, np.full(3, -800.0)), vote, atol=1e-6)
    np.testing.assert_allclose(shift_priors(vote, np.array([0.0, 800.0, 0.0])),
                               [[0, 1, 0], [1, 0, 0]], atol=1e-6)
    np.testing.assert_allclose(apply_temperature(vote, 1e-300), [[1, 0, 0], [1, 0, 0]])
    np.testing.assert_allclose(apply_temperature(vote, 1e300), [[1 / 3] * 3, [1, 0, 0]],
                               atol=1e-6)


def test_found_faces_get_the_photo_models_vote_and_given_crops_the_crop_vote():
    classifier = load_classifier(DEFAULT_MANIFEST)
    assert len(classifier.photo_models) == 2
    pixels = load_photo(astronaut_jpeg()).pixels
    boxes = [(150, 40, 330, 240), (0, 0, 200, 200)]
    readings = classifier.photo_model_probabilities(pixels, boxes)
    assert readings.shape == (2, 2, len(LABELS))
    np.testing.assert_allclose(
        classifier.classify(pixels, boxes), readings.mean(axis=0), atol=1e-6
    )  # equal class weights: the plain mean
    as_crops = classifier.model_probabilities(pixels, boxes, precropped=True, gated=True)
    np.testing.assert_allclose(
        classifier.classify(pixels, boxes, precropped=True), classifier.vote(as_crops),
        atol=1e-6,
    )


def test_without_photo_models_found_faces_get_the_crop_vote(tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(DEFAULT_MANIFEST.parent, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["photo_models"], manifest["photo_models_evidence"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    classifier = ExpressionClassifier(folder / "manifest.json")
    pixels = load_photo(astronaut_jpeg()).pixels
    boxes = [(150, 40, 330, 240)]
    np.testing.assert_allclose(
        classifier.classify(pixels, boxes),
        classifier.vote(classifier.model_probabilities(pixels, boxes, gated=True)),
        atol=1e-6,
    )
