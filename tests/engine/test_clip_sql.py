"""Real CLIP through open_clip, from SQL: a tiny architecture loaded from a local checkpoint
through the same path as ViT-B-32, and CLIP as the default once its weights are on the machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quarrydb.connectors.sample_media import write_sample_media
from quarrydb.udfs.builtin import build_registry
from quarrydb.udfs.image_models import load_open_clip, register_tiny_clip_config


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny CLIP with fixed random weights, saved as a checkpoint file."""
    name = register_tiny_clip_config()
    folder = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    model = load_open_clip(name, None, "cpu")
    checkpoint = folder / f"{name}.pt"
    torch.save(model.model.state_dict(), checkpoint)
    return name, checkpoint, model


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return write_sample_media(tmp_path_factory.mktemp("media"))


def test_embed_images_and_text_with_a_local_clip_checkpoint(cur, media, tiny_clip):
    name, checkpoint, reference = tiny_clip
    model = f"clip:{name}@{checkpoint}"
    cat = media.root_path("images/cat.jpg")
    cur.execute(f"SELECT embed(image('{cat}'), '{model}') AS v,"
                f" similarity(embed(image('{cat}'), '{model}'), embed('a cat')) AS s")
    vector, score = cur.fetchone()
    assert len(vector) == 64
    from PIL import Image

    expected = reference.embed_images(reference.preprocess(Image.open(cat)).unsqueeze(0))[0]
    assert np.allclose(vector, expected, atol=1e-5)
    # The text side named no model: it was embedded by the same CLIP, so the score is CLIP's.
    text = reference.embed_texts(["a cat"])[0]
    assert score == pytest.approx(float(expected @ text), abs=1e-5)


def test_clip_becomes_the_default_image_model_when_its_weights_are_present(
    tiny_clip, monkeypatch, tmp_path
):
    name, checkpoint, _ = tiny_clip
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / checkpoint.name).write_bytes(checkpoint.read_bytes())
    monkeypatch.setenv("QUARRYDB_MODEL_DIR", str(tmp_path))
    registry = build_registry()
    binding = registry.bind("embed", None, "image")
    assert binding.model.name == f"clip:{name}@{tmp_path / 'clip' / checkpoint.name}"
    assert binding.output_type == "FLOAT[64]"
    assert registry.bind("embed", None, "text").model.name == "minilm"

    monkeypatch.setenv("QUARRYDB_MODEL_DIR", str(tmp_path / "empty"))
    assert build_registry().bind("embed", None, "image").model.name == "imagenet-minilm-bridge"


def test_a_missing_clip_checkpoint_is_a_clear_error(cur, media, tmp_path):
    import quarrydb

    cat = media.root_path("images/cat.jpg")
    with pytest.raises(quarrydb.OperationalError, match="not available"):
        cur.execute(f"SELECT embed(image('{cat}'), 'clip:ViT-B-32@{tmp_path}/nope.pt')")



def test_weights_that_cannot_be_found_leave_the_root_logger_alone():
    """open_clip says so with logging.error(), which installed a handler on the root logger
    and printed "ERROR:root:..." above quarrydb's own clear error. In a process of its own:
    pytest's log capture gives the root logger a handler, which hides the difference."""
    import subprocess
    import sys

    script = (
        "import logging\n"
        "from quarrydb.udfs.image_models import load_open_clip, register_tiny_clip_config\n"
        "try:\n"
        "    load_open_clip(register_tiny_clip_config(), 'no-such-tag', 'cpu')\n"
        "except RuntimeError as exc:\n"
        "    print('refused:', 'is not a known tag' in str(exc))\n"
        "print('handlers:', len(logging.getLogger().handlers))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split("\n")[:2] == ["refused: True", "handlers: 0"]
    assert "ERROR:root" not in done.stderr
