"""The shapes dataset writes itself (and its tokenizer) when asked to and absent."""

import pytest

from microvlm import load_plugins
from microvlm.errors import MicroVLMError
from microvlm.recipes.structure import structure


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


def test_a_set_of_an_older_format_is_written_again(tmp_path, caplog):
    """A demo folder from before RefCOCO's bbox fix (format 1: bbox as [x, y, w, h]) would fail to
    load; with generate on it is written again, and a file the user put there stays."""
    import json

    root = tmp_path / "shapes"
    table = {"root": str(root), "view": "grounding", "generate": True, "n_train": 4, "n_val": 1}
    table.update({"n_test": 1, "image_size": 32})
    build(table)
    manifest = json.loads((root / "shapes.json").read_text())
    (root / "shapes.json").write_text(json.dumps({**manifest, "format_version": 1}))
    rows = (root / "refcoco" / "train.jsonl").read_text().splitlines()
    old = [json.loads(r) for r in rows]
    for row in old:  # the old writer's column
        x, y, w, h = json.loads(row["raw_anns"])["bbox"]  # a JSON string, as on the hub
        row["bbox"] = [x, y, w, h]
    (root / "refcoco" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    (root / "notes.txt").write_text("mine")
    samples = list(build(table))
    assert samples and json.loads((root / "shapes.json").read_text())["format_version"] == 2
    assert (root / "notes.txt").read_text() == "mine"
    assert "shapes format 1" in caplog.text and "writing it again" in caplog.text
