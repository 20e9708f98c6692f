"""Training configuration (configs/train/*.yaml): one frozen dataclass per section."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..config import from_dict, load_yaml
from ..errors import UserError
from .pairs import DataSource

# model -> (variant trained in the base stage, variant after the refine stage)
STAGE_VARIANTS = {"lite": ("lite-base", "lite"), "sharp": ("base", "sharp"), "nano": ("nano", "nano")}
# model -> earlier variants of it whose weights a config may start from, all but their refine
# (nano's three-level refine, shipped until 2026-12-07: the slimmer refine starts new on its mask branch)
EARLIER_VARIANTS = {"nano": ("nano-3level",)}
TRAIN_PARTS = ("all", "refine", "mask")


@dataclass(frozen=True)
class StageConfig:
    epochs: int
    iterations: int            # per epoch
    batch_size: int
    lr: float
    lr_end: float
    train: str = "all"         # "all", "refine" or "mask" (mask branch + refine); the rest frozen,
                               # BatchNorm statistics kept
    optimizer: str = "adamw"   # "adamw" or "sgd"
    weight_decay: float = 1e-4
    warmup: int = 50           # iterations of linear warm-up
    cls_weight: float = 1.0
    loc_weight: float = 1.2
    mask_weight: float = 36.0
    max_mask_positions: int = 32
    negative: float = 0.2      # fraction of negative pairs


@dataclass(frozen=True)
class TrainConfig:
    model: str                 # "lite" or "sharp"
    datasets: tuple[DataSource, ...]
    base: StageConfig
    refine: StageConfig | None = None
    hp: str = "davis"          # hyper-parameter preset the trained weights are meant for
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    amp: bool = False          # mixed precision (fp16 on CUDA, bf16 on CPU)
    save_every: int = 100      # iterations between resumable checkpoints
    init: str | None = None    # start from these weights (ours or an official checkpoint) instead of random

    def to_dict(self) -> dict:
        return asdict(self)


def load_train_config(path: str) -> TrainConfig:
    cfg = load_yaml(TrainConfig, path)
    if cfg.model not in STAGE_VARIANTS:
        raise UserError(f"{path}: model must be one of {', '.join(STAGE_VARIANTS)}, got '{cfg.model}'")
    for name, stage in (("base", cfg.base), ("refine", cfg.refine)):
        if stage is not None and stage.train not in TRAIN_PARTS:
            raise UserError(f"{path}: {name}.train must be one of {', '.join(TRAIN_PARTS)}")
        if stage is not None and cfg.model == "nano" and stage.train != "mask":
            raise UserError(f"{path}: {name}.train must be 'mask' for nano: its trunk and box head are "
                            "NanoTrack's pretrained ones, only the mask branch and refine are trained")
        if stage is not None and stage.optimizer not in ("adamw", "sgd"):
            raise UserError(f"{path}: {name}.optimizer must be 'adamw' or 'sgd'")
    return cfg


def config_from_dict(data: dict) -> TrainConfig:
    """Rebuild the config saved inside a training checkpoint."""
    return from_dict(TrainConfig, data, "checkpoint config")
