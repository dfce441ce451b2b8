"""LLaVA instruction data: ``llava_instruct_150k.json`` and the files in its format.

On disk: ``{root}/{file}`` — a JSON list of ``{"id", "image", "conversations": [{"from":
"human" | "gpt" | "system", "value"}]}`` where a human turn (the first, in LLaVA-150K) holds
the ``<image>`` placeholder, before or after the text — and the images at
``{image_root}/{image}`` (LLaVA-150K: COCO ``train2017/{id:012d}.jpg``, so ``image_root`` is
that folder; the v1.5 mix names ``coco/train2017/...``, relative to a common folder). Records
without an image (text-only turns of the v1.5 mix) are skipped and counted in the log. A
conversation with a turn that is not a string or is empty (a user turn of only ``<image>`` is
fine), or whose image path leads out of ``image_root``, is left out and counted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from microvlm.data import ImageRef, Sample, Turn
from microvlm_datasets.builders.base import (
    BadRecord,
    ImageFolder,
    MalformedDataError,
    RecordBuilder,
    expect,
    find_file,
    get,
    read_json,
    require_dir,
    text,
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

# (id, image path relative to image_root, the checked path, turns)
LlavaRecord = tuple[str, str, str, tuple[Turn, ...]]


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
        folder = ImageFolder(self.image_dir)
        records: list[LlavaRecord] = []
        skipped = 0
        for i, r in enumerate(expect(read_json(self.file), list, where)):
            at = f"{where}: [{i}]"
            image = r.get("image") if isinstance(r, dict) else None
            if image is None:
                skipped += 1
                continue
            with self.bad_records:
                path = folder.path(image, f"{at}.image")
                turns = self._turns(get(r, "conversations", at), f"{at}.conversations")
                records.append((str(r.get("id", i)), image, path, turns))
        if skipped:
            logger.info("%s: skipped %d records without an image in %s", self.name, skipped, where)
        return records

    def _turns(self, conversation: Any, where: str) -> tuple[Turn, ...]:
        turns = []
        for j, t in enumerate(expect(conversation, list, where)):
            t_at = f"{where}[{j}]"
            role = ROLES.get(get(t, "from", t_at))
            if role is None:
                raise MalformedDataError(
                    f"{t_at}: unknown speaker {t['from']!r}; expected one of {', '.join(ROLES)}"
                )
            value = strip_image_token(text(get(t, "value", t_at), "conversation turn", f"{t_at}.value"))
            if role == "assistant" and not value:
                raise BadRecord("conversation turn is empty", f"{t_at}.value: only {IMAGE_TOKEN}")
            turns.append(Turn(role, value))
        if not any(t.role == "assistant" for t in turns):
            raise MalformedDataError(f"{where}: a conversation without a 'gpt' turn")
        return tuple(turns)

    def _sample(self, record: LlavaRecord) -> Sample:
        sample_id, image, path, turns = record
        return Sample(
            id=sample_id,
            image=ImageRef(path=path),
            dataset=self.name,
            conversation=turns,
            meta={"image": image},
        )
