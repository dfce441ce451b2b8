"""Loading a transformers causal LM for MicroVLM: weights or config, LoRA, 4-bit via a quantizer.

A hub id and a local directory go through the same ``from_pretrained`` call, so tests that
save a tiny model to a temporary directory exercise the code path of ``Qwen/Qwen2.5-0.5B``.

``adapter = "qlora"`` asks the quantizer plugin named by ``config.quantizer`` (``nf4`` from
microvlm-quant) for the 4-bit loading; core never imports bitsandbytes. The quantizer is a
:class:`microvlm.contracts.quant.Quantizer`: its ``quantization_config(compute_dtype)`` goes to
``from_pretrained`` for ``init = "pretrained"``, ``quantize_model(model, compute_dtype=...)``
quantises an in-memory model for ``init = "random"``, and ``describe()`` is recorded with
checkpoints.
"""

from __future__ import annotations

import json
import logging
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from microvlm.errors import MicroVLMError, PluginError
from microvlm.models.llm.config import SHIPPED_CONFIGS, HFCausalLMConfig
from microvlm.models.llm.model import LanguageModel

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_LOCAL_HINT = "Without the network, point model at a local directory (config.json + weights)"
_OFFLINE_HINT = f'{_LOCAL_HINT} or use init = "random".'


def resolve_dtype(name: str) -> torch.dtype:
    """``"auto"`` -> bfloat16 when a CUDA device supports it, else float32; others by name."""
    if name == "auto":
        cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    return _DTYPES[name]


def resolve_source(name: str, *, what: str = "model", need_config: bool = True) -> tuple[str, bool]:
    """``(path or hub id, is_local)``; raises :class:`MicroVLMError` for a bad local path.

    An existing directory is local. A name that cannot be a hub id (``/abs``, ``./rel``,
    ``~``, more than one ``/``) but does not exist is reported as a missing directory.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if need_config and not (path / "config.json").is_file():
            raise MicroVLMError(
                f"{what} {name!r}: the directory has no config.json; a model directory holds config.json "
                "and the weights (*.safetensors), as written by save_pretrained()"
            )
        return str(path), True
    if path.exists():
        raise MicroVLMError(
            f"{what} {name!r} is a file; give a hub id or a directory written by save_pretrained()"
        )
    if name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1 or "\\" in name:
        raise MicroVLMError(
            f"{what} directory {name!r} does not exist; check the path (relative paths start from "
            f"the working directory {Path.cwd()}) or give a hub id such as 'Qwen/Qwen2.5-0.5B'"
        )
    return name, False


def load_language_model(
    config: HFCausalLMConfig,
    *,
    plugins: Plugins | None = None,
    quantizer: Any = None,
    device: str | None = None,
) -> LanguageModel:
    """Build the :class:`LanguageModel` described by ``config`` (see :mod:`microvlm.models.llm.config`)."""
    source, local = resolve_source(config.model)
    if config.trust_remote_code:
        logger.warning(
            "trust_remote_code is on: loading %r runs Python code that comes with it (its config's "
            "auto_map), with your permissions. Only do this for a source you trust.",
            config.model,
        )
    dtype = resolve_dtype(config.dtype)
    meta = device == "meta"
    if meta and config.init != "random":
        raise MicroVLMError('device="meta" builds shapes only; it needs init = "random"')
    quant = None
    if config.adapter == "qlora" and not meta:
        quant = quantizer if quantizer is not None else _get_quantizer(config, plugins)

    if config.init == "pretrained":
        model = _from_pretrained(config, source, local, dtype, quant)
    else:
        model = _from_config(config, source, local, dtype, quant, meta)
    model.requires_grad_(False)

    ckpt_kwargs = {"use_reentrant": False}
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        with warnings.catch_warnings():  # peft calls a method transformers 5.x renamed
            warnings.filterwarnings("ignore", "`gradient_checkpointing_enable` is deprecated", FutureWarning)
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=config.gradient_checkpointing,
                gradient_checkpointing_kwargs=ckpt_kwargs,
            )
    elif config.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # the newer transformers 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt_kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt_kwargs)
    if config.adapter != "none":
        model = _add_lora(model, config)

    def load_tokenizer() -> Any:
        return _load_tokenizer(config, vocab_size=model.get_input_embeddings().num_embeddings)

    lm = LanguageModel(
        model,
        config=config,
        tokenizer_loader=load_tokenizer,
        quantization=quant.describe() if quant is not None else None,
    )
    return lm.eval()  # peft leaves the model in train mode; the caller switches to train()


# -- pieces ------------------------------------------------------------------------------


def _get_quantizer(config: HFCausalLMConfig, plugins: Plugins | None) -> Any:
    """The :class:`~microvlm.contracts.quant.Quantizer` that loads the 4-bit base for qlora."""
    if plugins is None:
        raise MicroVLMError(
            f'adapter = "qlora" needs the quantizer plugin {config.quantizer!r}: build the language model '
            "with factory(config, plugins=...) (MicroVLM and recipes do)"
        )
    try:
        return plugins.build("quantizer", config.quantizer)
    except PluginError as exc:
        raise MicroVLMError(
            f'adapter = "qlora" loads the base model in 4 bits through the quantizer plugin '
            f"{config.quantizer!r}, which is not available: {exc}"
        ) from exc


def _hub_kwargs(config: HFCausalLMConfig, local: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if not local:
        kwargs["revision"] = config.revision
    return kwargs


def _from_pretrained(
    config: HFCausalLMConfig, source: str, local: bool, dtype: torch.dtype, quant: Any
) -> torch.nn.Module:
    import transformers

    kwargs = _hub_kwargs(config, local)
    if quant is not None:
        kwargs["quantization_config"] = quant.quantization_config(dtype)
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except (OSError, ValueError) as exc:
        where = "the directory" if local else "the hub id"
        hint = "" if local else f"\n{_OFFLINE_HINT}"
        raise MicroVLMError(f"cannot load model {config.model!r} from {where}: {exc}{hint}") from exc


def _load_config(config: HFCausalLMConfig, source: str, local: bool) -> Any:
    import transformers

    if not local and config.model in SHIPPED_CONFIGS and config.revision == "main":
        text = (
            resources.files("microvlm.models.llm").joinpath(SHIPPED_CONFIGS[config.model]).read_text("utf-8")
        )
        values = json.loads(text)
        values.pop("torch_dtype", None)  # the dtype is ours to choose
        return transformers.AutoConfig.for_model(values.pop("model_type"), **values)
    try:
        return transformers.AutoConfig.from_pretrained(source, **_hub_kwargs(config, local))
    except (OSError, ValueError) as exc:
        hint = "" if local else f"\n{_LOCAL_HINT}."
        raise MicroVLMError(f"cannot read the config of model {config.model!r}: {exc}{hint}") from exc


def _from_config(
    config: HFCausalLMConfig, source: str, local: bool, dtype: torch.dtype, quant: Any, meta: bool
) -> torch.nn.Module:
    import transformers

    hf_config = _load_config(config, source, local)
    with torch.device("meta" if meta else "cpu"):
        model = transformers.AutoModelForCausalLM.from_config(
            hf_config, dtype=dtype, trust_remote_code=config.trust_remote_code
        )
    if quant is not None:
        quant.quantize_model(model, compute_dtype=dtype)
    return model


def _add_lora(model: torch.nn.Module, config: HFCausalLMConfig) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        with warnings.catch_warnings():  # peft reads a property transformers 5.x deprecated
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            return get_peft_model(model, lora)
    except ValueError as exc:
        raise MicroVLMError(f"lora_target_modules {list(config.lora_target_modules)}: {exc}") from exc


def _load_tokenizer(config: HFCausalLMConfig, *, vocab_size: int) -> Any:
    import transformers

    source, local = resolve_source(config.tokenizer_source, what="tokenizer", need_config=False)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **_hub_kwargs(config, local))
    except (OSError, ValueError) as exc:
        hint = "" if local else "\nWithout the network, set tokenizer to a local directory."
        raise MicroVLMError(f"cannot load the tokenizer {config.tokenizer_source!r}: {exc}{hint}") from exc
    if len(tokenizer) > vocab_size:
        raise MicroVLMError(
            f"tokenizer {config.tokenizer_source!r} has {len(tokenizer)} tokens but model {config.model!r} "
            f"embeds only {vocab_size}; use the tokenizer that belongs to the model"
        )
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise MicroVLMError(f"tokenizer {config.tokenizer_source!r} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_hf_causal_lm(
    config: HFCausalLMConfig,
    *,
    plugins: Plugins | None = None,
    quantizer: Any = None,
    device: str | None = None,
    **_: Any,
) -> LanguageModel:
    """LLM factory: ``factory(config, plugins=...)`` -> :class:`microvlm.models.llm.LanguageModel`.

    :param plugins: used to find the quantizer for ``adapter = "qlora"``; loaded on demand.
    :param quantizer: an already built quantizer object (overrides ``config.quantizer``).
    :param device: ``"meta"`` builds an ``init = "random"`` model without allocating weights
        (parameter counting; with ``adapter = "qlora"`` the base stays unquantised there, the
        counts are the same); ``None`` builds on the CPU.
    """
    return load_language_model(config, plugins=plugins, quantizer=quantizer, device=device)
