"""4-bit NF4/FP4 weights through bitsandbytes: the frozen base of QLoRA (Dettmers et al. 2023).

The ``hf_causal_lm`` plugin of microvlm-core uses a quantiser for ``adapter = "qlora"``:

- ``init = "pretrained"``: ``from_pretrained(..., quantization_config=quantizer.quantization_config(dtype))``
  (transformers quantises each linear layer as it loads);
- ``init = "random"``: ``quantizer.quantize_model(model, compute_dtype=dtype)`` replaces the
  linear layers of an in-memory model by ``bitsandbytes.nn.Linear4bit``.

Both skip the output head (``lm_head``, often tied to the input embedding), as transformers
does. bitsandbytes runs 4-bit layers on the CPU too (its CPU backend), so QLoRA is testable
without a GPU.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

from microvlm.errors import MicroVLMError
from microvlm_quant.config import NF4Config

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NF4_BLOCK = 64  # weights per 4-bit block (bitsandbytes' default for NF4 in transformers)
NF4_SCALE_BLOCK = 256  # first-level scales per second-level block with double quantisation


def nf4_bytes(n: int, double_quant: bool = True) -> int:
    """Bytes of ``n`` weights stored in 4 bits with per-block scales: half a byte per weight,
    plus one absmax scale per block of 64 weights, stored as one byte (double quantisation,
    plus a float32 per 256 scales) or as a float32 (Dettmers et al. 2023, sections 2-3)."""
    blocks = math.ceil(n / NF4_BLOCK)
    scales = blocks + 4 * math.ceil(blocks / NF4_SCALE_BLOCK) if double_quant else 4 * blocks
    return math.ceil(n / 2) + scales


def _bitsandbytes() -> Any:
    try:
        import bitsandbytes
    except ImportError as exc:  # a declared dependency; only a broken install gets here
        raise MicroVLMError(
            f"the nf4 quantiser needs bitsandbytes: pip install bitsandbytes ({exc})"
        ) from exc
    return bitsandbytes


class NF4Quantizer:
    """What ``nf4`` builds: the settings of 4-bit loading, and the operations that apply them."""

    name = "nf4"

    def __init__(self, config: NF4Config) -> None:
        self.config = config

    def compute_dtype(self, default: torch.dtype | None = None) -> torch.dtype:
        """The matmul dtype: the config's, or ``default`` (the LLM's dtype) for ``"auto"``."""
        if self.config.compute_dtype == "auto":
            return default if default is not None else torch.float32
        return _DTYPES[self.config.compute_dtype]

    def quantization_config(self, compute_dtype: torch.dtype | None = None) -> Any:
        """A transformers ``BitsAndBytesConfig`` for ``from_pretrained``: 4-bit, this quant type."""
        _bitsandbytes()
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.config.quant_type,
            bnb_4bit_use_double_quant=self.config.double_quant,
            bnb_4bit_compute_dtype=self.compute_dtype(compute_dtype),
        )

    def quantize_model(self, model: nn.Module, *, compute_dtype: torch.dtype | None = None) -> nn.Module:
        """Replace every ``nn.Linear`` of ``model`` but its output head by a 4-bit ``Linear4bit``.

        In place; returns ``model``. Each layer is quantised on the device its weight is on.
        Marks the model ``is_loaded_in_4bit`` as transformers does, so peft wraps the 4-bit
        layers with its bitsandbytes LoRA layers.
        """
        bnb = _bitsandbytes()
        dtype = self.compute_dtype(compute_dtype)
        get_head = getattr(model, "get_output_embeddings", None)
        head = get_head() if get_head is not None else None
        replaced = 0
        for parent in list(model.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is not nn.Linear or child is head:
                    continue
                if child.weight.device.type == "meta":
                    raise MicroVLMError(
                        "cannot quantise weights on the meta device; build the model on a real device"
                    )
                layer = bnb.nn.Linear4bit(
                    child.in_features,
                    child.out_features,
                    bias=child.bias is not None,
                    compute_dtype=dtype,
                    compress_statistics=self.config.double_quant,
                    quant_type=self.config.quant_type,
                    device="meta",  # placeholders; replaced by the real weight and bias below
                )
                layer.weight = bnb.nn.Params4bit(
                    child.weight.data,
                    requires_grad=False,
                    compress_statistics=self.config.double_quant,
                    quant_type=self.config.quant_type,
                )
                if child.bias is not None:
                    layer.bias = nn.Parameter(child.bias.data, requires_grad=False)
                setattr(parent, child_name, layer.to(child.weight.device))  # .to() quantises
                replaced += 1
        model.is_loaded_in_4bit = True
        logger.info("nf4: quantised %d linear layers to 4-bit %s", replaced, self.config.quant_type)
        return model

    def describe(self) -> dict[str, Any]:
        """The scheme, recorded with exports: ``{"name": "nf4", "quant_type": ..., ...}``."""
        return {
            "name": self.name,
            "quant_type": self.config.quant_type,
            "double_quant": self.config.double_quant,
            "compute_dtype": self.config.compute_dtype,
        }

    def storage_bytes(self, parameters: int) -> int:
        """Bytes of ``parameters`` 4-bit weights with their scales (:func:`nf4_bytes`)."""
        return nf4_bytes(parameters, self.config.double_quant)

    def __repr__(self) -> str:
        return f"NF4Quantizer({self.config!r})"
