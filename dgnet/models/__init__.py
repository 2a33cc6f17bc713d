"""The networks of DG-Net, one module each, built from :class:`dgnet.config.ModelConfig`.

    from dgnet.models import build_dgnet, build_teacher
    nets = build_dgnet(cfg.model, num_classes)   # appearance, structure, decoder, discriminator
    teacher = build_teacher(cfg.model, num_classes)
    embed, config = load_embedder("models/dgnet.pt", "cpu")
    embed(images)  # {"f_prim": (B, 512), "f_fine": (B, 512)}

``dgnet model summary --config paper`` prints every network's shapes and size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from dgnet.config import ConfigError, ModelConfig, config_from_dict
from dgnet.errors import UserError
from dgnet.models.appearance import AppearanceEncoder, AppearanceOutput
from dgnet.models.backbone import build_backbone
from dgnet.models.blocks import count_parameters
from dgnet.models.decoder import Decoder
from dgnet.models.discriminator import Discriminator
from dgnet.models.structure import StructureEncoder, to_gray
from dgnet.models.teacher import Teacher, TeacherOutput

CHECKPOINT_FORMAT = "dgnet-checkpoint-v1"
DGNET_KEYS = ("appearance", "structure", "decoder", "discriminator")


def build_teacher(cfg: ModelConfig, num_classes: int) -> Teacher:
    return Teacher(cfg.backbone, cfg.head, num_classes)


def build_dgnet(cfg: ModelConfig, num_classes: int) -> dict[str, nn.Module]:
    """E_a, E_s, G and D, keyed appearance / structure / decoder / discriminator."""
    if len(cfg.decoder.up_widths) != 2:
        raise ConfigError(
            f"model.decoder.up_widths: expected 2 widths (E_s downsamples by 4, G upsamples twice), "
            f"got {list(cfg.decoder.up_widths)}")
    appearance = AppearanceEncoder(cfg.backbone, cfg.head, num_classes)
    structure = StructureEncoder(cfg.structure)
    decoder = Decoder(cfg.decoder, structure.code_channels, appearance.code_channels, cfg.head.code_height)
    return {
        "appearance": appearance,
        "structure": structure,
        "decoder": decoder,
        "discriminator": Discriminator(cfg.discriminator),
    }


def without_pretrained(cfg: ModelConfig) -> ModelConfig:
    return dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, pretrained="none"))


def _shape(t: Tensor) -> list[int]:
    return list(t.shape[1:])  # per image, as the paper's tables


def model_summary(cfg: ModelConfig, height: int, width: int, num_classes: int) -> list[dict[str, Any]]:
    """One row per network: ``{"name", "inputs", "outputs", "params"}``.

    ``inputs``/``outputs`` map a tensor name to its per-image shape (no batch
    dimension), e.g. ``{"code": [128, 64, 32]}``. The networks are built with
    random weights (``pretrained`` is ignored) and run once on a batch of one
    zero image on the meta device, so no memory or time is spent on values.
    """
    cfg = without_pretrained(cfg)
    with torch.device("meta"):
        nets = build_dgnet(cfg, num_classes)
        teacher = build_teacher(cfg, num_classes)
        for net in [*nets.values(), teacher]:
            net.eval()
        image = torch.zeros(1, 3, height, width)
        gray = to_gray(image)
        a: AppearanceOutput = nets["appearance"](image)
        s = nets["structure"](gray)
        fake = nets["decoder"](s, a.code)
        d_outs = nets["discriminator"](fake)
        t: TeacherOutput = teacher(image)
    return [
        {"name": "appearance", "inputs": {"image": _shape(image)},
         "outputs": {k: _shape(v) for k, v in a._asdict().items()},
         "params": count_parameters(nets["appearance"])},
        {"name": "structure", "inputs": {"gray": _shape(gray)}, "outputs": {"code": _shape(s)},
         "params": count_parameters(nets["structure"])},
        {"name": "decoder", "inputs": {"structure": _shape(s), "appearance_code": _shape(a.code)},
         "outputs": {"image": _shape(fake)}, "params": count_parameters(nets["decoder"])},
        {"name": "discriminator", "inputs": {"image": _shape(fake)},
         "outputs": {f"scale{i}": _shape(o) for i, o in enumerate(d_outs)},
         "params": count_parameters(nets["discriminator"])},
        {"name": "teacher", "inputs": {"image": _shape(image)},
         "outputs": {k: _shape(v) for k, v in t._asdict().items()},
         "params": count_parameters(teacher)},
    ]


def _load_state(net: nn.Module, state: Any, path: Path, name: str) -> None:
    from dgnet.io import nonfinite_names

    bad = nonfinite_names(state)
    if bad:
        raise UserError(f"{path}: the {name!r} weights hold {len(bad)} non-finite tensors (e.g. {bad[0]}); "
                        f"the training diverged, use an earlier checkpoint")
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise UserError(f"{path}: the {name!r} weights do not fit the model its config describes ({err})") from None


def load_reid_network(checkpoint_path: str | Path, device: str | torch.device) -> tuple[nn.Module, str, dict]:
    """The re-id network of a checkpoint, in eval mode on ``device``: ``(net, kind, config_dict)``.

    ``net`` is a :class:`Teacher` for a ``teacher`` checkpoint and an
    :class:`AppearanceEncoder` (E_a) for a ``dgnet`` or ``reid`` one; ``kind``
    is the checkpoint's kind. Any unusable checkpoint raises ``UserError``
    naming the file.
    """
    from dgnet.io import CheckpointError, load_checkpoint

    path = Path(checkpoint_path)
    try:
        ckpt = load_checkpoint(path, map_location="cpu")
    except CheckpointError as err:
        raise UserError(str(err)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"{path}: not a dgnet checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    kind = ckpt.get("kind")
    if kind not in ("teacher", "dgnet", "reid"):
        raise UserError(f"{path}: unknown checkpoint kind {kind!r} (expected 'teacher', 'dgnet' or 'reid')")
    for key in ("config", "num_classes", "models"):
        if key not in ckpt:
            raise UserError(f"{path}: checkpoint has no {key!r} entry")
    try:
        model_cfg = without_pretrained(config_from_dict(ckpt["config"]).model)
    except ConfigError as err:
        raise UserError(f"{path}: the stored config is not valid: {err}") from None
    num_classes = int(ckpt["num_classes"])
    models = ckpt["models"]
    name = "teacher" if kind == "teacher" else "appearance"
    if name not in models:
        raise UserError(f"{path}: a {kind} checkpoint without {name!r} weights")
    net: nn.Module = (build_teacher(model_cfg, num_classes) if kind == "teacher"
                      else AppearanceEncoder(model_cfg.backbone, model_cfg.head, num_classes))
    _load_state(net, models[name], path, name)
    return net.to(device).eval(), kind, ckpt["config"]


def load_embedder(
    checkpoint_path: str | Path, device: str | torch.device
) -> tuple[Callable[[Tensor], dict[str, Tensor]], dict]:
    """Rebuild the re-id network of a checkpoint; return ``(embed, config_dict)``.

    ``embed(images)`` takes normalised images (B, 3, H, W) (moved to ``device``)
    and returns, in eval mode and without gradients, ``{"baseline": feature}``
    for a teacher checkpoint and ``{"f_prim": ..., "f_fine": ...}`` for a
    DG-Net one: raw bottleneck features, (B, bottleneck), neither normalised
    nor flip-averaged (the evaluation does both). ``config_dict`` is the
    checkpoint's full config mapping. The backbone is rebuilt without
    pretrained weights (the checkpoint holds them all).
    """
    net, kind, config = load_reid_network(checkpoint_path, device)

    if kind == "teacher":

        @torch.no_grad()
        def embed(images: Tensor) -> dict[str, Tensor]:
            return {"baseline": net(images.to(device)).feature}

        return embed, config
    return appearance_embedder(net, device), config


def appearance_embedder(net: nn.Module, device: str | torch.device) -> Callable[[Tensor], dict[str, Tensor]]:
    """``embed(images) -> {"f_prim", "f_fine"}`` of an appearance encoder (put it in eval mode first)."""

    @torch.no_grad()
    def embed(images: Tensor) -> dict[str, Tensor]:
        out = net(images.to(device))
        return {"f_prim": out.f_prim, "f_fine": out.f_fine}

    return embed


__all__ = [
    "AppearanceEncoder", "AppearanceOutput", "CHECKPOINT_FORMAT", "Decoder", "Discriminator",
    "StructureEncoder", "Teacher", "TeacherOutput", "build_backbone", "build_dgnet", "build_teacher",
    "appearance_embedder", "load_embedder", "load_reid_network", "model_summary", "to_gray",
]
