"""MicroVLM: image encoder -> bridge (Q-Former) -> projection -> causal LM.

Sequence layout: ``[image query embeddings (Q)][prompt][target]``. Training batches are
right-padded and carry labels on target tokens only; the loss takes the decoder's hidden
states at the labelled positions and applies ``lm_head`` to those alone, so the
vocabulary-wide logits (151,936 for Qwen) are never computed for prompt, image or padding
positions. Generation left-pads ``[pad][image][prompt]`` and decodes with the LLM's
``generate`` on ``inputs_embeds`` (KV cache, greedy / sampling / beams, streaming).

References: BLIP-2 (Li et al., 2023) for the Q-Former bridge; nanoVLM for the layout.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch
from torch import nn

from microvlm.data.text import IGNORE, fit_new_tokens, generation_room, left_pad_prompts
from microvlm.models.projection import Projection
from microvlm.recipes.config import ModelConfig

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins

logger = logging.getLogger(__name__)


@attrs.frozen
class VLMOutput:
    """What :meth:`MicroVLM.forward` returns."""

    loss: torch.Tensor | None  # mean cross-entropy over target tokens (None without labels)
    num_target_tokens: int  # tokens the loss is averaged over
    hidden_states: torch.Tensor | None = None  # [M, D_l] hidden states of the labelled positions


class MicroVLM(nn.Module):
    """The assembled model. Build it from a model config (what recipes do)::

        model = MicroVLM.from_config(recipe.model, plugins)

    or with the seed's keyword arguments::

        model = MicroVLM(vision_encoder="diet_tiny", llm_model="Qwen/Qwen2.5-0.5B", use_lora=True, lora_r=64)

    ``options`` sets any other ``[model]`` value, ``--set`` style: ``options={"encoder.pretrained":
    "none"}`` builds the encoder with random weights (no download), ``{"bridge.num_layers": 2}``
    a smaller Q-Former. ``device="meta"`` builds shapes only, without allocating weights
    (parameter counting; needs an LLM with ``init = "random"``).
    """

    def __init__(
        self,
        vision_encoder: str = "diet_tiny",
        llm_model: str = "Qwen/Qwen2.5-0.5B",
        use_lora: bool = False,
        use_qlora: bool = False,
        lora_r: int = 64,
        *,
        config: ModelConfig | None = None,
        plugins: Plugins | None = None,
        options: Mapping[str, Any] | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__()
        from microvlm.plugins.manager import load_plugins

        plugins = load_plugins() if plugins is None else plugins
        if config is None:
            config = seed_model_config(
                vision_encoder, llm_model, use_lora, use_qlora, lora_r, plugins, options=options
            )
        elif options:
            config = with_options(config, options, plugins)
        self.config = config
        meta = device == "meta"
        llm_context = {"device": device} if meta else {}
        with torch.device("meta") if meta else contextlib.nullcontext():
            self.encoder = plugins.build("encoder", config.encoder.name, config.encoder.config)
            self.bridge = plugins.build(
                "bridge", config.bridge.name, config.bridge.config, encoder_dim=self.encoder.out_dim
            )
            self.llm = plugins.build(
                "llm", config.llm.name, config.llm.config, plugins=plugins, **llm_context
            )
            self.projection = Projection.from_config(
                config.projection, self.bridge.out_dim, self.llm.hidden_size
            )

    @classmethod
    def from_config(
        cls, config: ModelConfig, plugins: Plugins | None = None, device: str | None = None
    ) -> MicroVLM:
        """Build from a validated ``[model]`` config (``recipe.model``); ``device="meta"``: shapes only."""
        return cls(config=config, plugins=plugins, device=device)

    # -- pieces --------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        return self.llm.tokenizer

    @property
    def num_queries(self) -> int:
        return int(self.bridge.num_queries)

    @property
    def device(self) -> torch.device:
        return self.projection.fc1.weight.device

    def _encoder_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.encoder.parameters())

    def image_embeddings(
        self, images: torch.Tensor, return_attentions: bool = False
    ) -> tuple[torch.Tensor, Any]:
        """Images ``[B, 3, H, W]`` -> soft image tokens ``[B, Q, D_l]`` (+ bridge output)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self._encoder_frozen()):
            feats = self.encoder(images)  # (B, N, D_v)
        out = self.bridge(feats, return_attentions=return_attentions)  # queries: (B, Q, D_q)
        return self.projection(out.queries), out  # (B, Q, D_l)

    # -- training ------------------------------------------------------------------------

    def text_predictors(
        self,
        images: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        force_mask: bool = False,
    ) -> torch.Tensor:
        """Decoder states ``[B, T, D_l]`` of ``[image][text]``; row ``t`` predicts ``input_ids[:, t]``.

        ``force_mask`` passes the padding mask to the decoder even for right-padded batches
        (where the outputs at real positions are the same without it; benchmarks compare both).
        """
        B, T = input_ids.shape
        image_tokens, _ = self.image_embeddings(images)  # (B, Q, D_l)
        Q = image_tokens.shape[1]
        text = self.llm.embed(input_ids)  # (B, T, D_l)
        embeds = torch.cat([image_tokens.to(text.dtype), text], dim=1)  # (B, Q+T, D_l)
        mask = torch.cat([attention_mask.new_ones(B, Q), attention_mask], dim=1)  # (B, Q+T)
        # Right padding under a causal mask: no real position sees a pad, so the decoder runs
        # unmasked (SDPA's causal kernel, KV heads not copied per query head, no [B, 1, S, S]
        # mask) with the same outputs at every real position.
        right_padded = bool((mask[:, 1:] <= mask[:, :-1]).all())
        unmasked = right_padded and not force_mask
        hidden = self.llm.hidden_states(embeds, None if unmasked else mask).hidden_states  # (B, Q+T, D_l)
        # The token at text position t is predicted from sequence position Q + t - 1.
        return hidden[:, Q - 1 : Q + T - 1]  # (B, T, D_l)

    def forward(
        self,
        images: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> VLMOutput:
        """Loss of a right-padded batch.

        :param images: ``[B, 3, H, W]``, processed by the encoder's image processor.
        :param input_ids: ``[B, T]`` prompt + target tokens, right-padded.
        :param attention_mask: ``[B, T]``, 1 for real tokens.
        :param labels: ``[B, T]``, the target token ids, ``-100`` elsewhere.
        """
        predictors = self.text_predictors(images, input_ids, attention_mask)  # (B, T, D_l)
        if labels is None:
            return VLMOutput(None, 0)
        selected = labels != IGNORE  # (B, T)
        picked = predictors[selected]  # (M, D_l): labelled positions only
        n = int(selected.sum())
        if n == 0:
            zero = predictors.sum() * 0.0  # keeps the graph connected (DDP) with a zero loss
            return VLMOutput(zero, 0)
        loss = self.llm.loss(picked, labels[selected])  # lm_head on the M rows only, (M, V) logits
        return VLMOutput(loss, n, picked if return_hidden else None)

    # -- generation ----------------------------------------------------------------------

    def _generation_inputs(
        self, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[pad][image][prompt]`` embeddings ``[B, Q+T, D_l]`` and mask from left-padded prompts."""
        ids, mask = ids.to(self.device), mask.to(self.device)  # (B, T), pads first
        image_tokens, _ = self.image_embeddings(images)  # (B, Q, D_l)
        B, Q = image_tokens.shape[:2]
        T = ids.shape[1]
        text = self.llm.embed(ids)  # (B, T, D_l)
        embeds = torch.cat([image_tokens.to(text.dtype), text], dim=1)  # [img][pad][prompt]
        full_mask = torch.cat([mask.new_ones(B, Q), mask], dim=1)  # (B, Q+T)
        # Move each row's padding in front of its image tokens: [pad][img][prompt].
        pads = (mask == 0).sum(dim=1)  # (B,)
        pos = torch.arange(Q + T, device=self.device).expand(B, -1)  # (B, Q+T)
        order = torch.where(
            pos < pads[:, None],
            pos + Q,  # the padding block first
            torch.where(pos < pads[:, None] + Q, pos - pads[:, None], pos),  # then the image
        )  # (B, Q+T) source index of each output position
        embeds = embeds.gather(1, order[..., None].expand(-1, -1, embeds.shape[-1]))
        full_mask = full_mask.gather(1, order)
        return embeds, full_mask

    @torch.no_grad()
    def generate(
        self,
        samples: dict[str, Any],
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.9,
        do_sample: bool = False,
        num_beams: int = 1,
        max_prompt_tokens: int = 512,
        streamer: Any = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Answer ``samples = {"image": [B, 3, H, W], "prompt": str | list[str]}``.

        Image, prompt and answer stay within the LLM's ``max_position_embeddings``: the head
        of a prompt is cut to fit, and ``max_new_tokens`` is lowered (with a warning) to fit.

        :param streamer: a transformers streamer (e.g. ``TextIteratorStreamer``), batch 1.
        :param on_text: called with each new piece of decoded text (batch 1), for the CLI; with
            ``num_beams > 1`` (beam search cannot stream), once with the whole answer.
        :returns: one decoded string per image, special tokens removed.
        """
        images = samples["image"]
        prompts = samples["prompt"]
        prompts = [prompts] * images.shape[0] if isinstance(prompts, str) else list(prompts)
        if len(prompts) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(prompts)} prompts")
        tok = self.tokenizer
        positions = self.max_positions
        max_prompt_tokens = generation_room(self.num_queries, positions, max_prompt_tokens)
        ids, mask = left_pad_prompts(prompts, tok, max_prompt_tokens)  # (B, T), pads first
        if positions:
            warned = self.__dict__.setdefault("_budget_warned", set())  # warn once per value
            max_new_tokens = fit_new_tokens(max_new_tokens, positions, self.num_queries, ids.shape[1], warned)
        if on_text is not None:
            if streamer is not None or len(prompts) != 1:
                raise ValueError("on_text streams one sample at a time and replaces streamer")
            if num_beams == 1:
                streamer = _CallbackStreamer(tok, on_text)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "num_beams": num_beams,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
        }
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        out = self.generate_ids(images, ids, mask, streamer=streamer, **kwargs)
        answers = [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]
        if on_text is not None and streamer is None:  # beam search: the whole answer at once
            on_text(answers[0])
        return answers

    @property
    def max_positions(self) -> int | None:
        """The LLM's ``max_position_embeddings`` (image + prompt + answer), None if it has none."""
        return self.llm.max_positions

    @torch.no_grad()
    def generate_ids(
        self,
        images: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        **generate_kwargs: Any,
    ) -> torch.Tensor:
        """Generated token ids ``[B, new]`` for left-padded prompt ids ``input_ids [B, T]``.

        The tokenizer-free core of :meth:`generate` (benchmarks feed token ids directly).
        ``generate_kwargs`` go to transformers' ``generate``: ``max_new_tokens``,
        ``do_sample``, ``pad_token_id``, ``eos_token_id``, ``streamer``, ...
        """
        was_training = self.training
        self.eval()
        try:
            embeds, mask = self._generation_inputs(images.to(self.device), input_ids, attention_mask)
            return self.llm.generate(embeds, mask, **generate_kwargs)  # (B, new tokens)
        finally:
            self.train(was_training)

    # -- weights -------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, weights: str = "trainable") -> Path:
        """Write the model to ``directory``: ``model.toml``, ``model.safetensors``, the LoRA
        adapter (peft layout) and the LLM's config and tokenizer files under ``llm/``.

        :param weights: ``"trainable"`` (bridge, projection, LoRA, ...: the frozen base weights
            load again from where ``model.toml`` says) or ``"all"`` (every tensor: loading needs
            neither the network nor the base weights).
        :returns: the directory. The write is atomic; an existing export there is replaced, a
            directory holding anything else is refused.
        """
        from microvlm.models.pretrained import save_pretrained

        return save_pretrained(self, directory, weights)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(cls, path: str | Path, plugins: Plugins | None = None, **overrides: Any) -> MicroVLM:
        """Rebuild a model from a :meth:`save_pretrained` directory or a run's ``checkpoint_final``.

        ``model.toml`` rebuilds the architecture; ``model.safetensors`` holds the weights. An
        export with all weights rebuilds the LLM from its ``llm/config.json`` (no base weights,
        no network); the tokenizer comes from ``llm/`` when it is there. ``overrides`` are
        ``--set``-style ``{"llm.model": "/local/qwen"}`` replacements in the model table.
        A file whose tensors do not fit raises :class:`MicroVLMError` naming them.
        """
        from microvlm.models.pretrained import load_pretrained

        return load_pretrained(cls, path, plugins, overrides)

    def load_checkpoint(self, path: str | Path) -> int:
        """Load weights from a checkpoint or export directory (the seed's ``…/checkpoint_final.pth``
        resolves to the directory) into this model; returns the number of tensors loaded.

        Names absent from the model and tensors of another shape raise :class:`MicroVLMError`
        listing them; nothing is loaded then.
        """
        from microvlm.io.layout import load_weights
        from microvlm.models.pretrained import load_model_weights

        return load_model_weights(self, load_weights(path), str(path))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters that train (bridge, projection, LoRA, unfrozen parts), by name."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def merge_adapter(self) -> bool:
        """Fold the LLM's LoRA into its base weights; ``config`` then says ``adapter = "none"``, so
        a checkpoint saved afterwards rebuilds the merged model. Returns whether there was one."""
        if not self.llm.merge_adapter():
            return False
        self.config = attrs.evolve(self.config, llm=attrs.evolve(self.config.llm, config=self.llm.config))
        return True

    def set_trainable(self, parts: Sequence[str]) -> None:
        """Choose what trains: any of ``bridge``, ``projection``, ``lora``, ``llm``, ``encoder``."""
        self.requires_grad_(False)
        for part in parts:
            if part == "bridge":
                self.bridge.requires_grad_(True)
            elif part == "projection":
                self.projection.requires_grad_(True)
            elif part == "encoder":
                self.encoder.requires_grad_(True)
            elif part == "llm":
                self.llm.base_model.requires_grad_(True)
            elif part == "lora":
                lora = [p for n, p in self.llm.named_parameters() if "lora_" in n]
                if not lora:
                    raise ValueError('train includes "lora" but the LLM has no adapter; set adapter = "lora"')
                for p in lora:
                    p.requires_grad_(True)
            else:
                raise ValueError(f"unknown trainable part {part!r}")


class _CallbackStreamer:
    """A minimal transformers streamer: decodes incrementally and calls ``on_text``."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.ids: list[int] = []
        self.printed = 0

    def put(self, value: torch.Tensor) -> None:
        self.ids.extend(int(v) for v in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if len(text) > self.printed and not text.endswith("\ufffd"):  # wait for whole characters
            self.on_text(text[self.printed :])
            self.printed = len(text)

    def end(self) -> None:
        pass


def seed_model_config(
    vision_encoder: str,
    llm_model: str,
    use_lora: bool,
    use_qlora: bool,
    lora_r: int,
    plugins: Plugins,
    options: Mapping[str, Any] | None = None,
) -> ModelConfig:
    """The seed's ``MicroVLM(vision_encoder=..., llm_model=..., use_lora=..., lora_r=...)``;
    ``options`` sets other ``[model]`` values (``{"encoder.pretrained": "none"}``)."""
    from microvlm.models.pretrained import apply_options
    from microvlm.recipes.load import build_model_config

    if use_lora and use_qlora:
        raise ValueError("use_lora and use_qlora are exclusive (QLoRA already includes LoRA)")
    adapter = "qlora" if use_qlora else "lora" if use_lora else "none"
    section = {
        "encoder": {"name": vision_encoder},
        "bridge": {"name": "qformer"},
        "llm": {"name": "hf_causal_lm", "model": llm_model, "adapter": adapter, "lora_r": lora_r},
    }
    apply_options(section, options or {}, "MicroVLM(options=...)")
    return build_model_config(section, plugins, "MicroVLM(...)")


def with_options(config: ModelConfig, options: Mapping[str, Any], plugins: Plugins) -> ModelConfig:
    """``config`` with ``--set``-style ``{"bridge.num_layers": 2}`` changes, validated again."""
    from microvlm.models.pretrained import apply_options, model_table
    from microvlm.recipes.load import build_model_config

    table = model_table(config)
    apply_options(table, options, "MicroVLM(options=...)")
    return build_model_config(table, plugins, "MicroVLM(options=...)")
