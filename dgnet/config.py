"""Frozen, validated configuration that mirrors ``params.yaml`` section by section.

Load once with :func:`load_config` (or :func:`config_from_dict`); every
dataclass is frozen so nothing can change a value during a run. Validation
stops at the first problem with a :class:`ConfigError` naming the dotted key
(``train.alpha``) and what was expected.

Named configurations (``default``, ``micro``, ``paper``, ``market1501``,
``duke``, ``msmt17``, ``cuhk03np``) live in ``configs/`` as override files;
:func:`preset_dict` merges them and ``dgnet config use NAME`` writes the
result to ``params.yaml``.

The dataclass defaults below are the ``default`` preset's values
(``configs/default.yaml``), so ``Config()`` built in code is the model the
pipeline trains; ``tests/test_config.py`` checks that the two never drift.

The paper-vs-official-code keys may say ``auto`` (follow ``train.fidelity``);
``cfg.switches`` holds every one resolved, computed once per config, so no
caller resolves the profile by hand. The fields keep ``auto``: a checkpoint
stores the config as written.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dgnet.fidelity import Switches, resolve


class ConfigError(ValueError):
    """A params file key is unknown, of the wrong type or out of range."""


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False):
    return {"min": lo, "max": hi, "lo_open": lo_open}


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class SynthConfig:
    """The procedurally generated pedestrian data set (Market-1501 layout)."""

    train_ids: int = field(default=60, metadata=_range(2))
    test_ids: int = field(default=60, metadata=_range(2))
    distractors: int = field(default=40, metadata=_range(0))  # pid 0000 gallery images
    junk: int = field(default=40, metadata=_range(0))  # pid -1 gallery images
    images_per_camera: int = field(default=3, metadata=_range(1))  # per id and camera it visits
    cameras: int = field(default=6, metadata=_range(2, 9))
    seed: int = 0
    style: Literal["A", "B", "P"] = "A"  # P: the pre-training set's own style (both palettes, own cameras)
    height: int = field(default=128, metadata=_range(16))
    width: int = field(default=64, metadata=_range(8))
    # readable (the default since issue 25): hair, bag, sleeves, shoes, texture and body shape drawn
    # to be readable at 64x32; classic: the earlier world, colour first (docs/synthetic_world.md)
    world: Literal["classic", "readable"] = "readable"


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are read and augmented (docs/configurations.md; augmentation variants in docs/fidelity.md)."""

    layout: Literal["synthetic", "market1501", "duke", "msmt17", "cuhk03np"] = "synthetic"
    root: str = "data/prepared/synth_a"
    cuhk03_subset: Literal["labeled", "detected"] = "labeled"
    height: int = field(default=64, metadata=_range(16))
    width: int = field(default=32, metadata=_range(8))
    pad: int = field(default=10, metadata=_range(0))
    random_erasing: float = field(default=0.5, metadata=_range(0, 1))
    cache_images: bool = True
    num_workers: int = field(default=0, metadata=_range(0))
    val_ids: int = field(default=10, metadata=_range(0))  # held-out training ids for tuning
    # second domain for direct transfer (Table 9); none: no second domain, the transfer stages write
    # markers and train nothing (teacher_b, dgnet_b, transfer; dgnet/switches.py)
    transfer_layout: Literal["synthetic", "market1501", "duke", "msmt17", "cuhk03np", "none"] = "synthetic"
    transfer_root: str = "data/prepared/synth_b"  # its root (unused when transfer_layout is none)
    synth: SynthConfig = SynthConfig()
    # Paper-vs-official-code differences (docs/fidelity.md): `auto` follows `train.fidelity`
    resize: Literal["auto", "bicubic", "bilinear"] = "auto"  # interpolation when decoding re-id images
    pad_mode: Literal["auto", "edge", "zero"] = "auto"  # padding before the random crop
    erasing_aspect: Literal["auto", "uniform", "log_uniform"] = "auto"  # random-erasing aspect ratio draw

    def _check(self) -> None:
        for key in ("height", "width"):
            if getattr(self, key) % 4:
                raise ConfigError(f"{key}: must be divisible by 4, got {getattr(self, key)}")
        if self.transfer_layout != "none" and not self.transfer_root.strip():
            raise ConfigError(f"transfer_root: missing; data.transfer_layout {self.transfer_layout} (Table 9's "
                              "second domain) needs the folder of that data set, or set transfer_layout: none "
                              "to switch the transfer stages off")


# ---------------------------------------------------------------- models


@dataclass(frozen=True)
class BackboneConfig:
    """ResNet trunk shared by E_a and the teacher."""

    arch: Literal["small", "resnet18", "resnet50"] = "small"
    pretrained: str = "models/pretrained_backbone.pth"  # the pretrain stage's trunk | none | imagenet | path to a state_dict file
    last_stride: int = field(default=1, metadata=_range(1, 2))
    small_widths: tuple[int, ...] = (32, 64, 128, 256)  # only for arch=small


@dataclass(frozen=True)
class HeadConfig:
    """The primary and fine-grained identity heads of E_a (and the teacher's head)."""

    bottleneck: int = field(default=512, metadata=_range(1))
    dropout_prim: float = field(default=0.5, metadata=_range(0, 1))
    dropout_fine: float = field(default=0.75, metadata=_range(0, 1))
    code_height: int = field(default=4, metadata=_range(1))  # appearance code pooled to code_height x 1


@dataclass(frozen=True)
class StructureConfig:
    """E_s (paper Table 6)."""

    widths: tuple[int, ...] = (16, 32, 32, 64)  # conv3x3/2, conv3x3, conv3x3, conv3x3/2
    res_blocks: int = field(default=4, metadata=_range(0))
    aspp_width: int = field(default=32, metadata=_range(1))
    aspp_dilations: tuple[int, ...] = (3, 6, 9)
    code_channels: int = field(default=64, metadata=_range(1))  # paper 128


@dataclass(frozen=True)
class DecoderConfig:
    """G (paper Table 7)."""

    res_blocks: int = field(default=4, metadata=_range(1))
    mlp_hidden: int = field(default=128, metadata=_range(1))  # paper 512
    mlp_layers: int = field(default=3, metadata=_range(1))
    up_widths: tuple[int, ...] = (32, 16)  # conv5x5 after each x2 upsample (paper 64, 32)
    tail_width: int = field(default=16, metadata=_range(1))  # paper 32


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Multi-scale PatchGAN D (paper Table 8)."""

    scales: int = field(default=3, metadata=_range(1))
    width: int = field(default=16, metadata=_range(1))  # paper 32
    res_blocks: int = field(default=4, metadata=_range(0))


@dataclass(frozen=True)
class ModelConfig:
    backbone: BackboneConfig = BackboneConfig()
    head: HeadConfig = HeadConfig()
    structure: StructureConfig = StructureConfig()
    decoder: DecoderConfig = DecoderConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how tensors run; never hard-coded in model or training code."""

    device: str = "cpu"  # cpu | cuda | cuda:N
    autocast_bf16: bool = False  # mixed precision on GPU
    channels_last: bool = False
    threads: int = field(default=0, metadata=_range(0))  # torch CPU threads, 0 = torch default
    parallel_trainings: int = field(default=2, metadata=_range(1))  # independent trainings at once (CPU)
    # fused Adam/SGD updates; auto: on unless train.fidelity is reference (docs/fidelity.md)
    fused_optimizers: Literal["auto", "on", "off"] = "auto"
    compile: bool = False  # torch.compile of E_a, E_s, G and the teacher's forward passes (docs/performance.md)

    def _check(self) -> None:
        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", self.device):
            raise ConfigError(f"device: expected cpu, cuda, cuda:N or mps, got {self.device!r}")


@dataclass(frozen=True)
class TeacherConfig:
    """Baseline / teacher re-id training (cross-entropy, SGD, step schedule)."""

    epochs: int = field(default=40, metadata=_range(1))  # the Baseline's plateau (docs/claims_diagnosis.md 15)
    batch_size: int = field(default=32, metadata=_range(2))
    lr: float = field(default=0.05, metadata=_range(0, lo_open=True))  # backbone; heads get head_lr_mult x
    head_lr_mult: float = field(default=1.0, metadata=_range(0, lo_open=True))
    momentum: float = field(default=0.9, metadata=_range(0, 1))
    weight_decay: float = field(default=5e-4, metadata=_range(0))
    lr_step_epochs: tuple[int, ...] = (30,)
    lr_gamma: float = field(default=0.1, metadata=_range(0, 1, lo_open=True))
    seed: int = 0


@dataclass(frozen=True)
class PretrainConfig:
    """Backbone pre-training on a large, separate synthetic set (style P, its own identities and seed):
    this world's ImageNet. Point ``model.backbone.pretrained`` at its output to start E_a and the teacher
    from it, as the paper starts both from ImageNet weights."""

    ids: int = field(default=300, metadata=_range(2))
    images_per_camera: int = field(default=2, metadata=_range(1))
    seed: int = 1000
    epochs: int = field(default=6, metadata=_range(1))
    batch_size: int = field(default=64, metadata=_range(2))
    lr: float = field(default=0.05, metadata=_range(0, lo_open=True))
    # stage pretrain_generator: E_s, G and D trained on this set before the joint training
    # (E_a frozen at the pre-trained trunk); read where train.generator_init points at its output
    generator_iterations: int = field(default=600, metadata=_range(1))


@dataclass(frozen=True)
class TrainConfig:
    """Joint DG-Net training (paper Section 3; official-code differences in docs/fidelity.md)."""

    iterations: int = field(default=600, metadata=_range(1))
    batch_size: int = field(default=8, metadata=_range(2))
    lr_appearance: float = field(default=0.02, metadata=_range(0, lo_open=True))
    head_lr_mult: float = field(default=1.0, metadata=_range(0, lo_open=True))
    lr_generator: float = field(default=5e-4, metadata=_range(0, lo_open=True))
    lr_discriminator: float = field(default=5e-4, metadata=_range(0, lo_open=True))
    weight_decay: float = field(default=5e-4, metadata=_range(0))
    lr_steps: tuple[int, ...] = (450, 550)
    lr_gamma: float = field(default=0.1, metadata=_range(0, 1, lo_open=True))
    lambda_img: float = field(default=5.2363, metadata=_range(0))  # tuned (reports/tuning/); paper 5
    lambda_id: float = field(default=0.3182, metadata=_range(0))  # tuned; paper 0.5
    lambda_prim_max: float = field(default=0.7335, metadata=_range(0))  # tuned; paper 2
    alpha: float = field(default=0.2, metadata=_range(0, 1))  # lambda_fine = alpha * lambda_prim
    warm_iter: int = field(default=193, metadata=_range(0))  # tuned
    ramp_iters: int = field(default=102, metadata=_range(0))  # tuned
    gp_weight: float = field(default=0.01, metadata=_range(0))
    feed_generated: bool = True  # ablation "w/o feed" when false
    id_supervision: bool = True  # ablation "w/o id" when false
    # scratch (the paper) | the pretrain_generator stage's E_s, G and D (models/pretrained_generator.pt)
    generator_init: str = "scratch"
    log_every: int = field(default=20, metadata=_range(1))
    sample_every: int = field(default=200, metadata=_range(1))
    checkpoint_every: int = field(default=100, metadata=_range(1))
    seed: int = 0
    # Paper-vs-official-code differences (docs/fidelity.md): `auto` follows `fidelity`
    fidelity: Literal["reference", "paper"] = "paper"
    loss_sums: Literal["auto", "half_batches", "batch_mean"] = "auto"
    code_recon: Literal["auto", "ramp", "constant"] = "auto"
    prim_ramp: Literal["auto", "official", "closed_form"] = "auto"
    lr_decay: Literal["auto", "official", "at_step"] = "auto"
    lambda_code_max: float = field(default=1.0, metadata=_range(0))  # L_code weights' ceiling (ramp)
    cycle_recon: Literal["auto", "ramp", "off"] = "auto"
    lambda_cycle_max: float = field(default=2.0, metadata=_range(0))  # cycle weight's ceiling (ramp)
    code1_gradient: Literal["auto", "detached", "live"] = "auto"
    fine_real_on: Literal["auto", "anchors", "anchors_and_positives"] = "auto"
    appearance_bn: Literal["auto", "half_batches", "whole_batch"] = "auto"
    teacher_bn: Literal["auto", "batch", "running"] = "auto"
    teacher_dropout: Literal["auto", "after_first_sample", "off"] = "auto"

    def _check(self) -> None:
        if self.batch_size % 2:
            raise ConfigError(f"batch_size: must be even (two half-batches, as the reference's loaders a and b), "
                              f"got {self.batch_size}")


@dataclass(frozen=True)
class EvalConfig:
    """Re-id evaluation (paper Section 4.1: the Market-1501 protocol)."""

    beta: float = field(default=0.5, metadata=_range(0))
    ap: Literal["trapezoid", "standard"] = "trapezoid"
    rerank: bool = False
    multi_query: bool = False
    batch_size: int = field(default=64, metadata=_range(1))
    max_rank: int = field(default=50, metadata=_range(1))


@dataclass(frozen=True)
class ProbeConfig:
    """The ground-truth attribute probe of the disentanglement table (stage probe; synthetic data only):
    trained on ``ids`` fresh identities of the data set's world, style and cameras."""

    ids: int = field(default=4000, metadata=_range(2))
    epochs: int = field(default=25, metadata=_range(1))
    width: int = field(default=32, metadata=_range(1))  # the first convolution's channels


@dataclass(frozen=True)
class SweepConfig:
    """What the DVC graph trains and measures beside the main model (dgnet/switches.py switches the extras)."""

    alphas: tuple[float, ...] = field(default=(), metadata=_range(0, 1))  # Figure 8: each one DG-Net training
    betas: tuple[float, ...] = field(default=(0.0, 0.25, 0.5, 1.0, 1.5, 2.0), metadata=_range(0))  # test time only
    seeds: tuple[int, ...] = (1, 2)  # replicate seeds of the central comparisons, beside train.seed (claims)
    without_id: bool = False  # the "w/o id" ablation (one DG-Net training, Table 2, Figure 4)
    transfer_b_to_a: bool = False  # Table 9's B -> A: a teacher and a DG-Net trained on the second domain


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow store; the default is a SQLite file in the project root."""

    uri: str = "sqlite:///mlflow.db"
    experiment: str = "dgnet"


@dataclass(frozen=True)
class Config:
    name: str = "default"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    pretrain: PretrainConfig = PretrainConfig()
    teacher: TeacherConfig = TeacherConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    probe: ProbeConfig = ProbeConfig()
    sweep: SweepConfig = SweepConfig()
    tracking: TrackingConfig = TrackingConfig()

    @functools.cached_property
    def switches(self) -> Switches:
        """Every fidelity key with ``auto`` replaced by ``train.fidelity``'s profile (docs/fidelity.md),
        resolved once per config: ``cfg.switches.resize``. The fields keep their ``auto``, so what a
        checkpoint stores (and its bytes) is what the config says."""
        return resolve(self)


# ---------------------------------------------------------------- loading


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {typing.get_args(tp)[0].__name__}"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in canonical form."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (section), got {type(value).__name__}")
        return _build(tp, value, key + ".")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return value
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return tuple(_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} for {key}")  # programming error


def _check_range(value: Any, meta: typing.Mapping, key: str) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if lo is not None and (v <= lo if meta.get("lo_open") else v < lo):
            bound = f"> {lo}" if meta.get("lo_open") else f">= {lo}"
            raise ConfigError(f"{key}: expected a value {bound}, got {value!r}")
        if hi is not None and v > hi:
            raise ConfigError(f"{key}: expected a value <= {hi}, got {value!r}")


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(
                f"{prefix}{key}: unknown key; expected one of {', '.join(sorted(fields))}"
            )
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        key = prefix + name
        value = _convert(data[name], hints[name], key)
        _check_range(value, f.metadata, key)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "_check", None)
    if check is not None:
        try:
            check()
        except ConfigError as err:
            raise ConfigError(f"{prefix}{err}") from None
    return obj


def config_from_dict(data: dict) -> Config:
    """Build and validate a :class:`Config` from a (possibly partial) mapping."""
    if not isinstance(data, dict):
        raise ConfigError(f"params: expected a mapping at the top level, got {type(data).__name__}")
    return _build(Config, data)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 plus the floats YAML 1.2 allows: ``1e-3`` is a number, not a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that also reads ``1e-3`` and ``5E+2`` as floats (PyYAML reads them as strings)."""
    return yaml.load(text, Loader=_Loader)


def read_params(path: str | Path) -> dict:
    """The mapping in a params file; an empty file or a non-mapping is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if data is None:
        raise ConfigError(f"{path}: the params file is empty; write one with `dgnet config use default`")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read and validate a params file; errors name the file and the key.

    A partial file (some sections or keys left out) is merged onto the
    ``default`` preset (``configs/default.yaml``), so a missing key means the
    documented default (the dataclass defaults are the same values).
    """
    data = read_params(path)
    try:
        return config_from_dict(deep_merge(preset_dict("default"), data))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def config_to_dict(config: Any) -> dict:
    """The plain-dict form of a config (tuples as lists), ready for YAML or a checkpoint."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for MLflow params)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def replace(config: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` with dotted keys: ``replace(cfg, **{"train.alpha": 0.5})``."""
    nested: dict[str, dict] = {}
    direct: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        direct[head] = replace(getattr(config, head), **sub)
    return dataclasses.replace(config, **direct)


def nest(changes: typing.Mapping[str, Any]) -> dict:
    """``{"train.alpha": 0.3}`` -> ``{"train": {"alpha": 0.3}}`` (params.yaml's shape)."""
    out: dict = {}
    for key, value in changes.items():
        *heads, last = key.split(".")
        node = out
        for head in heads:
            node = node.setdefault(head, {})
        node[last] = value
    return out


def with_changes(cfg: Config, changes: typing.Mapping[str, Any]) -> Config:
    """``cfg`` with dotted ``changes``, validated like a params file (ranges included)."""
    return config_from_dict(deep_merge(config_to_dict(cfg), nest(changes)))


def with_iterations(cfg: Config, iterations: int | None) -> Config:
    """A shortened (or longer) run: ``train.iterations`` and the schedule scaled alike.

    ``lr_steps``, ``warm_iter`` and ``ramp_iters`` keep their fractions of the
    run, so a quick tuning run has the shape of the full one.
    """
    t = cfg.train
    if iterations is None or iterations == t.iterations:
        return cfg
    if iterations < 1:
        raise ConfigError(f"iterations must be >= 1, got {iterations}")
    f = iterations / t.iterations
    return with_changes(cfg, {
        "train.iterations": iterations,
        "train.lr_steps": [round(s * f) for s in t.lr_steps],
        "train.warm_iter": round(t.warm_iter * f),
        "train.ramp_iters": round(t.ramp_iters * f),
    })


# ---------------------------------------------------------------- presets

PRESETS_DIR = Path(__file__).resolve().parent.parent / "configs"
PRESET_CHAIN = {
    "default": ["default"],
    "micro": ["default", "micro"],
    "paper": ["default", "paper"],
    "market1501": ["default", "paper", "market1501"],
    "duke": ["default", "paper", "duke"],
    "msmt17": ["default", "paper", "msmt17"],
    "cuhk03np": ["default", "paper", "cuhk03np"],
}


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def preset_dict(name: str, presets_dir: Path = PRESETS_DIR) -> dict:
    """The merged params mapping of a named configuration."""
    if name not in PRESET_CHAIN:
        raise ConfigError(f"unknown configuration {name!r}; expected one of {', '.join(PRESET_CHAIN)}")
    merged: dict = {}
    for part in PRESET_CHAIN[name]:
        path = presets_dir / f"{part}.yaml"
        if not path.is_file():
            raise ConfigError(f"{path}: preset file missing")
        merged = deep_merge(merged, yaml_load(path.read_text()) or {})
    merged["name"] = name
    config_from_dict(merged)  # validate
    return merged


def preset_config(name: str) -> Config:
    return config_from_dict(preset_dict(name))


__all__ = [
    "BackboneConfig", "Config", "ConfigError", "DataConfig", "DecoderConfig",
    "DiscriminatorConfig", "EvalConfig", "HeadConfig", "ModelConfig", "ProbeConfig", "RuntimeConfig",
    "StructureConfig", "SweepConfig", "SynthConfig", "TeacherConfig", "TrackingConfig", "TrainConfig",
    "config_from_dict", "config_to_dict", "flatten", "load_config", "preset_config",
    "preset_dict", "replace",
]


def apply_overrides(config: Config, assignments: list[str]) -> Config:
    """``["train.alpha=0.5", "train.feed_generated=false"]`` -> a new, validated config."""
    return config_from_dict(set_keys(config_to_dict(config), assignments))


def set_keys(data: dict, assignments: list[str]) -> dict:
    """Set each ``KEY=VALUE`` (a dotted key that ``data`` already has; the value read as YAML) in ``data``."""
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise ConfigError(f"override {assignment!r}: expected KEY=VALUE")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{key}: unknown section {part!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"{key}: unknown key")
        node[leaf] = yaml_load(text)
    return data
