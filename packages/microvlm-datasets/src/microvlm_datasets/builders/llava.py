"""LLaVA instruction data: ``llava_instruct_150k.json`` and the files in its format.

On disk: ``{root}/{file}`` — a JSON list of ``{"id", "image", "conversations": [{"from":
"human" | "gpt" | "system", "value"}]}`` where a human turn (the first, in LLaVA-150K) holds
the ``<image>`` placeholder, before or after the text — and the images at
``{image_root}/{image}`` (LLaVA-150K: COCO ``train2017/{id:012d}.jpg``, so ``image_root`` is
that folder; the v1.5 mix names ``coco/train2017/...``, relative to a common folder). Records
without an image (text-only turns of the v1.5 mix) are skipped and counted in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from microvlm.data import ImageRef, Sample, Turn
from microvlm_datasets.builders.base import (
    MalformedDataError,
    RecordBuilder,
    expect,
    find_file,
    get,
    read_json,
    require_dir,
)
from microvlm_datasets.config import LlavaInstructConfig

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
ROLES: dict[str, Literal["system", "user", "assistant"]] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}

# (id, image path relative to image_root, turns)
LlavaRecord = tuple[str, str, tuple[Turn, ...]]


def strip_image_token(text: str) -> str:
    """``"<image>\\nWhat is ...?"`` -> ``"What is ...?"`` (the image goes first in the sequence)."""
    return text.replace(IMAGE_TOKEN, "").strip()


class LlavaInstruct(RecordBuilder[LlavaRecord]):
    """``llava_instruct``: one sample per conversation, turns typed as user/assistant."""

    def __init__(self, config: LlavaInstructConfig, name: str = "llava_instruct") -> None:
        super().__init__(name, config.root)
        self.config = config
        self.file = find_file(name, [self.root / config.file])
        self.image_dir = require_dir(name, Path(config.image_root), "image folder (image_root)")

    def _load(self) -> list[LlavaRecord]:
        where = str(self.file)
        records: list[LlavaRecord] = []
        skipped = 0
        for i, r in enumerate(expect(read_json(self.file), list, where)):
            at = f"{where}: [{i}]"
            image = r.get("image") if isinstance(r, dict) else None
            if not image:
                skipped += 1
                continue
            turns = []
            for j, t in enumerate(expect(get(r, "conversations", at), list, f"{at}.conversations")):
                t_at = f"{at}.conversations[{j}]"
                role = ROLES.get(get(t, "from", t_at))
                if role is None:
                    raise MalformedDataError(
                        f"{t_at}: unknown speaker {t['from']!r}; expected one of {', '.join(ROLES)}"
                    )
                turns.append(Turn(role, strip_image_token(str(get(t, "value", t_at)))))
            if not any(t.role == "assistant" for t in turns):
                raise MalformedDataError(f"{at}: a conversation without a 'gpt' turn")
            records.append((str(r.get("id", i)), str(image), tuple(turns)))
        if skipped:
            logger.info("%s: skipped %d records without an image in %s", self.name, skipped, where)
        return records

    def _sample(self, record: LlavaRecord) -> Sample:
        sample_id, image, turns = record
        return Sample(
            id=sample_id,
            image=ImageRef(path=str(self.image_dir / image)),
            dataset=self.name,
            conversation=turns,
            meta={"image": image},
        )
