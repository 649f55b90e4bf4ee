"""The generic training loop. It drives any :class:`~mrtranslate.methods.base.Method` through
its generator and discriminator steps and knows nothing about a particular model.

Per iteration: (1) generator step with the discriminators frozen, (2) discriminator step on the
same iteration's fakes (detached), (3) learning rates follow the schedule (constant, then linear
decay to 0 over the last ``decay_epochs``). Mixed precision is bf16 autocast. Every step reseeds
the global torch generator from (seed, step, rank), so resuming from a checkpoint gives the same
weights as an uninterrupted run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.utils import get_total_norm
from tqdm import tqdm

from mrtranslate.config import TrainConfig
from mrtranslate.data.tensors import crop_shape
from mrtranslate.directions import Direction
from mrtranslate.errors import TrainingError
from mrtranslate.hardware import autocast
from mrtranslate.methods.base import Method
from mrtranslate.progress import progress_bar
from mrtranslate.runs import layout, save_checkpoint
from mrtranslate.training.conv_tuning import ConvChoice, fixed_choice, tune_convolutions
from mrtranslate.training.decisions import DIRECT, RunDecisions
from mrtranslate.training.distributed import (
    DistInfo,
    any_rank,
    average_gradients,
    broadcast_object,
)
from mrtranslate.training.seed import epoch_order, step_seed


@dataclass
class TrainingData:
    """Training images as (N, C, h, w) float32 tensors in [-1, 1] (C: the 2.5D context, each
    image with its neighbouring slices); brain masks (N, 1, h, w) bool of the centre slices for
    cropping around the brain (optional: without them crops are uniform)."""

    t1w: torch.Tensor
    t2w: torch.Tensor
    mask_t1w: torch.Tensor | None = None
    mask_t2w: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.t1w.shape[0])

    def to(self, device: torch.device) -> TrainingData:
        """The images on ``device``; the masks stay on the host, where crop corners are drawn,
        so choosing a crop never waits for the device."""
        return TrainingData(self.t1w.to(device), self.t2w.to(device), self.mask_t1w, self.mask_t2w)


def crop_corners(
    masks: torch.Tensor | None,
    count: int,
    image_shape: tuple[int, int],
    shape: tuple[int, int],
    generator: torch.Generator,
) -> torch.Tensor:
    """Top-left corners (count, 2) of random crops of ``shape``: each centred on a pixel drawn
    uniformly from the image's brain mask ((count, 1, H, W) bool; uniform over the image when
    None or empty), moved inward as little as needed to stay inside the image."""
    (height, width), (ch, cw) = image_shape, shape
    corners = torch.zeros(count, 2, dtype=torch.long)
    for i in range(count):
        inside = masks[i, 0].nonzero() if masks is not None else torch.zeros(0, 2)
        if len(inside):
            y, x = inside[torch.randint(len(inside), (1,), generator=generator)][0].tolist()
        else:
            y = int(torch.randint(height, (1,), generator=generator))
            x = int(torch.randint(width, (1,), generator=generator))
        corners[i, 0] = min(max(y - ch // 2, 0), height - ch)
        corners[i, 1] = min(max(x - cw // 2, 0), width - cw)
    return corners


def take_crops(images: torch.Tensor, corners: torch.Tensor, shape: tuple[int, int]):
    """(B, C, H, W) -> (B, C, h, w) windows at ``corners`` (B, 2)."""
    h, w = shape
    return torch.stack([img[:, y : y + h, x : x + w] for img, (y, x) in zip(images, corners)])


@dataclass
class TrainState:
    step: int = 0
    epoch_seconds: list[float] = field(default_factory=list)


def lr_factor(step: int, total_steps: int, decay_steps: int) -> float:
    """1 until the decay starts, then linear to 0 at ``total_steps`` (evaluated per step)."""
    start = total_steps - decay_steps
    if decay_steps <= 0 or step < start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / decay_steps)


def _load_optimizer(opt: torch.optim.Optimizer, saved: dict) -> None:
    """Load Adam's saved state into ``opt`` whichever path saved it: the fused flag stays this
    trainer's (a checkpoint of the plain path resumes on the fast path and the reverse, e.g. a
    run started on a CPU and resumed on a GPU), and the step counters move where it needs them."""
    fused = opt.defaults.get("fused")
    groups = [{**group, "fused": fused} for group in saved["param_groups"]]
    opt.load_state_dict({**saved, "param_groups": groups})


def set_requires_grad(params: list[torch.nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


class Trainer:
    """Optimisers, schedule, precision, checkpoints and logging for one method.

    Args:
        method: the method to train (on ``device`` already).
        cfg: the ``train`` section of the run configuration.
        data: training images.
        run_dir: folder for ``checkpoint.pt`` and TensorBoard logs.
        decisions: the run's device, precision, fast path and convolution algorithms, resolved
            once (:func:`mrtranslate.training.decisions.decide`); the trainer never reads the
            ``auto`` settings behind them.
        dist_info: process group membership (single process by default).
        progress: show a progress bar.
        writer: optional TensorBoard ``SummaryWriter``.
    """

    def __init__(
        self,
        method: Method,
        cfg: TrainConfig,
        data: TrainingData,
        run_dir: Path,
        decisions: RunDecisions,
        dist_info: DistInfo | None = None,
        progress: bool = True,
        writer=None,
    ):
        self.method = method
        self.decisions = decisions
        device = decisions.device
        self.precision = decisions.precision.precision
        self.cfg = cfg
        self.data = data
        self.run_dir = Path(run_dir)
        self.device = device
        self.dist = dist_info or DistInfo()
        if cfg.batch_size % self.dist.world_size:
            raise ValueError(
                f"train.batch_size ({cfg.batch_size}) must be divisible by the "
                f"number of processes ({self.dist.world_size})"
            )
        self.progress = progress and self.dist.is_main
        self.writer = writer if self.dist.is_main else None
        self._prepare_networks()
        self.g_params = method.generator_parameters()
        self.d_params = method.discriminator_parameters()
        self.fast_path = decisions.fast_path
        if self.fast_path:  # the images live on the device: no copy from the host per step
            data = data.to(device)
            self.data = data
        self.crop = crop_shape(tuple(data.t1w.shape[-2:]), cfg.crop)
        # Paired methods get the pair's brain mask in the batch ("mask", (B, 1, h, w) 0/1), kept
        # where the images are (on the fast path a copy on the device: no copy per step).
        self.loss_masks = None
        if method.paired and data.mask_t1w is not None:
            self.loss_masks = data.mask_t1w.to(data.t1w.device)
        self._skipped = torch.zeros((), device=device)  # non-finite steps not yet reported
        self._step_bad = torch.zeros((), device=device)  # this step skipped an update
        self._checked_step = 0
        adam = {
            "lr": cfg.lr,
            "betas": (cfg.beta1, cfg.beta2),
            "weight_decay": cfg.weight_decay,
            "fused": True if self.fast_path else None,
        }
        self.opt_g = torch.optim.Adam(self.g_params, **adam)
        self.opt_d = torch.optim.Adam(self.d_params, **adam) if self.d_params else None
        self.steps_per_epoch = cfg.steps_per_epoch or math.ceil(len(data) / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.decay_steps = self.steps_per_epoch * cfg.decay_epochs
        self.state = TrainState()
        self.conv_choice: ConvChoice | None = None
        self._order_cache: tuple | None = None  # (epoch, host orders, orders by the images)

    def _prepare_networks(self) -> None:
        """Channels-last memory and ``torch.compile`` as the ``train`` settings ask."""
        if self.cfg.channels_last:
            self.method.to(memory_format=torch.channels_last)
        if self.cfg.compile:
            nets = [*self.method.generators().values(), *self.method.discriminators().values()]
            for net in nets:
                net.compile()
        channels_last = self.cfg.channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "method": self.method.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d else {},
            "step": self.state.step,
            "total_steps": self.total_steps,
            "epoch_seconds": list(self.state.epoch_seconds),
            "rng_torch": torch.get_rng_state(),
            "conv_choice": self.conv_choice.to_dict() if self.conv_choice else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.method.load_state_dict(state["method"])
        _load_optimizer(self.opt_g, state["opt_g"])
        if self.opt_d:
            _load_optimizer(self.opt_d, state["opt_d"])
        self.state = TrainState(
            step=int(state["step"]), epoch_seconds=[float(s) for s in state["epoch_seconds"]]
        )
        torch.set_rng_state(state["rng_torch"])
        if state.get("conv_choice"):  # resume with the same algorithms: the same numbers
            self.conv_choice = ConvChoice.from_dict(state["conv_choice"])
            self.conv_choice.apply(self.method)

    def prepare_convolutions(self) -> ConvChoice:
        """Choose each convolution's algorithm (once; kept on resume) as the run decided:
        measured on this machine, PyTorch's direct convolution, or fixed by a study plan.
        Distributed ranks take rank 0's choice, so all compute the same function."""
        wanted = self.decisions.conv_algorithms
        if self.conv_choice is None:
            if isinstance(wanted, dict):
                choice = fixed_choice(self.method, wanted, "fixed by the study plan")
            elif wanted == DIRECT:
                choice = fixed_choice(self.method, {}, "train.conv_algorithm=direct")
            elif self.dist.is_main:
                if self.progress:
                    tqdm.write(
                        "convolutions: timing each layer's algorithms on this machine "
                        "(train.conv_algorithm=direct skips this)"
                    )
                choice = tune_convolutions(
                    self.method, self.batch(0), self._autocast, fp32=self.precision == "fp32"
                )
            else:
                choice = None
            self.conv_choice = broadcast_object(choice, self.dist)
            self.conv_choice.apply(self.method)
        return self.conv_choice

    def save(self, extra: dict) -> None:
        if self.dist.is_main:
            save_checkpoint(
                layout.checkpoint_path(self.run_dir),
                {**extra, **self.state_dict(), "finished": self.finished},
            )

    @property
    def finished(self) -> bool:
        return self.state.step >= self.total_steps

    # ---------------------------------------------------------------- data
    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This process's share of the global batch of ``step``."""
        epoch, within = divmod(step, self.steps_per_epoch)
        if self._order_cache is None or self._order_cache[0] != epoch:
            orders = epoch_order(self.cfg.seed, epoch, len(self.data), self.method.paired)
            # images on the device are indexed with indices on the device (copied once per
            # epoch): a host index tensor would be copied, and waited for, at every step
            where = self.data.t1w.device
            self._order_cache = (epoch, orders, tuple(o.to(where) for o in orders))
        (order_t1, order_t2), (dev_t1, dev_t2) = self._order_cache[1], self._order_cache[2]
        n, bs = len(self.data), self.cfg.batch_size
        share = slice(self.dist.rank, None, self.dist.world_size)
        positions = (torch.arange(within * bs, (within + 1) * bs) % n)[share]
        where = dev_t1.device
        dev_positions = (torch.arange(within * bs, (within + 1) * bs, device=where) % n)[share]
        fmt = self.memory_format
        picks = {"t1w": order_t1[positions], "t2w": order_t2[positions]}  # host: crop masks
        images = {
            "t1w": self.data.t1w[dev_t1[dev_positions]],
            "t2w": self.data.t2w[dev_t2[dev_positions]],
        }
        if self.loss_masks is not None:  # the pair's brain mask, for losses inside the brain
            images["mask"] = self.loss_masks[dev_t1[dev_positions]].float()
        if self.crop != tuple(self.data.t1w.shape[-2:]):
            images = self._crops(images, picks, step)
        if self.cfg.flip:
            images = self._flips(images, step)
        return {c: v.to(self.device).contiguous(memory_format=fmt) for c, v in images.items()}

    def _crops(self, images: dict, picks: dict, step: int) -> dict:
        """Random crops around the brain, drawn from (seed, step, rank) alone (the method's own
        random draws are untouched); a paired model sees the same window in both contrasts."""
        generator = torch.Generator().manual_seed(
            step_seed(self.cfg.seed, step, self.dist.rank + 7919)
        )
        whole = tuple(self.data.t1w.shape[-2:])
        out, corners = {}, None
        for contrast in ("t1w", "t2w"):
            if corners is None or not self.method.paired:
                masks = getattr(self.data, f"mask_{contrast}")
                masks = None if masks is None else masks[picks[contrast]]
                count = len(picks[contrast])
                corners = crop_corners(masks, count, whole, self.crop, generator)
            out[contrast] = take_crops(images[contrast], corners, self.crop)
            if contrast == "t1w" and "mask" in images:  # paired: the same window
                out["mask"] = take_crops(images["mask"], corners, self.crop)
        return out

    def _flips(self, images: dict, step: int) -> dict:
        """Mirror each image left-right (the last axis) with probability 1/2, drawn from (seed,
        step, rank) alone; a pair, its mask included, is mirrored together (brains are nearly
        symmetric: twice the anatomy the model sees from a few participants)."""
        generator = torch.Generator().manual_seed(
            step_seed(self.cfg.seed, step, self.dist.rank + 104729)
        )
        count = len(images["t1w"])
        mirror = torch.rand(count, generator=generator) < 0.5
        where = mirror.to(images["t1w"].device).view(count, 1, 1, 1)
        return {c: torch.where(where, v.flip(-1), v) for c, v in images.items()}

    # ---------------------------------------------------------------- loop
    def _autocast(self):
        return autocast(self.device, self.precision)

    def _check_finite(self, loss: torch.Tensor, logs: dict, step: int, opt, params) -> None:
        """After the backward pass, before the update: skip the update when the loss or any
        gradient is not finite (checked on the averaged gradients, so every rank agrees).

        Plain path: raise (the weights stay as they were). Fast path: waiting for the device
        here would cost every step, so the fused optimiser is told to skip (``found_inf``), the
        step is counted, and :meth:`report_skipped` raises at the next check."""
        grads = [p.grad for p in params if p.grad is not None]
        total = loss.detach().float()
        if grads:
            total = total + get_total_norm(grads).float()
        bad = any_rank((~torch.isfinite(total)).float(), self.dist)
        if self.fast_path:
            opt.found_inf = bad
            self._step_bad = torch.maximum(self._step_bad, bad)
            return
        if bad:
            bad_logs = [k for k, v in logs.items() if not torch.isfinite(v)]
            what = (
                f"loss ({', '.join(bad_logs) or 'total'})"
                if bad_logs or not torch.isfinite(loss)
                else "gradients (the loss was finite)"
            )
            raise TrainingError(
                f"non-finite {what} at step {step}; weights were not updated and the last good "
                f"checkpoint in {self.run_dir} is kept (try a lower train.lr or "
                "train.precision=fp32)"
            )

    def report_skipped(self) -> None:
        """Fast path: raise if any step since the last check had a non-finite loss (its update
        was skipped by the optimiser). A host synchronisation: called every ``log_every`` steps
        and before each checkpoint."""
        if not self.fast_path:
            return
        skipped = int(self._skipped)
        if skipped:
            raise TrainingError(
                f"non-finite loss in {skipped} step(s) between steps {self._checked_step} and "
                f"{self.state.step}; their updates were skipped and the last good checkpoint in "
                f"{self.run_dir} is kept (try a lower train.lr or train.precision=fp32)"
            )
        self._checked_step = self.state.step

    def generator_update(self, batch: dict[str, torch.Tensor], step: int) -> tuple[dict, dict]:
        """Generator step with the discriminators frozen; returns (logs, detached fakes)."""
        set_requires_grad(self.d_params, False)
        try:
            with self._autocast():
                loss_g, logs, fakes = self.method.generator_step(batch)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            average_gradients(self.g_params, self.dist)
            self._check_finite(loss_g, logs, step, self.opt_g, self.g_params)
            self.opt_g.step()
        finally:
            set_requires_grad(self.d_params, True)
        return logs, fakes

    def discriminator_update(self, batch: dict[str, torch.Tensor], fakes: dict, step: int) -> dict:
        """Discriminator step on real images and the (detached) fakes of the generator step."""
        with self._autocast():
            loss_d, logs = self.method.discriminator_step(batch, fakes)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        average_gradients(self.d_params, self.dist)
        self._check_finite(loss_d, logs, step, self.opt_d, self.d_params)
        self.opt_d.step()
        return {**logs, "d/total": loss_d.detach()}

    def train_step(self, step: int) -> dict[str, float]:
        """One generator step and one discriminator step; returns the logged losses."""
        return {k: float(v) for k, v in self.step_tensors(step).items()}

    def step_tensors(self, step: int) -> dict[str, torch.Tensor]:
        """:meth:`train_step` with the logged values left on the device (0-dim tensors), so
        that the step never waits for the device."""
        torch.manual_seed(step_seed(self.cfg.seed, step, self.dist.rank))
        factor = lr_factor(step, self.total_steps, self.decay_steps)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups if opt else []:
                group["lr"] = self.cfg.lr * factor
        batch = self.batch(step)
        self._step_bad = torch.zeros((), device=self.device)
        logs, fakes = self.generator_update(batch, step)
        if self.opt_d is not None:
            logs = {**logs, **self.discriminator_update(batch, fakes, step)}
        self._skipped += self._step_bad  # steps with a skipped update, not optimiser calls
        return logs | {"lr": torch.tensor(self.cfg.lr * factor)}

    def fit(self, extra: dict, stop_after: int | None = None) -> TrainState:
        """Train until the end (or ``stop_after`` more steps), checkpointing at epoch ends."""
        choice = self.prepare_convolutions()
        if self.progress and self.state.step == 0:
            counts = ", ".join(f"{n} {a}" for a, n in sorted(choice.counts().items()))
            tqdm.write(f"convolutions: {counts} ({choice.reason}; {choice.seconds:.1f} s)")
        self.method.train()
        end = (
            self.total_steps
            if stop_after is None
            else min(self.total_steps, self.state.step + stop_after)
        )
        bar = progress_bar(
            total=self.total_steps,
            initial=self.state.step,
            disable=not self.progress,
            desc=f"{self.method.name}",
            unit="step",
            dynamic_ncols=True,
        )
        epoch_start = time.perf_counter()
        try:
            while self.state.step < end:
                step = self.state.step
                logs = self.step_tensors(step)
                self.state.step = step + 1
                epoch, within = divmod(self.state.step, self.steps_per_epoch)
                if step % self.cfg.log_every == 0 or within == 0:  # the only waits for the device
                    self.report_skipped()
                    self._log(logs, step, f"{epoch + (within > 0)}/{self.cfg.epochs}", bar)
                bar.update(1)
                if within == 0:  # epoch finished
                    seconds = time.perf_counter() - epoch_start
                    self.state.epoch_seconds.append(seconds)
                    if self.writer is not None:
                        self.writer.add_scalar("time/seconds_per_epoch", seconds, epoch)
                        self.log_samples(epoch)
                    self.save(extra)
                    epoch_start = time.perf_counter()
                elif self.cfg.checkpoint_every and self.state.step % self.cfg.checkpoint_every == 0:
                    self.report_skipped()
                    self.save(extra)
            self.report_skipped()  # before the caller saves a checkpoint
        finally:
            bar.close()
        return self.state

    def _log(self, logs: dict[str, torch.Tensor], step: int, epoch: str, bar) -> None:
        """TensorBoard scalars (every ``log_every`` steps) and the progress bar's losses."""
        values = {k: float(v) for k, v in logs.items()}
        if self.writer is not None and step % self.cfg.log_every == 0:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
        shown = {k: f"{v:.3g}" for k, v in values.items() if k in ("g/total", "d/total")}
        bar.set_postfix({"epoch": epoch, **shown}, refresh=False)

    @torch.no_grad()
    def log_samples(self, epoch: int, count: int = 2) -> None:
        """TensorBoard images: real T1w, synthetic T2w, real T2w, synthetic T1w."""
        self.method.eval()
        real_t1 = self.data.t1w[:count].to(self.device)
        real_t2 = self.data.t2w[:count].to(self.device)
        fake_t2 = self.method.translate(real_t1, Direction.T1_TO_T2).float()
        fake_t1 = self.method.translate(real_t2, Direction.T2_TO_T1).float()
        c = real_t1.shape[1] // 2  # 2.5D stacks: show the centre slice
        grid = torch.cat([x[:, c : c + 1] for x in (real_t1, fake_t2, real_t2, fake_t1)], dim=-1)
        self.writer.add_images("samples/t1_fake-t2_t2_fake-t1", (grid + 1) / 2, epoch)
        self.method.train()
