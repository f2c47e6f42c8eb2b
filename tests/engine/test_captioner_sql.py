"""caption() with a real transformers captioner: a tiny BLIP saved to a local directory, loaded
through the same path as a full-size one; and the default switch when one is present."""

from __future__ import annotations

import pytest
import torch

from quarrydb.connectors.sample_media import write_sample_media
from quarrydb.udfs.builtin import build_registry
from quarrydb.udfs.captioner import load_captioner

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "cat", "on", "sofa"]


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder = tmp_path_factory.mktemp("blip")
    (folder / "vocab.txt").write_text("\n".join(VOCAB))
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    processor = BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer)
    text = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=37, bos_token_id=2, sep_token_id=3, pad_token_id=0)
    vision = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=37, image_size=32, patch_size=16)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision,
                                                    projection_dim=16))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_caption_with_a_local_transformers_captioner(cur, tmp_path_factory, tiny_blip):
    media = write_sample_media(tmp_path_factory.mktemp("media"))
    cat = media.root_path("images/cat.jpg")
    cur.execute(f"SELECT caption(image('{cat}'), 'hf-caption:{tiny_blip}')")
    (text,) = cur.fetchone()
    direct = load_captioner(tiny_blip, "cpu")
    from quarrydb.udfs.image_decode import decode_image

    with open(cat, "rb") as handle:
        pixels = direct.preprocess(decode_image(handle.read())).unsqueeze(0)
    assert text == direct.caption(pixels)[0]
    assert cur.stats["stages"][0]["model"] == f"hf-caption:{tiny_blip}"


def test_a_present_captioner_becomes_the_default(tiny_blip, tmp_path, monkeypatch):
    (tmp_path / "caption").symlink_to(tiny_blip, target_is_directory=True)
    monkeypatch.setenv("QUARRYDB_MODEL_DIR", str(tmp_path))
    assert build_registry().bind("caption", None, "image").model.source == "file"
    monkeypatch.setenv("QUARRYDB_MODEL_DIR", str(tmp_path / "none"))
    assert build_registry().bind("caption", None, "image").model.name == "imagenet-minilm-bridge"
