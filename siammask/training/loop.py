"""The two-stage training loop: base (trunk, heads, coarse mask), then refine.

Resumable: `OUT/state.pt` holds model, optimiser, scaler, stage, epoch and iteration; all
randomness is derived from (seed, stage, epoch, iteration), so a resumed run computes exactly
the losses the uninterrupted run would have.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import load_hp
from ..errors import UserError
from ..model import TrackingNet, build_model, variant_spec
from ..nanotrack_checkpoint import is_nanotrack_file, load_nanotrack
from .config import EARLIER_VARIANTS, STAGE_VARIANTS, StageConfig, TrainConfig
from .losses import cls_loss, loc_loss, mask_loss
from .pairs import PairDataset

STATE = "state.pt"
STAGES = ("base", "refine")


class Stopped(Exception):
    """Raised inside the loop when a run's iteration or time budget is spent (state is saved)."""


@dataclass
class Budget:
    """Stop early (resumably) after this many iterations or at this time.monotonic() deadline."""

    iterations: int | None = None
    deadline: float | None = None
    done: int = 0

    def spent(self) -> bool:
        self.done += 1
        return (self.iterations is not None and self.done >= self.iterations) or \
               (self.deadline is not None and time.monotonic() >= self.deadline)


@dataclass
class Position:
    stage: str
    epoch: int
    iteration: int  # next iteration to run within the epoch


def lr_at(step: int, total: int, stage: StageConfig) -> float:
    """Linear warm-up, then cosine decay from lr to lr_end."""
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    t = (step - stage.warmup) / max(1, total - stage.warmup)
    return stage.lr_end + 0.5 * (stage.lr - stage.lr_end) * (1 + math.cos(math.pi * min(t, 1.0)))


def _stage_config(cfg: TrainConfig, name: str) -> StageConfig | None:
    return cfg.base if name == "base" else cfg.refine


def _build_model(cfg: TrainConfig, name: str, out: Path, resume: bool = False) -> TrackingNet:
    """The stage's model: random (seeded), or cfg.init's weights; the refine stage starts from the
    base stage's result, with cfg.init's refine module when it has one. When resuming, the saved
    state replaces every weight, so none are loaded here."""
    torch.manual_seed(cfg.seed)
    variant = STAGE_VARIANTS[cfg.model][STAGES.index(name)]
    model = build_model(variant)
    init = {} if resume else _init_weights(cfg)
    if name == "base" and init and cfg.model == "nano":
        _load_partial(model, init, cfg.init)
    elif name == "base" and init:
        model.load_state_dict({k: v for k, v in init.items() if not k.startswith("refine.")}, strict=True)
    if name == "refine" and not resume:
        base = torch.load(out / "base.pth", map_location="cpu", weights_only=True)["state_dict"]
        missing, unexpected = model.load_state_dict(base, strict=False)
        if unexpected or any(not k.startswith("refine.") for k in missing):
            raise UserError(f"{out / 'base.pth'} does not fit the {variant} model; delete {out} and retrain")
        model.load_state_dict({k: v for k, v in init.items() if k.startswith("refine.")}, strict=False)
    return model.to(cfg.device)


def _load_partial(model: TrackingNet, init: dict[str, torch.Tensor], path: str | None) -> None:
    """nano from a NanoTrack file (trunk and box head filled, the mask branch and refine left new) or from
    an earlier nano's weights without their refine (the refine left new)."""
    missing, unexpected = model.load_state_dict(init, strict=False)
    left = [k for k in missing if not k.startswith(MASK_MODULES)]
    if unexpected or left:
        raise UserError(f"init weights '{path}' do not fit the nano model ({len(unexpected)} unexpected, "
                        f"{len(left)} missing outside the mask branch)")


def _init_weights(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """cfg.init's state dict (empty without init), checked to belong to the model being trained; for
    nano also a NanoTrack V3 training checkpoint (trunk and box head only), or weights of an earlier
    nano (EARLIER_VARIANTS: everything but the refine)."""
    if cfg.init is None:
        return {}
    if cfg.model == "nano" and is_nanotrack_file(cfg.init):
        return load_nanotrack(cfg.init)
    loaded = load_checkpoint(cfg.init)
    if loaded.variant in EARLIER_VARIANTS.get(cfg.model, ()):
        return {k: v for k, v in loaded.model.state_dict().items() if not k.startswith("refine.")}
    if loaded.variant not in STAGE_VARIANTS[cfg.model]:
        raise UserError(f"init weights '{cfg.init}' are a {loaded.variant} model, but this config trains "
                        f"'{cfg.model}' ({' then '.join(STAGE_VARIANTS[cfg.model])}"
                        + "".join(f"; or from {v}, all but its refine" for v in EARLIER_VARIANTS.get(cfg.model, ()))
                        + "); use weights of that model")
    return loaded.model.state_dict()


# Modules that make the mask, trained alone by `train: mask` (those a model has).
MASK_MODULES = ("mask_branch", "mask_head", "refine")


def _trained_modules(model: TrackingNet, stage: StageConfig) -> list[torch.nn.Module]:
    """The modules a stage trains: the whole model, refine alone, or every mask module."""
    if stage.train == "all":
        return [model]
    names = ("refine",) if stage.train == "refine" else MASK_MODULES
    modules = [getattr(model, n) for n in names if getattr(model, n, None) is not None]
    if not modules:
        raise UserError(f"train: {stage.train} needs a model with a refine module")
    return modules


def _trainable(model: TrackingNet, stage: StageConfig) -> list[torch.nn.Parameter]:
    if stage.train != "all":
        for p in model.parameters():
            p.requires_grad_(False)
        for module in _trained_modules(model, stage):
            for p in module.parameters():
                p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def _set_mode(model: TrackingNet, stage: StageConfig) -> None:
    """Frozen parts keep their BatchNorm statistics."""
    model.eval()
    for module in _trained_modules(model, stage):
        module.train()


def _optimizer(params, stage: StageConfig) -> torch.optim.Optimizer:
    if stage.optimizer == "sgd":
        return torch.optim.SGD(params, lr=stage.lr, momentum=0.9, weight_decay=stage.weight_decay)
    return torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)


def _autocast(cfg: TrainConfig):
    if not cfg.amp:
        return contextlib.nullcontext()
    device = torch.device(cfg.device).type
    return torch.autocast(device, dtype=torch.float16 if device == "cuda" else torch.bfloat16)


def train_step(model: TrackingNet, batch: dict, stage: StageConfig, cfg: TrainConfig,
               generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward both branches and return the weighted loss and its parts (box losses only when the
    box heads train)."""
    dev = cfg.device
    with _autocast(cfg):
        t = model.template(batch["template"].to(dev))
        out = model.track(batch["search"].to(dev), t)
        parts = {} if stage.train != "all" else {
            "cls": cls_loss(out.cls, batch["labels"].to(dev)),
            "loc": loc_loss(out.loc, batch["deltas"].to(dev), batch["delta_weight"].to(dev))}
        m = mask_loss(model, out, batch["search_mask"].to(dev), batch["mask_weight"].to(dev),
                      stage.max_mask_positions, generator, use_refine=model.refine is not None,
                      geometry=variant_spec(model.variant).geometry)
    parts["mask"] = m.loss
    if stage.train != "all":
        loss = stage.mask_weight * parts["mask"]
    else:
        loss = stage.cls_weight * parts["cls"] + stage.loc_weight * parts["loc"] + stage.mask_weight * parts["mask"]
    stats = {k: float(v.detach()) for k, v in parts.items()}
    stats.update(loss=float(loss.detach()), mask_iou=m.iou, mask_positions=m.positions)
    return loss, stats


def _save_state(out: Path, pos: Position, cfg: TrainConfig, model=None, optim=None, scaler=None) -> None:
    """Model, optimiser and scaler are None at a stage boundary: the next stage starts fresh."""
    tmp = out / (STATE + ".tmp")
    torch.save({"format": "siammask-train-state", "version": 1, "stage": pos.stage, "epoch": pos.epoch,
                "iteration": pos.iteration, "config": cfg.to_dict(),
                "model": model and model.state_dict(), "optimizer": optim and optim.state_dict(),
                "scaler": scaler and scaler.state_dict()}, tmp)
    tmp.replace(out / STATE)  # atomic: a kill never leaves a half-written state


def _load_state(out: Path, cfg: TrainConfig) -> dict | None:
    path = out / STATE
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("config") != cfg.to_dict():
        raise UserError(f"{path} was written with a different config; use another --out or delete it to restart")
    return state


def train(cfg: TrainConfig, out: str | Path, log=print, budget: Budget | None = None) -> Path | None:
    """Run (or resume) both stages; returns the final checkpoint path (OUT/final.pth), or None
    when the budget ran out first (run it again to resume)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out, cfg)
    start = Position(state["stage"], state["epoch"], state["iteration"]) if state else Position("base", 0, 0)
    final = out / "final.pth"
    if start.stage == "done":
        log(f"training already finished: {final}")
        return final
    last = None
    for name in STAGES[STAGES.index(start.stage):]:
        stage = _stage_config(cfg, name)
        if stage is None:
            continue
        pos = start if name == start.stage else Position(name, 0, 0)
        try:
            last = _run_stage(cfg, stage, pos, out, state if name == start.stage else None, log,
                              budget or Budget())
        except Stopped:
            log(f"stopped early; state saved in {out / STATE}: run the same command again to resume")
            return None
    shutil.copyfile(last, final)
    return final


def _run_stage(cfg: TrainConfig, stage: StageConfig, pos: Position, out: Path, state: dict | None, log,
               budget: Budget) -> Path:
    resume = state is not None and state["model"] is not None
    model = _build_model(cfg, pos.stage, out, resume)
    optim = _optimizer(_trainable(model, stage), stage)
    scaler = torch.amp.GradScaler(enabled=cfg.amp and torch.device(cfg.device).type == "cuda")
    if resume:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
    data = PairDataset(list(cfg.datasets), load_hp(cfg.hp), variant_spec(model.variant).geometry,
                       stage.iterations * stage.batch_size, cfg.seed, stage.negative)
    total = stage.epochs * stage.iterations
    log_file = (out / "log.jsonl").open("a")
    try:
        for epoch in range(pos.epoch, stage.epochs):
            first = pos.iteration if epoch == pos.epoch else 0
            data.epoch = epoch
            loader = DataLoader(Subset(data, range(first * stage.batch_size, len(data))),
                                batch_size=stage.batch_size, num_workers=cfg.workers, shuffle=False)
            bar = tqdm(loader, desc=f"{pos.stage} epoch {epoch + 1}/{stage.epochs}", unit="it",
                       initial=first, total=stage.iterations)
            for it, batch in enumerate(bar, start=first):
                step = epoch * stage.iterations + it
                lr = lr_at(step, total, stage)
                for group in optim.param_groups:
                    group["lr"] = lr
                _set_mode(model, stage)
                generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
                t0 = time.perf_counter()
                loss, stats = train_step(model, batch, stage, cfg, generator)
                optim.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optim)
                scaler.update()
                stats.update(stage=pos.stage, epoch=epoch, iteration=it, lr=lr,
                             seconds=round(time.perf_counter() - t0, 4))
                log_file.write(json.dumps(stats) + "\n")
                log_file.flush()
                bar.set_postfix(loss=f"{stats['loss']:.3f}", mask_iou=f"{stats['mask_iou']:.2f}")
                stop = budget.spent()
                if stop or (it + 1) % cfg.save_every == 0 or it + 1 == stage.iterations:
                    nxt = Position(pos.stage, epoch + (it + 1 == stage.iterations), (it + 1) % stage.iterations)
                    _save_state(out, nxt, cfg, model, optim, scaler)
                if stop:
                    raise Stopped
    finally:
        log_file.close()
    path = save_checkpoint(model.cpu().eval(), out / f"{pos.stage}.pth", config={"hp": cfg.hp, "train": cfg.to_dict()})
    later = [s for s in STAGES[STAGES.index(pos.stage) + 1:] if _stage_config(cfg, s) is not None]
    nxt_stage = later[0] if later else None
    _save_state(out, Position(nxt_stage or "done", 0, 0), cfg)
    log(f"{pos.stage} stage done: {path}")
    return path
