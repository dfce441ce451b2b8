"""Fuzzing every registered dataset builder and the image decoder (hypothesis, bounded).

Each builder gets its dataset's real-format files (the rows of ``test_datasets_formats_*.py``),
one of them damaged: a field replaced by a random JSON value, deleted, wrapped or unwrapped,
the file cut short, bytes flipped, or replaced by random bytes. The property: the builder loads
(bad records counted in ``skipped``, every text a non-empty string, every image inside its
folder), or raises a :class:`~microvlm.errors.MicroVLMError` naming the file — never another
exception, never a hang. Hostile image bytes end in an :class:`~microvlm.contracts.samples.ImageError`,
which training counts as a skip.

Bounded for CI (a few seconds); a longer search: ``FUZZ_EXAMPLES=500 FUZZ_IMAGES=5000 pytest
packages/microvlm-datasets/tests/test_fuzz_builders.py --hypothesis-show-statistics`` (the
statistics show how often each builder loaded, counted bad records, or refused the file).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import attrs
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import microvlm
from microvlm.contracts.samples import ImageError, ImageProblem
from microvlm.data import Example, ImageRef, Sample, Segment
from microvlm.data.sources import Source
from microvlm.errors import MicroVLMError
from microvlm.train.data import BadDataMonitor, Collate, EpochDataset

DIST = "microvlm-datasets"
BUILDERS = sorted(c.name for c in microvlm.load_plugins().components("dataset") if c.distribution == DIST)
HANG_S = 60  # an example still running after this long has hung
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # its TIFF decoder warns on damaged files
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "30")),
    deadline=None,  # shared CI machines are slow; hangs are caught by _no_hang
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@attrs.define
class Layout:
    """A dataset folder in its real format, with ``file`` the one to damage."""

    root: Path
    file: Path  # the annotation file (or shard) that is fuzzed
    payload: Any  # its content: a JSON value, or bytes
    kind: str  # "json", "jsonl" (a list of rows, one per line) or "bytes"
    settings: dict[str, Any]  # build(name, **settings)
    image_root: Path  # every image path must stay inside it


# -------------------------------------------------------------------------------------
# Real-format folders, one or more per registered builder
# -------------------------------------------------------------------------------------


def _images(folder: Path, names: list[str], jpeg: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(jpeg)
    return folder


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")


def _coco(root: Path, f: Any, jpeg: bytes, kind: str = "coco2017") -> Layout:
    images = _images(root / "val2017", [i["file_name"] for i in f.captions.COCO_2017["images"]], jpeg)
    if kind == "karpathy":
        _images(root / "val2014", ["COCO_val2014_000000391895.jpg"], jpeg)
        file = root / "dataset_coco.json"
        return Layout(
            root, file, f.captions.KARPATHY_COCO, "json", {"format": "karpathy", "split": "test"}, root
        )
    file = root / "annotations" / "captions_val2017.json"
    return Layout(root, file, f.captions.COCO_2017, "json", {"split": "val"}, images.parent)


def _flickr(root: Path, f: Any, jpeg: bytes, kind: str = "karpathy") -> Layout:
    names = ["1000092795.jpg", "10002456.jpg", "2199200615.jpg"]
    if kind == "kaggle_csv":
        images = _images(root / "flickr30k_images" / "flickr30k_images", names, jpeg)
        file = root / "flickr30k_images" / "results.csv"
        payload = f.captions.KAGGLE_CSV.encode()
        return Layout(root, file, payload, "bytes", {"format": "kaggle_csv", "split": "all"}, images)
    images = _images(root / "flickr30k-images", names, jpeg)
    return Layout(root, root / "dataset_flickr30k.json", f.captions.KARPATHY_FLICKR, "json", {}, images)


def _vqa(root: Path, f: Any, jpeg: bytes, kind: str = "questions", prefix: str = "v2_") -> Layout:
    coco = root / "coco"
    _images(coco / "train2014", ["COCO_train2014_000000458752.jpg"], jpeg)
    questions = root / f"{prefix}OpenEnded_mscoco_train2014_questions.json"
    annotations = root / f"{prefix}mscoco_train2014_annotations.json"
    _write_json(questions, f.vqa.VQA_QUESTIONS)
    _write_json(annotations, f.vqa.VQA_ANNOTATIONS)
    file, payload = (
        (questions, f.vqa.VQA_QUESTIONS) if kind == "questions" else (annotations, f.vqa.VQA_ANNOTATIONS)
    )
    return Layout(root, file, payload, "json", {"split": "train", "image_root": coco}, coco)


def _aokvqa(root: Path, f: Any, jpeg: bytes) -> Layout:
    coco = root / "coco"
    _images(coco / "val2017", ["000000461751.jpg"], jpeg)
    settings = {"split": "val", "image_root": coco}
    return Layout(root, root / "aokvqa_v1p0_val.json", f.vqa.AOKVQA_VAL, "json", settings, coco)


def _gqa(root: Path, f: Any, jpeg: bytes) -> Layout:
    images = _images(root / "images", ["n161313.jpg"], jpeg)
    file = root / "testdev_balanced_questions.json"
    return Layout(root, file, f.vqa.GQA_TESTDEV, "json", {"split": "test"}, images)


def _ocrvqa(root: Path, f: Any, jpeg: bytes) -> Layout:
    images = _images(root / "images", ["1930601716.jpg", "0060959916.gif"], jpeg)
    return Layout(root, root / "dataset.json", f.vqa.OCRVQA, "json", {"split": "train"}, images)


def _refcoco(root: Path, f: Any, jpeg: bytes) -> Layout:
    coco = root / "coco"
    _images(coco / "train2014", ["COCO_train2014_000000581857.jpg"], jpeg)
    row2 = {**f.ref_web.REF_ROW, "ref_id": 1, "sentences": json.dumps(f.ref_web.SENTENCES)}
    settings = {"split": "train", "image_root": coco}
    return Layout(root, root / "train.jsonl", [f.ref_web.REF_ROW, row2], "jsonl", settings, coco)


def _llava(root: Path, f: Any, jpeg: bytes) -> Layout:
    images = _images(root / "train2017", ["000000033471.jpg", "000000052846.jpg"], jpeg)
    file = root / "llava_instruct_150k.json"
    return Layout(root, file, f.ref_web.LLAVA, "json", {"image_root": images}, images)


def _web(root: Path, f: Any, jpeg: bytes) -> Layout:
    samples = [f.ref_web._web_sample(f"00000000{i}", f"caption {i}", jpeg) for i in range(3)]
    shard = f.ref_web.write_shard(root / "shards" / "00000.tar", samples)
    return Layout(root, shard, shard.read_bytes(), "bytes", {"root": root / "shards"}, root / "shards")


def _shapes(root: Path, f: Any, jpeg: bytes) -> Layout:
    """The caption view: COCO 2017 captions in ``coco/`` beside a manifest."""
    (root / "shapes.json").write_text("{}", encoding="utf-8")
    images = _images(
        root / "coco" / "train2017", [i["file_name"] for i in f.captions.COCO_2017["images"]], jpeg
    )
    file = root / "coco" / "annotations" / "captions_train2017.json"
    settings = {"split": "train", "view": "caption"}
    return Layout(root, file, f.captions.COCO_2017, "json", settings, images.parent)


Maker = Callable[[Path, Any, bytes], Layout]
LAYOUTS: dict[str, dict[str, Maker]] = {
    "coco_caption": {"coco2017": _coco, "karpathy": lambda r, f, j: _coco(r, f, j, "karpathy")},
    "flickr30k": {"karpathy": _flickr, "kaggle_csv": lambda r, f, j: _flickr(r, f, j, "kaggle_csv")},
    "vqav2": {"questions": _vqa, "annotations": lambda r, f, j: _vqa(r, f, j, "annotations")},
    "okvqa": {
        "questions": lambda r, f, j: _vqa(r, f, j, "questions", ""),
        "annotations": lambda r, f, j: _vqa(r, f, j, "annotations", ""),
    },
    "aokvqa": {"val": _aokvqa},
    "gqa": {"testdev": _gqa},
    "ocrvqa": {"dataset.json": _ocrvqa},
    "refcoco": {"jsonl": _refcoco},
    "refcoco_plus": {"jsonl": _refcoco},
    "refcocog": {"jsonl": _refcoco},
    "llava_instruct": {"150k": _llava},
    "webdataset": {"shard": _web},
    "cc3m": {"shard": _web},
    "laion_coco": {"shard": _web},
    "sbu": {"shard": _web},
    "shapes": {"caption": _shapes},
}
CASES = [(name, variant) for name in BUILDERS for variant in LAYOUTS.get(name, {"(none)": None})]


def test_every_registered_builder_is_fuzzed() -> None:
    assert set(BUILDERS) == set(LAYOUTS), "give every registered dataset builder a layout in LAYOUTS"


# -------------------------------------------------------------------------------------
# Damage
# -------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, at: tuple = ()) -> Iterator[tuple]:
    """Every node of a JSON value, as the keys that lead to it."""
    yield at
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*at, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*at, i))


def _replace(value: Any, at: tuple, make: Callable[[Any], Any]) -> Any:
    """``value`` with the node at ``at`` replaced by ``make(node)`` (``_DELETE`` removes it)."""
    if not at:
        return make(value)
    head, rest = at[0], at[1:]
    out: Any = dict(value) if isinstance(value, dict) else list(value)
    new = _replace(value[head], rest, make)
    if new is _DELETE:
        del out[head]
    else:
        out[head] = new
    return out


_DELETE = object()


def _serialise(value: Any, kind: str) -> bytes:
    if kind == "jsonl" and isinstance(value, list):
        return "".join(json.dumps(row) + "\n" for row in value).encode()
    return json.dumps(value).encode()


@st.composite
def damaged(draw: st.DrawFn, layout: Layout) -> bytes:
    """The layout's file, damaged one of several ways."""
    payload = layout.payload
    raw = payload if layout.kind == "bytes" else _serialise(payload, layout.kind)
    ways = ["bytes", "truncate", "flip"] + (
        [] if layout.kind == "bytes" else ["replace", "delete", "wrap", "unwrap"]
    )
    way = draw(st.sampled_from(ways))
    if way == "bytes":
        return draw(st.binary(max_size=300))
    if way == "truncate":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if way == "flip":
        out = bytearray(raw)
        for _ in range(draw(st.integers(1, 8))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    value = payload
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.sampled_from(list(_paths(value))))
        if way == "replace":
            new = draw(JSON)
            value = _replace(value, at, lambda _, new=new: new)
        elif way == "delete" and at:
            value = _replace(value, at, lambda _: _DELETE)
        elif way == "wrap":
            value = _replace(value, at, lambda node: [node] if draw(st.booleans()) else {"x": node})
        elif way == "unwrap":
            value = _replace(value, at, _child)
    return _serialise(value, layout.kind)


def _child(node: Any) -> Any:
    if isinstance(node, dict) and node:
        return next(iter(node.values()))
    if isinstance(node, list) and node:
        return node[0]
    return node


# -------------------------------------------------------------------------------------
# The property
# -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _no_hang(seconds: int = HANG_S) -> Iterator[None]:
    def hung(*_: Any) -> None:
        raise AssertionError(f"still running after {seconds} s: a hang")

    if not hasattr(signal, "SIGALRM"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _inside(path: str, folder: Path) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real == root or real.startswith(root + os.sep)


def _check_sample(sample: Sample, layout: Layout) -> None:
    texts = [*sample.captions, *sample.answers, *sample.choices, *(t.text for t in sample.conversation)]
    for text in [*texts, sample.question, sample.expression]:
        assert isinstance(text, str), f"{sample.id}: {text!r}"
    for text in [*sample.captions, *sample.answers, *sample.choices]:
        assert text.strip(), f"{sample.id}: an empty text was kept"
    assert sample.question.strip() or not sample.question, sample.id
    if sample.image.path:
        assert _inside(sample.image.path, layout.image_root), sample.image.path
    try:
        sample.image.open()
    except ImageError as exc:
        assert exc.reason in get_args(ImageProblem)


def _load(
    build: Callable[..., Any], name: str, layout: Layout, note: Callable[[str], None] = lambda _: None
) -> None:
    """Build, count, and make every sample; or a MicroVLMError naming the damaged file.
    ``note`` gets the outcome (hypothesis's ``event``, for ``--hypothesis-show-statistics``)."""
    settings = {"root": layout.root, **layout.settings}
    try:
        builder = build(name, **settings)
        n = len(builder)
        for i in range(n):
            _check_sample(builder[i], layout)
        skipped = getattr(builder, "skipped", {})
        assert all(isinstance(k, str) and v > 0 for k, v in skipped.items())
        note("loaded, bad records counted" if skipped else "loaded")
    except MicroVLMError as exc:
        note(f"refused: {type(exc).__name__}")
        message = str(exc)
        assert layout.file.name in message or str(layout.file.parent) in message, message


@pytest.mark.parametrize(("name", "variant"), CASES)
@FUZZ
@given(data=st.data())
def test_a_damaged_annotation_file_loads_or_fails_clearly(
    build: Callable[..., Any],
    formats: Any,
    jpeg_bytes: Callable[..., bytes],
    name: str,
    variant: str,
    data: Any,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        layout = LAYOUTS[name][variant](Path(tmp), formats, jpeg_bytes())
        layout.file.parent.mkdir(parents=True, exist_ok=True)
        layout.file.write_bytes(data.draw(damaged(layout), label="file"))
        with _no_hang():
            _load(build, name, layout, event)


@pytest.mark.parametrize(("name", "variant"), CASES)
def test_the_undamaged_layout_loads(
    build: Callable[..., Any],
    formats: Any,
    jpeg_bytes: Callable[..., bytes],
    tmp_path: Path,
    name: str,
    variant: str,
) -> None:
    """The fuzzed layouts are real: undamaged, each loads with samples and no bad records."""
    layout = LAYOUTS[name][variant](tmp_path, formats, jpeg_bytes())
    raw = layout.payload if layout.kind == "bytes" else _serialise(layout.payload, layout.kind)
    layout.file.parent.mkdir(parents=True, exist_ok=True)
    layout.file.write_bytes(raw)
    builder = build(name, **{"root": layout.root, **layout.settings})
    assert len(builder) > 0 and not builder.skipped
    _load(build, name, layout)


# -------------------------------------------------------------------------------------
# Image bytes
# -------------------------------------------------------------------------------------


def _encoded(fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.new("RGB", (12, 9), (200, 30, 30))
    image.putpixel((3, 3), (0, 255, 0))
    image.save(buffer, format=fmt)
    return buffer.getvalue()


REAL = {
    fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "DDS", "ICO", "TGA", "PPM")
}
# A DDS whose pixel-format flags PIL does not know: its decoder raises NotImplementedError.
DDS_UNKNOWN_FLAGS = REAL["DDS"][:80] + struct.pack("<I", 3984) + REAL["DDS"][84:]


@st.composite
def hostile_image(draw: st.DrawFn) -> bytes:
    """Random bytes, or a real PNG/JPEG/GIF/BMP/TIFF/WebP cut short or with bytes changed."""
    way = draw(st.sampled_from(["random", "truncate", "flip"]))
    if way == "random":
        return draw(st.binary(min_size=1, max_size=400))
    real = REAL[draw(st.sampled_from(sorted(REAL)))]
    if way == "truncate":
        return real[: draw(st.integers(1, len(real) - 1))]
    out = bytearray(real)
    for _ in range(draw(st.integers(1, 6))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


def _opens_or_image_error(ref: ImageRef) -> bool:
    """True when ``ref`` decodes (to RGB); False after a clean :class:`ImageError`."""
    try:
        image = ref.open()
    except ImageError as exc:
        assert exc.reason in get_args(ImageProblem) and exc.where == ref.where
        return False
    assert image.mode == "RGB"
    return True


@settings(max_examples=int(os.environ.get("FUZZ_IMAGES", "300")), deadline=None, database=None)
@given(data=hostile_image())
@example(data=DDS_UNKNOWN_FLAGS)
def test_hostile_image_bytes_decode_or_raise_image_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp, _no_hang():
        path = Path(tmp) / "image.jpg"
        path.write_bytes(data)
        assert _opens_or_image_error(ImageRef(data=data)) == _opens_or_image_error(ImageRef(path=str(path)))


def test_a_decoder_bug_on_hostile_bytes_is_an_unreadable_image() -> None:
    with pytest.raises(ImageError, match="NotImplementedError: Unknown pixel format flags") as info:
        ImageRef(data=DDS_UNKNOWN_FLAGS).open()
    assert info.value.reason == "unreadable"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_an_image_is_refused_without_hanging(tmp_path: Path) -> None:
    """A FIFO (or device) in a dataset folder would block ``open`` forever; it is not an image."""
    os.mkfifo(tmp_path / "000000000009.jpg")
    with _no_hang(10), pytest.raises(ImageError, match="not a regular file") as info:
        ImageRef(path=str(tmp_path / "000000000009.jpg")).open()
    assert info.value.reason == "not_image"


class _Caption:
    def example(self, sample: Any, rng: Any, tokenizer: Any = None) -> Example:
        return Example((Segment(sample.captions[0], target=True),))


class _Tokenizer:
    pad_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) % 250 + 1 for c in text]}


@settings(max_examples=40, deadline=None, database=None)
@given(data=hostile_image())
@example(data=DDS_UNKNOWN_FLAGS)
def test_training_counts_a_hostile_image_as_a_skip(data: bytes) -> None:
    """The hostile sample's position is filled by a good one and the skip reaches the monitor."""
    hostile = Sample("hostile", ImageRef(data=data), "toy", captions=("a photo",))
    good = [Sample(str(i), ImageRef(data=REAL["PNG"]), "toy", captions=("a photo",)) for i in range(3)]
    source = Source("toy/caption", [hostile, *good], _Caption(), 1.0)
    dataset = EpochDataset(
        [source], [(0, 0)], lambda image: torch.zeros(3, 2, 2), _Tokenizer(), seed=0, epoch=0
    )
    with _no_hang():
        item = dataset[0]
    decodes = _opens_or_image_error(hostile.image)
    assert (item.bad is None) == decodes
    monitor = BadDataMonitor([source], max_fraction=1.0)
    monitor.update(Collate(_Tokenizer(), 8)([item]))
    assert monitor.metrics()["data/skipped"] == (0 if decodes else 1)
    if item.bad is not None:
        assert item.bad.reason in get_args(ImageProblem)
