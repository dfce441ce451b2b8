"""Tasks and metrics of microvlm-tasks: hook implementations only; heavy imports live in the factories."""

from __future__ import annotations

from microvlm.contracts.hookspecs import hookimpl
from microvlm.plugins.manager import Register
from microvlm_tasks.aokvqa import build_aokvqa_da, build_aokvqa_mc
from microvlm_tasks.captioning import build_captioning, build_pretrain
from microvlm_tasks.config import (
    AOKVQAChoiceConfig,
    AOKVQADirectConfig,
    CaptioningConfig,
    GroundingConfig,
    InstructConfig,
    PretrainConfig,
    VQAConfig,
)
from microvlm_tasks.grounding import build_grounding
from microvlm_tasks.instruct import build_instruct
from microvlm_tasks.vqa import build_vqa


@hookimpl
def register_tasks(register: Register) -> None:
    register("pretrain", build_pretrain, PretrainConfig, description="stage 1: caption, no prompt")
    register("captioning", build_captioning, CaptioningConfig, description="captions; BLEU/METEOR/CIDEr")
    register("vqa", build_vqa, VQAConfig, description="short answers; official VQA accuracy (2021 rule)")
    register(
        "aokvqa_da", build_aokvqa_da, AOKVQADirectConfig, description="A-OKVQA direct answer; official DA"
    )
    register(
        "aokvqa_mc", build_aokvqa_mc, AOKVQAChoiceConfig, description="A-OKVQA multiple choice; official MC"
    )
    register("grounding", build_grounding, GroundingConfig, description="expression -> box text; Acc@0.5")
    register("instruct", build_instruct, InstructConfig, description="chat template; loss on replies")
