"""Which of our distributions provides each built-in component name.

Used only to turn "unknown name" errors into an install hint when the providing package is
not installed. It is a constant table, not a registry: registration happens through plugins.
It cannot import those packages (the point is to name the ones that are missing), so
``tests/test_known_builtins.py`` checks it against what each installed package registers:
nothing is advertised that nobody registers, and nothing registered is left out.
"""

from __future__ import annotations

from types import MappingProxyType

_BY_PACKAGE: dict[str, dict[str, tuple[str, ...]]] = {
    "microvlm-core": {
        "bridge": ("qformer",),
        "llm": ("hf_causal_lm",),
        "logger": ("console", "jsonl", "wandb"),
    },
    "microvlm-encoders": {
        "encoder": ("diet_tiny", "diet_small", "deit_tiny", "deit_small", "timm"),
    },
    "microvlm-datasets": {
        "dataset": (
            "coco_caption",
            "flickr30k",
            "vqav2",
            "okvqa",
            "aokvqa",
            "gqa",
            "ocrvqa",
            "refcoco",
            "refcoco_plus",
            "refcocog",
            "llava_instruct",
            "webdataset",
            "cc3m",
            "laion_coco",
            "sbu",
            "shapes",
        ),
        "source": (
            "aokvqa",
            "cc3m",
            "coco2014",
            "coco2017",
            "coco_karpathy",
            "flickr30k",
            "gqa",
            "laion_coco",
            "llava_instruct",
            "ocrvqa",
            "okvqa",
            "refcoco",
            "refcoco_plus",
            "refcocog",
            "sbu",
            "vqav2",
        ),
    },
    "microvlm-tasks": {
        "task": ("pretrain", "captioning", "vqa", "aokvqa_da", "aokvqa_mc", "grounding", "instruct"),
    },
    "microvlm-quant": {
        "quantizer": ("nf4",),
        "exporter": ("fp16", "bf16", "int8", "bitnet158"),
        "qat": ("bitnet158",),
    },
}

#: (kind, name) -> distribution that provides it.
KNOWN_BUILTINS = MappingProxyType(
    {
        (kind, name): package
        for package, kinds in _BY_PACKAGE.items()
        for kind, names in kinds.items()
        for name in names
    }
)

#: Our distributions and their import names, for ``microvlm --version`` and the docs.
DISTRIBUTIONS = MappingProxyType(
    {
        "microvlm-core": "microvlm",
        "microvlm-encoders": "microvlm_encoders",
        "microvlm-quant": "microvlm_quant",
        "microvlm-datasets": "microvlm_datasets",
        "microvlm-tasks": "microvlm_tasks",
    }
)
