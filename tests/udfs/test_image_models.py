"""Image models on real pictures: the packaged classifier, the offline image-text stand-in, CLIP.

Models load once per module. The pictures are scikit-image's, saved to files in several formats
and decoded back, so the whole path from bytes to answer is exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from quarrydb.udfs import image_models
from quarrydb.udfs.image_decode import decode_image
from quarrydb.udfs.image_models import (
    ImageClassifier,
    ImageTextBridge,
    classify_images,
    label_prompt,
    load_efficientnet_lite0,
    load_open_clip,
    prepare_batch,
    register_tiny_clip_config,
    with_article,
)
from quarrydb.udfs.media_errors import MediaError
from quarrydb.udfs.text import minilm_spec

CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
NAMES = ["chelsea", "coffee", "rocket", "astronaut", "motorcycle"]
FILES = {
    "chelsea": "chelsea.jpg",
    "coffee": "coffee.png",
    "rocket": "rocket.webp",
    "astronaut": "astronaut.tiff",
    "motorcycle": "motorcycle.bmp",
}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Image.Image]:
    folder: Path = tmp_path_factory.mktemp("images")
    arrays = {
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "astronaut": data.astronaut(),
        "motorcycle": data.stereo_motorcycle()[0],
    }
    decoded = {}
    for name, array in arrays.items():
        path = folder / FILES[name]
        Image.fromarray(array).save(path)
        decoded[name] = decode_image(path.read_bytes())
    return decoded


@pytest.fixture(scope="module")
def classifier() -> ImageClassifier:
    return load_efficientnet_lite0("cpu")


@pytest.fixture(scope="module")
def bridge(classifier) -> ImageTextBridge:
    return ImageTextBridge(classifier, minilm_spec().load("cpu"))


@pytest.fixture(scope="module")
def batch(classifier, images) -> torch.Tensor:
    return prepare_batch(classifier, [images[n] for n in NAMES])


# --- the classifier -------------------------------------------------------------------------------


def test_classifier_classes_and_preprocess(classifier, images):
    assert len(classifier.class_names) == 1000
    assert classifier.class_names[281] == "tabby" and classifier.class_names[967] == "espresso"
    assert classifier.device == "cpu"
    tensor = classifier.preprocess(images["chelsea"])
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    assert -1.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0
    # greyscale input is accepted and becomes 3 channels
    assert classifier.preprocess(images["chelsea"].convert("L")).shape == (3, 224, 224)


def test_classifier_predictions(classifier, batch):
    probabilities = classifier.probabilities(batch)
    assert probabilities.shape == (5, 1000) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    top = classifier.top_labels(probabilities, k=3)
    assert top[NAMES.index("chelsea")][0][0] in CAT_CLASSES
    assert top[NAMES.index("coffee")][0][0] in {"espresso", "cup"}
    assert top[NAMES.index("coffee")][0][1] > 0.5
    assert top[NAMES.index("motorcycle")][0][0] in {"moped", "motor scooter", "crash helmet"}


def test_batch_results_match_single_image(classifier, batch):
    together = classifier.probabilities(batch)
    alone = classifier.probabilities(batch[1:2])
    assert np.allclose(together[1], alone[0], atol=1e-5)


def test_weight_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    source = torch.load(image_models.efficientnet_lite0_path(), map_location="cpu")
    short = dict(list(source.items())[:-1])
    torch.save(short, tmp_path / "short.pth")
    path = str(tmp_path / "short.pth")
    monkeypatch.setattr(image_models, "efficientnet_lite0_path", lambda: path)
    with pytest.raises(RuntimeError, match="295 tensors"):
        load_efficientnet_lite0("cpu")


# --- the offline image-text stand-in -------------------------------------------------------------


def test_bridge_vectors(bridge, batch):
    vectors = bridge.embed_images(batch)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32 and bridge.dim == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors, bridge.embed_images(batch))  # deterministic
    assert bridge.class_vectors.shape == (1000, 384)


def test_zero_shot_classification(bridge, images):
    labels = ["cat", "coffee", "rocket"]
    got = classify_images(bridge, [images["chelsea"], images["coffee"], images["rocket"]], labels)
    assert got == ["cat", "coffee", "rocket"]
    wider = ["cat", "coffee", "rocket", "motorcycle"]
    assert classify_images(bridge, [images["motorcycle"]], wider) == ["motorcycle"]
    assert classify_images(bridge, [], labels) == []


def test_zero_shot_from_bytes_and_bad_bytes(bridge, tmp_path, images):
    images["coffee"].save(tmp_path / "coffee.jpg")
    raw = (tmp_path / "coffee.jpg").read_bytes()
    assert classify_images(bridge, [raw], ["cat", "coffee", "rocket"]) == ["coffee"]
    with pytest.raises(MediaError):
        classify_images(bridge, [raw[:100]], ["cat", "coffee"])
    with pytest.raises(ValueError, match="labels"):
        classify_images(bridge, [images["coffee"]], [])


def test_text_to_image_search(bridge, batch):
    vectors = bridge.embed_images(batch)
    queries = {
        "a hot drink": "coffee",
        "a cat": "chelsea",
        "a motorbike": "motorcycle",
        "a rocket launch": "rocket",
    }
    scores = bridge.embed_texts(list(queries)) @ vectors.T
    assert [NAMES[i] for i in scores.argmax(axis=1)] == list(queries.values())


def test_captions(bridge, batch):
    captions = dict(zip(NAMES, bridge.caption(batch), strict=True))
    assert "cat" in captions["chelsea"]
    assert captions["chelsea"].startswith("a photo of ")
    assert captions["coffee"] == "a photo of an espresso"


def test_articles():
    assert with_article("tiger cat") == "a tiger cat"
    assert with_article("Egyptian cat") == "an Egyptian cat"
    assert with_article("espresso") == "an espresso"
    assert with_article("unicycle") == "a unicycle"
    assert with_article("European fire salamander") == "a European fire salamander"
    assert with_article("hourglass") == "an hourglass"
    assert with_article("hammer") == "a hammer"
    assert label_prompt("umbrella") == "a photo of an umbrella"


# --- real CLIP loading path, with a tiny random architecture ------------------------------------


def test_tiny_clip_checkpoint_round_trip(tmp_path, images):
    import open_clip

    name = register_tiny_clip_config()
    assert register_tiny_clip_config() == name  # idempotent
    torch.manual_seed(0)
    reference, _, transform = open_clip.create_model_and_transforms(name)
    reference.eval()
    checkpoint = tmp_path / "tiny.pt"
    torch.save(reference.state_dict(), checkpoint)

    clip = load_open_clip(name, str(checkpoint), "cpu")
    assert clip.dim == 64 and clip.device == "cpu"
    pictures = [images[n] for n in NAMES]
    pixels = prepare_batch(clip, pictures)
    assert pixels.shape == (5, 3, 64, 64)
    image_vectors = clip.embed_images(pixels)
    text_vectors = clip.embed_texts(["a cat", "a hot drink"])
    assert image_vectors.shape == (5, 64) and text_vectors.shape == (2, 64)
    assert image_vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(image_vectors, axis=1), 1.0, atol=1e-5)

    with torch.inference_mode():
        expected_images = reference.encode_image(torch.stack([transform(p) for p in pictures]))
        tokens = open_clip.get_tokenizer(name)(["a cat", "a hot drink"])
        expected_texts = reference.encode_text(tokens)
    expected_images = torch.nn.functional.normalize(expected_images, dim=-1).numpy()
    expected_texts = torch.nn.functional.normalize(expected_texts, dim=-1).numpy()
    assert np.allclose(image_vectors, expected_images, atol=1e-5)
    assert np.allclose(text_vectors, expected_texts, atol=1e-5)
    assert np.array_equal(image_vectors, clip.embed_images(pixels))  # deterministic

    # the same zero-shot code runs on CLIP (random weights: any label, but a valid one)
    assert set(classify_images(clip, pictures, ["cat", "coffee"])) <= {"cat", "coffee"}


def test_open_clip_errors(tmp_path):
    name = register_tiny_clip_config()
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_open_clip(name, str(tmp_path / "missing.pt"), "cpu")
    with pytest.raises(ValueError, match="unknown open_clip model"):
        load_open_clip("no-such-architecture", None, "cpu")
