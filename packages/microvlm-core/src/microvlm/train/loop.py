"""The training loop of one stage: ``train_stage(recipe, plugins)``.

AdamW with parameter groups, linear warm-up + cosine, gradient accumulation and clipping,
bf16 autocast on GPU and fp32 on CPU (``precision = "auto"``), periodic validation loss,
checkpoints every ``save_every`` optimizer steps and ``checkpoint_final`` at the end.
Rerunning the same command resumes from the newest checkpoint in ``output_dir`` exactly:
weights, optimizer, scheduler, RNG states, the position in the data order, the bad-data counts
and the skipped non-finite steps are restored. Resuming with a changed ``[run]`` applies the
recipe's values from the resumed step on (the learning-rate schedule and weight decay included)
and warns about each changed setting; a changed ``run.train`` cannot resume (see
:mod:`microvlm.train.settings` for every setting's rule). SIGTERM / Ctrl-C write a checkpoint at
the next step boundary, then exit.

Under ``torchrun`` (or ``microvlm run --nproc N``) the trainable parameters are wrapped in
DDP: each rank takes its slice of every global batch, the loss is weighted so the gradient
is the mean over all ranks' target tokens (what one process with the whole batch computes),
and only rank 0 logs and writes checkpoints. Every collective sits at a point all ranks
reach: a signal on any rank stops all of them at the same step.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import random
import signal
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from microvlm.data.sources import build_sources
from microvlm.errors import MicroVLMError
from microvlm.eval.final_eval import final_evaluation
from microvlm.io import layout
from microvlm.models.vlm import MicroVLM
from microvlm.models.weights import apply_weights
from microvlm.recipes.config import ModelConfig, Recipe
from microvlm.train.data import BadDataMonitor, Collate, EpochDataset, StepSampler, epoch_order
from microvlm.train.dist import DistInfo
from microvlm.train.guards import NonFiniteGuard, check_weights
from microvlm.train.schedule import make_optimizer, make_scheduler
from microvlm.train.validation import image_token_spread, validation_loss, warn_if_blind

if TYPE_CHECKING:
    from microvlm.plugins.manager import Plugins

logger = logging.getLogger(__name__)


class Interrupted(SystemExit):
    """Raised after a checkpoint was written on SIGTERM / SIGINT."""


def resolve_device(name: str, dist: DistInfo) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank)
        return torch.device("cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 on CUDA, none (fp32) on CPU, where bf16 matmuls are slow without AMX."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    return {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def text_token_budget(max_text_tokens: int, num_queries: int, max_positions: int | None) -> int:
    """Text tokens per sample: ``run.max_text_tokens``, lowered so that the ``Q`` image tokens
    plus the text fit in the LLM's ``max_position_embeddings`` (when it has one)."""
    if not max_positions:
        return max_text_tokens
    room = max_positions - num_queries
    if room < 1:
        raise MicroVLMError(
            f"the LLM takes {max_positions} positions but the bridge emits {num_queries} image tokens; "
            "use fewer queries (model.bridge.num_queries)"
        )
    return min(max_text_tokens, room)


def _max_positions(model: MicroVLM) -> int | None:
    hf_config = getattr(model.llm, "hf_config", None)
    value = getattr(hf_config, "max_position_embeddings", None)
    return int(value) if value else None


class _StopFlag:
    """Turns SIGTERM / SIGINT into a flag checked at step boundaries."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _: Any) -> None:
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum
        logger.warning("signal %d: writing a checkpoint at the end of this step, then exiting", signum)

    def __exit__(self, *_: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train_stage(
    recipe: Recipe, plugins: Plugins, dist: DistInfo | None = None, progress: bool = True
) -> Path:
    """Train one stage; returns the final checkpoint directory."""
    from microvlm.models.processors import ImageEvalProcessor
    from microvlm.train.reporting import Reporter
    from microvlm.train.state import RunState, gather_bad_data, gather_rank_rng, restore_bad_data

    dist = dist or DistInfo.from_env()
    run = recipe.run
    out = Path(run.output_dir)
    device = resolve_device(run.device, dist)
    amp = autocast_dtype(run.precision, device)
    torch.manual_seed(run.seed)
    random.seed(run.seed)
    if run.threads:  # small models on few cores run faster on one thread than on several
        torch.set_num_threads(run.threads)

    # Data first: a dataset may write itself on first use (the demo's shapes set, with the
    # tokenizer its language model reads).
    sources = build_sources(recipe.data, plugins, train=True)
    monitor = BadDataMonitor(sources, run.max_bad_fraction, world=dist.world)
    model = MicroVLM.from_config(with_gradient_checkpointing(recipe), plugins)
    model.set_trainable(run.train)
    if run.init_from:
        n = apply_weights(model, layout.load_weights(run.init_from), run.init_from)
        logger.info("initialised %d tensors from %s", n, run.init_from)
    qat = plugins.build("qat", recipe.qat.name, recipe.qat.config) if recipe.qat is not None else None
    if qat is not None:  # before the optimizer and before a resumed run's weights: names stay
        swapped = qat.prepare(model)
        model.set_trainable(run.train)  # what the scheme made trainable is run.train's call
        logger.info("[qat] %s: %d layers fake-quantised", recipe.qat.name, swapped)
    model.to(device)
    tokenizer = model.tokenizer
    tokenizer.padding_side = "right"

    processor = ImageEvalProcessor.from_data_config(model.encoder.data_config)
    epoch_len = len(epoch_order(sources, 0, run.seed))
    micro_per_epoch = StepSampler(
        epoch_len, run.batch_size, dist.rank, dist.world, multiple=run.grad_accum_steps
    ).steps()
    steps_per_epoch = micro_per_epoch // run.grad_accum_steps
    if steps_per_epoch == 0:
        raise MicroVLMError(
            f"{recipe.source}: the data has fewer samples than one optimizer step needs "
            f"(batch_size {run.batch_size} x grad_accum_steps {run.grad_accum_steps} "
            f"x {dist.world} processes)"
        )
    total_steps = run.max_steps or run.epochs * steps_per_epoch

    optimizer = make_optimizer(model, run.lr, run.weight_decay)
    scheduler = make_scheduler(optimizer, run.warmup_steps, total_steps, run.min_lr_ratio)
    state = RunState(world=dist.world)
    if run.resume:
        state = (
            RunState.resume(out, model, optimizer, scheduler, dist, run.batch_size, run.grad_accum_steps, run)
            or state
        )
        if state.saved:
            restore_bad_data(monitor, state.saved, dist, layout.step_dir(out, state.step) / layout.META)
    guard = NonFiniteGuard(run, dist, skipped=int(state.saved.get("nonfinite_steps", 0)))
    train_model = wrap_ddp(model, device) if dist.world > 1 else model

    reporter = Reporter(recipe, plugins, dist, total_steps, progress=progress)
    positions = _max_positions(model)
    max_text = text_token_budget(run.max_text_tokens, model.num_queries, positions)
    if max_text < run.max_text_tokens and dist.is_main:
        logger.warning(
            "run.max_text_tokens %d + %d image tokens exceed the LLM's %s positions: texts are cut at %d",
            run.max_text_tokens,
            model.num_queries,
            positions,
            max_text,
        )
    collate = Collate(tokenizer, max_text)  # cuts every sequence the same way on every rank

    def save_step(state: RunState, extra: dict[str, Any]) -> None:
        """A step checkpoint; every rank calls this at the same step (the RNG gather is a collective)."""
        rank_rng = gather_rank_rng(dist) if dist.world > 1 else None
        if dist.is_main:
            state.save(out, model, optimizer, scheduler, recipe, plugins, run.keep_last, rank_rng, extra)

    model.train()
    step_loss = 0.0  # this process's mean loss over the micro-batches of the current step
    with _StopFlag() as stop, reporter:
        reporter.start(state.step, state.saved.get("metrics_rows"))  # drops rows logged after it
        while state.step < total_steps:
            order = epoch_order(sources, state.epoch, run.seed)
            data = EpochDataset(sources, order, processor, tokenizer, run.seed, state.epoch)
            sampler = StepSampler(
                len(order), run.batch_size, dist.rank, dist.world, state.micro_step, run.grad_accum_steps
            )
            loader = torch.utils.data.DataLoader(
                data,
                batch_sampler=sampler,
                collate_fn=collate,
                num_workers=run.num_workers,
                # its own generator: creating an iterator must not draw from the global RNG,
                # or a resumed run would be one draw off the uninterrupted one
                generator=torch.Generator().manual_seed(run.seed * 100_003 + state.epoch),
            )
            for batch in loader:
                monitor.update(batch)  # counts skipped bad samples; stops above run.max_bad_fraction
                qat_metrics = qat.set_step(model, state.step) if qat is not None else {}  # from the step
                images, text = batch
                sync = (state.micro_step + 1) % run.grad_accum_steps == 0
                weight = _token_weight(text.num_target_tokens, dist)
                context = train_model.no_sync() if (dist.world > 1 and not sync) else nullcontext()
                with (
                    context,
                    torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None),
                ):
                    result = train_model(
                        images.to(device),
                        text.input_ids.to(device),
                        text.attention_mask.to(device),
                        text.labels.to(device),
                    )
                    loss = result.loss / run.grad_accum_steps
                    if dist.world > 1:
                        loss = loss * weight
                    loss.backward()
                state.micro_step += 1
                micro_loss = float(result.loss.detach())
                step_loss += micro_loss / run.grad_accum_steps
                reporter.accumulate(micro_loss, result.num_target_tokens, images.shape[0])
                if not sync:
                    continue
                grad_norm = _clip(model, run.max_grad_norm)
                lrs = [group["lr"] for group in optimizer.param_groups]
                skip = guard.check(state.step + 1, step_loss, grad_norm, lrs)  # raises to stop the run
                if not skip:
                    optimizer.step()
                scheduler.step()  # a skipped step counts: the schedule and the data position go on
                optimizer.zero_grad(set_to_none=True)
                state.step += 1
                step_loss = 0.0
                reporter.step(state.step, scheduler.get_last_lr()[0], grad_norm)
                if qat_metrics and (state.step % run.log_every == 0 or state.step == total_steps):
                    reporter.log_eval(dict(qat_metrics), state.step)  # with the step's own row
                if skip:
                    reporter.log_eval({"nonfinite_steps": float(guard.skipped)}, state.step)
                last = state.step >= total_steps
                stopping = stop_flags(dist, stop.signal is not None, monitor)  # all ranks, same step
                due = recipe.eval.every_steps and state.step % recipe.eval.every_steps == 0
                if due and not last and not stopping:  # before the checkpoint: a resumed run has it
                    reporter.log_eval(
                        validation_loss(model, recipe, plugins, processor, device, amp, dist, max_text),
                        state.step,
                    )
                if stopping or (run.save_every and state.step % run.save_every == 0):
                    extra = {
                        "bad_data": gather_bad_data(dist, monitor),  # a collective too
                        "nonfinite_steps": guard.skipped,
                        "metrics_rows": reporter.rows(),  # what was logged up to here
                    }
                    save_step(state, extra)
                if stopping:
                    dist.barrier()
                    raise Interrupted(128 + (stop.signal or signal.SIGTERM))
                if last:
                    break
            else:
                end_epoch(dist, monitor, state.epoch, state.step, reporter)
                state.epoch += 1
                state.micro_step = 0
                continue
            break
        # the last epoch, whole or cut short by max_steps: its last step left the loop above
        end_epoch(dist, monitor, state.epoch, state.step, reporter)
        if qat is not None:
            qat.finish(model)  # evaluated and saved fully quantised, as it will be exported
        if recipe.eval.data:
            scores = validation_loss(model, recipe, plugins, processor, device, amp, dist, max_text)
            reporter.log_eval(scores, state.step)
            if dist.is_main:
                warn_if_blind(scores)
        final = out / layout.FINAL
        check_weights(model, state.step, run)  # never a final checkpoint of NaN weights
        if dist.is_main:
            state.save_final(final, model, recipe, plugins)
            reporter.finish(out)
            final_evaluation(model, recipe, plugins, progress=progress)  # results.json
    dist.barrier()
    return final


def end_epoch(dist: DistInfo, monitor: BadDataMonitor, epoch: int, step: int, reporter: Any) -> None:
    """Judge the epoch's bad-data counts (all processes' sums; no minimum), log and reset them.

    Called by every process at the same point: at the end of each epoch and once more when
    training ends (the last step or ``max_steps`` in the middle of an epoch)."""
    stop_flags(dist, False, monitor, epoch_end=True)  # distributed: the epoch's sums
    skipped = monitor.end_epoch(epoch)  # logs counts; stops above the limit
    if skipped.get("data/skipped"):
        reporter.log_eval(skipped, step)


def stop_flags(dist: DistInfo, signalled: bool, monitor: BadDataMonitor, epoch_end: bool = False) -> bool:
    """Whether any process got SIGTERM/SIGINT; in a distributed run, also raises on every process
    when a dataset has more bad samples than allowed in all processes' counts together. One
    collective for both, reached by all ranks at the same step, so one rank's stop never leaves the
    others waiting in an all-reduce."""
    sums = dist.sum([float(signalled), *monitor.counts()])
    if monitor.world > 1:
        monitor.check_totals(sums[1:], epoch_end=epoch_end)
    return sums[0] > 0


def with_gradient_checkpointing(recipe: Recipe) -> ModelConfig:
    """``recipe.model`` with the LLM's own ``gradient_checkpointing`` on when ``run.gradient_checkpointing``.

    The decoder holds nearly all activations of a step, so that is where recomputation pays;
    an LLM plugin whose config has no such field cannot honour the setting: that is an error
    naming the plugin rather than a run that silently uses more memory than asked.
    """
    llm = recipe.model.llm
    if not recipe.run.gradient_checkpointing:
        return recipe.model
    fields = attrs.fields_dict(type(llm.config)) if attrs.has(type(llm.config)) else {}
    if "gradient_checkpointing" not in fields:
        raise MicroVLMError(
            f"{recipe.source}: run.gradient_checkpointing = true, but the LLM plugin {llm.name!r} has no "
            f"gradient_checkpointing option; remove the setting or use an LLM plugin that has one"
        )
    if llm.config.gradient_checkpointing:
        return recipe.model
    config = attrs.evolve(llm.config, gradient_checkpointing=True)
    return attrs.evolve(recipe.model, llm=attrs.evolve(llm, config=config))


def wrap_ddp(model: MicroVLM, device: torch.device) -> torch.nn.Module:
    """DDP over the trainable parameters only.

    Frozen parameters (encoder, LLM base, 4-bit weights) are neither all-reduced nor
    broadcast: every rank built them from the same files and seed. Buffers are not
    re-broadcast each step either: none of MicroVLM's layers keeps running statistics.
    """
    from torch.nn.parallel import DistributedDataParallel

    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
    # newer torch renames broadcast_buffers (and deprecates the old name)
    parameters = inspect.signature(DistributedDataParallel).parameters
    no_buffer_sync = "forward_sync_buffers" if "forward_sync_buffers" in parameters else "broadcast_buffers"
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=False,
        **{no_buffer_sync: False},
    )


def _token_weight(tokens: int, dist: DistInfo) -> float:
    """Factor on this rank's token-mean loss so that DDP's gradient average equals the mean
    over every rank's target tokens: ``world * tokens / all tokens`` (1 in one process)."""
    if dist.world == 1:
        return 1.0
    (total,) = dist.sum([tokens])
    return dist.world * tokens / total if total else 0.0


def _clip(model: torch.nn.Module, max_norm: float) -> float:
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))


__all__ = ["Interrupted", "image_token_spread", "train_stage", "validation_loss", "warn_if_blind"]
