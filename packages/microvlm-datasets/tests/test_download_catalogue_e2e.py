"""The real catalogue entries, served from 127.0.0.1: ``microvlm datasets download`` (the CLI and
the real engine) fetches them with the catalogue's own URLs behind ``--mirror``, and what lands
is what the builders read: ``datasets status`` calls each dataset and source complete, the
builders read every split, and a second run fetches nothing.

The files served are small stand-ins with the member names the real archives have (COCO's
``train2014/COCO_train2014_*.jpg``, VQAv2's ``v2_OpenEnded_mscoco_train2014_questions.json``,
GQA's ``images/``, ...), so the test holds the catalogue's paths and archive flags to the
builders; the catalogue's sizes and checksums (of the real files) are left out for them.
"""

from __future__ import annotations

import io
import json
import runpy
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
from click.testing import CliRunner

from microvlm.cli import build_cli
from microvlm_datasets import cli_download
from microvlm_datasets.download.sources import DatasetSource, RemoteFile, load_catalogue, select_sources

servers = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("servers.py"))))

WANTED = ["vqav2", "okvqa", "aokvqa", "gqa", "llava_instruct", "coco_karpathy"]
IDS = {"train": (1, 2), "val": (3,), "test": (4,)}  # COCO image ids per split


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _tgz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def _vqa(split: str, prefix: str) -> dict[str, bytes]:
    subset = f"{split}2014"
    questions = [{"question_id": 10 * i, "image_id": i, "question": "Is it red?"} for i in IDS[split]]
    answers = [
        {"question_id": 10 * i, "image_id": i, "answers": [{"answer": "yes"}] * 10, "answer_type": "yes/no"}
        for i in IDS[split]
    ]
    return {
        f"{prefix}OpenEnded_mscoco_{subset}_questions.json": _json({"questions": questions}),
        f"{'v2_' if prefix else ''}mscoco_{subset}_annotations.json": _json({"annotations": answers}),
    }


def _served(jpeg: bytes) -> dict[str, bytes]:
    """URL (as in the catalogue) -> the stand-in's bytes."""
    coco14 = {s: {f"{s}2014/COCO_{s}2014_{i:012d}.jpg": jpeg for i in IDS[s]} for s in ("train", "val")}
    coco17 = {s: {f"{s}2017/{i:012d}.jpg": jpeg for i in IDS[s]} for s in ("train", "val")}
    captions17 = {
        f"annotations/captions_{s}2017.json": _json(
            {
                "images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in IDS[s]],
                "annotations": [{"image_id": i, "id": i, "caption": "a red square"} for i in IDS[s]],
            }
        )
        for s in ("train", "val")
    }
    karpathy = {
        "images": [
            {
                "filepath": "val2014" if split != "train" else "train2014",
                "filename": f"COCO_{'val' if split != 'train' else 'train'}2014_{i:012d}.jpg",
                "cocoid": i,
                "split": split,
                "sentences": [{"raw": "a red square"}],
            }
            for split, i in (("train", 1), ("val", 3), ("test", 3))
        ]
    }
    vqa2 = {**_vqa("train", "v2_"), **_vqa("val", "v2_")}
    okvqa = {**_vqa("train", ""), **_vqa("val", "")}
    aokvqa = {
        f"aokvqa_v1p0_{split}.json": _json(
            [
                {
                    "split": split,
                    "image_id": i,
                    "question_id": f"q{i}",
                    "question": "What colour?",
                    "choices": ["red", "blue", "green", "grey"],
                    "correct_choice_idx": 0,
                    "direct_answers": ["red"] * 10,
                    "difficult_direct_answer": False,
                    "rationales": ["It is red."],
                }
                for i in IDS[split]
            ]
        )
        for split in ("train", "val")
    }
    gqa = {
        name: _json({"g1": {"question": "Is it red?", "imageId": "n1", "answer": "yes"}})
        for name in (
            "train_balanced_questions.json",
            "val_balanced_questions.json",
            "testdev_balanced_questions.json",
        )
    }
    stanford = "https://downloads.cs.stanford.edu/nlp/data/gqa"
    vqa = "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa"
    ok = "https://okvqa.allenai.org/static/data"
    files = {
        "http://images.cocodataset.org/zips/train2014.zip": _zip(coco14["train"]),
        "http://images.cocodataset.org/zips/val2014.zip": _zip(coco14["val"]),
        "http://images.cocodataset.org/annotations/annotations_trainval2014.zip": _zip(
            {"annotations/x.json": b"{}"}
        ),
        "http://images.cocodataset.org/zips/train2017.zip": _zip(coco17["train"]),
        "http://images.cocodataset.org/zips/val2017.zip": _zip(coco17["val"]),
        "http://images.cocodataset.org/annotations/annotations_trainval2017.zip": _zip(captions17),
        "http://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip": _zip(
            {"dataset_coco.json": _json(karpathy)}
        ),
        f"{stanford}/questions1.2.zip": _zip(gqa),
        f"{stanford}/images.zip": _zip({"images/n1.jpg": jpeg}),
        "https://prior-datasets.s3.us-east-2.amazonaws.com/aokvqa/aokvqa_v1p0.tar.gz": _tgz(aokvqa),
    }
    for which, name in (("Train", "train"), ("Val", "val")):
        files[f"{vqa}/v2_Questions_{which}_mscoco.zip"] = _zip(
            {k: v for k, v in vqa2.items() if "questions" in k and name in k}
        )
        files[f"{vqa}/v2_Annotations_{which}_mscoco.zip"] = _zip(
            {k: v for k, v in vqa2.items() if "annotations" in k and name in k}
        )
        for kind in ("OpenEnded_mscoco_{s}2014_questions.json", "mscoco_{s}2014_annotations.json"):
            member = kind.format(s=name)
            files[f"{ok}/{member}.zip"] = _zip({member: okvqa[member]})
    return files


def _no_checksums(source: DatasetSource) -> DatasetSource:
    """The stand-ins are not the real files: their sizes and digests are not the catalogue's."""

    def plain(file: RemoteFile) -> RemoteFile:
        return attrs.evolve(file, size=None, md5=None, sha256=None)

    return attrs.evolve(source, files=tuple(plain(f) for f in source.files))


@pytest.fixture
def world(tmp_path: Path, jpeg_bytes: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    catalogue = {n: _no_checksums(s) for n, s in load_catalogue().items()}
    wanted = select_sources(catalogue, WANTED)
    served = tmp_path / "served"
    files = _served(jpeg_bytes())
    mirrors: dict[str, str] = {}
    for url, data in files.items():
        parts = urlsplit(url)
        target = served / parts.netloc / parts.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        mirrors[f"{parts.scheme}://{parts.netloc}"] = parts.netloc
    needed = {f.url for s in wanted for f in s.files}
    assert needed == set(files), f"served and catalogue differ: {sorted(needed ^ set(files))}"
    llava = _json(
        [
            {
                "id": "1",
                "image": "000000000001.jpg",
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat is it?"},
                    {"from": "gpt", "value": "A red square."},
                ],
            }
        ]
    )
    repos = {
        ("dataset", "liuhaotian/LLaVA-Instruct-150K"): servers.HubRepo({"llava_instruct_150k.json": llava})
    }
    monkeypatch.setattr(cli_download, "plugin_sources", lambda ctx=None: catalogue)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with servers.file_server(served) as server, servers.fake_hub(repos) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base)
        args = [a for prefix, host in mirrors.items() for a in ("--mirror", f"{prefix}={server.base}/{host}")]
        yield SimpleNamespace(server=server, mirrors=args, wanted=wanted)


def _cli(*args: str) -> Any:
    return CliRunner().invoke(build_cli(), ["datasets", *args], catch_exceptions=False)


def test_the_catalogue_downloads_what_the_builders_read(world: Any, tmp_path: Path, build: Any) -> None:
    root = tmp_path / "data"
    result = _cli("download", "--datasets", *WANTED, "--root", str(root), *world.mirrors)
    assert result.exit_code == 0, result.output
    names = {s.name for s in world.wanted}
    assert names == {*WANTED, "coco2014", "coco2017"}

    report = json.loads(_cli("status", "--root", str(root), "--json").output)
    sources = {s["name"]: s for s in report["sources"]}
    assert {n: sources[n]["state"] for n in names} == dict.fromkeys(names, "complete"), sources
    datasets = {d["name"]: d for d in report["datasets"]}
    for name in ("coco_caption", "vqav2", "okvqa", "aokvqa", "gqa", "llava_instruct"):
        assert datasets[name]["state"] == "complete", datasets[name]
    karpathy = {r["split"]: r for r in datasets["coco_caption"]["splits"]}
    assert (
        karpathy["karpathy test"]["status"] == "present" and karpathy["karpathy test"]["missing_images"] == 0
    )

    # the builders read it with their defaults, only the data root moved
    sample = build("vqav2", root=root / "vqa", split="val", image_root=root / "coco")[0]
    assert sample.answers[0] == "yes" and sample.image.open().size[0] > 0
    assert len(build("llava_instruct", root=root / "llava", image_root=root / "coco" / "train2017")) == 1

    before = sum(world.server.requests.values())
    again = _cli("download", "--datasets", *WANTED, "--root", str(root), *world.mirrors)
    assert again.exit_code == 0, again.output
    assert sum(world.server.requests.values()) == before  # nothing fetched twice
