"""Export the test-time re-id network as ONNX or TorchScript.

    net = load_inference_network("models/dgnet/last.pt")
    export_onnx(net, "dgnet.onnx")            # or export_torchscript(net, "dgnet.pt")

What is exported is the whole test-time computation of ``dgnet evaluate`` and
``dgnet embed`` after the image is decoded, so an exported model gives the
same features when it is given the same input:

- input ``images``: float32 ``(batch, 3, H, W)``, RGB values in ``[0, 1]``
  (an 8-bit image divided by 255), decoded as the evaluation decodes it
  (:func:`dgnet.data.dataset.decode_image`: EXIF orientation applied, any mode
  made 8-bit RGB, then resized to the checkpoint's training size ``W x H`` with
  PIL's interpolation ``resize``, bicubic or bilinear as the checkpoint's
  ``data.resize`` / ``train.fidelity`` resolve; both stored in the model's
  metadata); any batch size;
- inside: ImageNet normalisation, the network on the images and on their
  horizontal flips (one batch of ``2 x batch``), then per named feature
  ``normalize(normalize(f(x)) + normalize(f(flip(x))))``;
- outputs of a DG-Net checkpoint (E_a with both heads): ``feature``
  ``= [f_prim, sqrt(beta) f_fine]`` ``(batch, 2 x bottleneck)``, the test
  feature (``feature_q . feature_g = s_prim + beta s_fine``, the score the
  evaluation ranks by), then ``f_prim`` and ``f_fine`` ``(batch, bottleneck)``,
  each L2-normalised; of a teacher checkpoint: ``feature`` only.

ONNX: opset :data:`ONNX_OPSET`, dynamic batch axis, metadata properties
``dgnet.*`` (kind, height, width, resize, input, beta, outputs, checkpoint,
checkpoint_sha256). TorchScript: a
traced module (dynamic batch), the same metadata in the extra file
``dgnet.json`` (``torch.jit.load(path, _extra_files={"dgnet.json": ""})``).
"""

from __future__ import annotations

import io as _io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from dgnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from dgnet.errors import UserError
from dgnet.eval.features import combine_features, flip_average
from dgnet.io import atomic_path
from dgnet.toolkit.checks import check_beta
from dgnet.toolkit.folder import Preprocessing, file_sha256, preprocessing

#: Supported by onnxruntime >= 1.14 and every current runtime (TensorRT, OpenVINO, ...).
ONNX_OPSET = 18
FORMATS = ("onnx", "torchscript")


class InferenceNetwork(nn.Module):
    """Images in ``[0, 1]`` -> the evaluation's test features (see the module docstring)."""

    def __init__(self, net: nn.Module, kind: str, beta: float, height: int, width: int,
                 resize: str = "bilinear", checkpoint_sha256: str = ""):
        super().__init__()
        self.net = net
        self.is_teacher = kind == "teacher"
        self.kind, self.beta, self.height, self.width = kind, beta, height, width
        self.resize, self.checkpoint_sha256 = resize, checkpoint_sha256
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    @property
    def input_description(self) -> str:
        prep = Preprocessing(self.height, self.width, self.resize)
        return (f"images: float32 (batch, 3, {self.height}, {self.width}), RGB in [0, 1] (8-bit values / 255), "
                f"EXIF orientation applied, resized to {prep}; ImageNet normalisation is inside the model")

    @property
    def output_names(self) -> list[str]:
        return ["feature"] if self.is_teacher else ["feature", "f_prim", "f_fine"]

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        x = (images - self.mean) / self.std
        both = torch.cat([x, torch.flip(x, dims=[3])])  # images, then their flips
        if self.is_teacher:
            plain, flipped = self.net(both).feature.chunk(2)
            return (flip_average(plain, flipped),)
        out = self.net(both)
        prim, fine = flip_average(*out.f_prim.chunk(2)), flip_average(*out.f_fine.chunk(2))
        return combine_features(prim, fine, math.sqrt(self.beta)), prim, fine

    def metadata(self, checkpoint: str | Path) -> dict[str, str]:
        return {
            "dgnet.kind": self.kind,
            "dgnet.height": str(self.height),
            "dgnet.width": str(self.width),
            "dgnet.beta": str(self.beta) if not self.is_teacher else "",
            "dgnet.resize": self.resize,
            "dgnet.input": self.input_description,
            "dgnet.outputs": ",".join(self.output_names),
            "dgnet.checkpoint": str(checkpoint),
            "dgnet.checkpoint_sha256": self.checkpoint_sha256,
        }


def load_inference_network(checkpoint: str | Path, beta: float | None = None) -> InferenceNetwork:
    """The checkpoint's re-id network wrapped as :class:`InferenceNetwork` (CPU, eval mode).

    ``beta`` (weight of f_fine) defaults to the checkpoint's ``eval.beta``; the
    input size and interpolation are the checkpoint's resolved config's.
    """
    from dgnet.config import config_from_dict
    from dgnet.models import load_reid_network

    net, kind, config = load_reid_network(checkpoint, "cpu")
    cfg = config_from_dict(config)
    beta = check_beta(cfg.eval.beta if beta is None else beta)
    prep = preprocessing(cfg)
    return InferenceNetwork(net, kind, beta, prep.height, prep.width, prep.resize,
                            file_sha256(checkpoint)).eval()


class FeatureNetwork(nn.Module):
    """The test feature alone (``outputs[0]``): one tensor in, one tensor out (an MLflow model)."""

    def __init__(self, inference: InferenceNetwork):
        super().__init__()
        self.inference = inference

    def forward(self, images: Tensor) -> Tensor:
        return self.inference(images)[0]


def example_images(net: InferenceNetwork, batch: int = 2) -> Tensor:
    return torch.rand(batch, 3, net.height, net.width, generator=torch.Generator().manual_seed(0))


def export_onnx(net: InferenceNetwork, out: str | Path, checkpoint: str | Path = "") -> None:
    """Write ``net`` as ONNX (dynamic batch, opset :data:`ONNX_OPSET`, ``dgnet.*`` metadata)."""
    import onnx

    buffer = _io.BytesIO()
    with warnings.catch_warnings():  # the exporter's notes on its own internals
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (example_images(net),), buffer, input_names=["images"], output_names=net.output_names,
            dynamic_axes={name: {0: "batch"} for name in ["images", *net.output_names]},
            opset_version=ONNX_OPSET, dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in net.metadata(checkpoint).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    with atomic_path(out) as tmp:
        onnx.save(model, tmp)


def export_torchscript(net: InferenceNetwork, out: str | Path, checkpoint: str | Path = "") -> None:
    """Write ``net`` as a traced TorchScript module (dynamic batch; metadata in ``dgnet.json``)."""
    with warnings.catch_warnings():  # TorchScript's deprecation notice: the format still loads
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, (example_images(net),), check_trace=False)
        extra = {"dgnet.json": json.dumps(net.metadata(checkpoint), indent=2)}
        with atomic_path(out) as tmp:
            torch.jit.save(traced, str(tmp), _extra_files=extra)


def run_onnx(path: str | Path, images: np.ndarray) -> list[np.ndarray]:
    """The outputs of an exported ONNX model on ``images`` (onnxruntime, CPU)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images.astype(np.float32)})


def run_torchscript(path: str | Path, images: np.ndarray) -> list[np.ndarray]:
    """The outputs of an exported TorchScript model on ``images``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return [t.numpy() for t in module(torch.as_tensor(images, dtype=torch.float32))]


def _self_check(net: InferenceNetwork, run, path: Path, out: str | Path) -> float:
    """Largest |difference| between the outputs of the file ``path`` (to become ``out``) and PyTorch's
    on 3 random images; an error above 1e-4."""
    images = example_images(net, batch=3)  # another batch size than the export's example
    with torch.no_grad():
        want = [t.numpy() for t in net(images)]
    got = run(path, images.numpy())
    if not all(np.isfinite(g).all() for g in got):
        raise UserError(f"{out}: the exported model gives non-finite outputs (NaN or inf) on 3 test images; "
                        f"the file is left as it was")
    diff = max(float(np.abs(w - g).max()) for w, g in zip(want, got))
    if not diff <= 1e-4:  # NaN fails too
        raise UserError(f"{out}: the exported model differs from PyTorch by {diff:.2e} (> 1e-4); "
                        f"the file is left as it was")
    return diff


def export(checkpoint: str | Path, fmt: str, out: str | Path, beta: float | None = None) -> dict:
    """Export, check the file against PyTorch on a batch of 3 random images, then put it in place.

    Returns ``{"kind", "outputs", "height", "width", "resize", "input", "beta",
    "max_abs_difference"}``; non-finite outputs or a difference above 1e-4
    raise ``UserError`` and leave ``out`` as it was.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    net = load_inference_network(checkpoint, beta)
    write, run = ((export_onnx, run_onnx) if fmt == "onnx" else (export_torchscript, run_torchscript))
    with atomic_path(out) as tmp:  # renamed to ``out`` only once the check passed
        write(net, tmp, Path(checkpoint).resolve())
        diff = _self_check(net, run, tmp, out)
    return {"kind": net.kind, "outputs": net.output_names, "height": net.height, "width": net.width,
            "resize": net.resize, "input": net.input_description,
            "beta": None if net.is_teacher else net.beta, "max_abs_difference": diff}


__all__ = ["FORMATS", "ONNX_OPSET", "InferenceNetwork", "export", "export_onnx", "export_torchscript",
           "load_inference_network", "run_onnx", "run_torchscript"]
