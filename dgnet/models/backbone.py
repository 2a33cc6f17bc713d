"""ResNet trunks shared by E_a and the teacher: stem + 4 stages, no pooling, no fc.

    from dgnet.config import BackboneConfig
    trunk = build_backbone(BackboneConfig(arch="resnet50", pretrained="imagenet"))
    trunk(torch.zeros(1, 3, 256, 128)).shape  # (1, 2048, 16, 8) with last_stride 1

Pretrained weights are read from disk only (never downloaded): ``imagenet``
looks for torchvision's file in ``torch.hub.get_dir()/checkpoints``; any other
value but ``none`` is the path of a state_dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.models import resnet18, resnet50
from torchvision.models.resnet import BasicBlock

from dgnet.config import BackboneConfig, ConfigError
from dgnet.errors import UserError

# torchvision's ImageNet files (IMAGENET1K_V1 = what the reference's pretrained=True meant)
IMAGENET_FILES = {
    "resnet50": "resnet50-0676ba61.pth",
    "resnet18": "resnet18-f37072fd.pth",
}


class Trunk(nn.Module):
    """conv1-bn1-relu-maxpool-layer1..layer4; module names as torchvision's ResNet.

    Keeping torchvision's names makes its state_dict (minus ``fc.*``) load as is.
    """

    def __init__(self, conv1: nn.Module, bn1: nn.Module, maxpool: nn.Module,
                 layers: Sequence[nn.Module], out_channels: int):
        super().__init__()
        self.conv1 = conv1
        self.bn1 = bn1
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)  # (B, out_channels, H/16, W/16) for ResNets with last stride 1


def _set_last_stride(layer4: nn.Sequential, stride: int) -> None:
    """Set the stride of the first block of the last stage (conv and shortcut), as the reference
    does for stride 1 (``layer4[0].conv2.stride = layer4[0].downsample[0].stride = (1, 1)``)."""
    for m in layer4[0].modules():
        if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
            m.stride = (stride, stride)


def _torchvision_trunk(arch: str, last_stride: int) -> Trunk:
    net = {"resnet50": resnet50, "resnet18": resnet18}[arch](weights=None)
    _set_last_stride(net.layer4, last_stride)
    layers = [net.layer1, net.layer2, net.layer3, net.layer4]
    return Trunk(net.conv1, net.bn1, net.maxpool, layers, net.fc.in_features)


def _stage(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
    return nn.Sequential(BasicBlock(in_ch, out_ch, stride, downsample))


def _small_trunk(widths: Sequence[int], last_stride: int) -> Trunk:
    """A tiny ResNet for CPU runs: conv3x3/2 stem, one BasicBlock per stage, strides 1, 2, 2, last.

    Total stride 8 with last stride 1 (8x4 maps at 64x32), so the map keeps
    as many rows per input pixel as the paper's 16x8 at 256x128 does relatively.
    """
    if len(widths) != 4:
        raise ConfigError(f"model.backbone.small_widths: expected 4 stage widths, got {list(widths)}")
    conv1 = nn.Conv2d(3, widths[0], 3, 2, 1, bias=False)
    bn1 = nn.BatchNorm2d(widths[0])
    strides = (1, 2, 2, last_stride)
    ins = (widths[0],) + tuple(widths[:3])
    layers = [_stage(i, o, s) for i, o, s in zip(ins, widths, strides)]
    trunk = Trunk(conv1, bn1, nn.Identity(), layers, widths[-1])
    for m in trunk.modules():  # torchvision's ResNet initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return trunk


def imagenet_weights_path(arch: str) -> Path:
    """Where torchvision keeps (and dgnet looks for) the ImageNet file of ``arch``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILES[arch]


def _missing_imagenet_message(arch: str, path: Path) -> str:
    return (
        f"ImageNet weights for {arch} not found: {path.name} is not in {path.parent} "
        f"(dgnet never downloads). On a machine with internet run\n"
        f"  python -c \"import torchvision; torchvision.models.{arch}(weights='IMAGENET1K_V1')\"\n"
        f"and copy {path.name} from its $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints) "
        f"into {path.parent} (or point TORCH_HOME at a folder holding hub/checkpoints/{path.name}); "
        f"or set model.backbone.pretrained to the file's path, or to none."
    )


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise UserError(f"{path}: not a readable weights file ({err})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state_dict (a mapping of names to tensors)")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith("fc.")}  # the ImageNet classifier


def load_trunk_weights(trunk: nn.Module, path: Path, arch: str) -> None:
    """Load a state_dict file into ``trunk``; any missing, unexpected or mis-shaped key is an error."""
    state = _read_state_dict(path)
    own = trunk.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def few(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
        problems = []
        if missing:
            problems.append(f"missing keys: {few(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {few(unexpected)}")
        if shapes:
            problems.append(f"shape mismatches (file vs model): {few(shapes)}")
        raise UserError(f"{path}: weights do not fit the {arch} backbone; " + "; ".join(problems))
    trunk.load_state_dict(state)


def build_backbone(cfg: BackboneConfig) -> Trunk:
    """The trunk of ``cfg.arch`` with ``cfg.last_stride``, weights per ``cfg.pretrained``.

    ``out_channels``: 2048 (resnet50), 512 (resnet18), ``small_widths[-1]`` (small).
    """
    if cfg.arch == "small":
        trunk = _small_trunk(cfg.small_widths, cfg.last_stride)
    else:
        trunk = _torchvision_trunk(cfg.arch, cfg.last_stride)
    if cfg.pretrained == "none":
        return trunk
    if cfg.pretrained == "imagenet":
        if cfg.arch not in IMAGENET_FILES:
            raise ConfigError(
                f"model.backbone.pretrained: 'imagenet' needs arch resnet50 or resnet18, got {cfg.arch!r} "
                f"(use none or a path to a state_dict of this trunk)")
        path = imagenet_weights_path(cfg.arch)
        if not path.is_file():
            raise UserError(_missing_imagenet_message(cfg.arch, path))
    else:
        path = Path(cfg.pretrained)
        if not path.is_file():
            raise UserError(f"model.backbone.pretrained: weights file {path} not found")
    load_trunk_weights(trunk, path, cfg.arch)
    return trunk
