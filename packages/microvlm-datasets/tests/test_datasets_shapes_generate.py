"""The shapes dataset writes itself (and its tokenizer) when asked to and absent."""

import pytest

from microvlm import load_plugins
from microvlm.errors import MicroVLMError
from microvlm.structure import structure


def build(table):
    component = load_plugins().get("dataset", "shapes")
    return component.build(structure(table, component.config_cls))


def test_generate_writes_the_set_and_its_tokenizer_once(tmp_path):
    root = tmp_path / "shapes"
    table = {
        "root": str(root),
        "view": "vqa",
        "generate": True,
        "n_train": 6,
        "n_val": 2,
        "n_test": 2,
        "image_size": 32,
    }
    samples = list(build(table))
    assert len(samples) == 6 * 5  # five questions per image
    assert (root / "shapes.json").is_file()
    assert not list(tmp_path.glob(".tmp-*"))  # written through a temporary folder, renamed at the end
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    assert tokenizer.tokenize(" red circle") == ["Ġred", "Ġcircle"]  # whole words of its corpus
    stamp = (root / "shapes.json").stat().st_mtime_ns
    assert len(list(build({**table, "view": "caption", "n_train": 99}))) == 6  # present: not regenerated
    assert (root / "shapes.json").stat().st_mtime_ns == stamp


def test_without_generate_a_missing_set_is_an_error(tmp_path):
    with pytest.raises(MicroVLMError, match=r"shapes\.json"):
        build({"root": str(tmp_path / "none"), "view": "vqa"})
