"""The networks: every output size of the paper's Tables 6-8, the CPU configurations run
forward and backward, weights load from disk only, checkpoints rebuild an embedder."""

import dataclasses
import json

import pytest
import torch
import torchvision
import yaml
from torch import nn

from dgnet import cli, losses
from dgnet.config import ConfigError, config_to_dict, preset_config, preset_dict, replace
from dgnet.errors import UserError
from dgnet.io import save_checkpoint
from dgnet.models import (
    AppearanceEncoder,
    Decoder,
    Discriminator,
    StructureEncoder,
    build_dgnet,
    build_teacher,
    load_embedder,
    model_summary,
    to_gray,
)
from dgnet.models.backbone import IMAGENET_FILES, build_backbone
from dgnet.models.blocks import pad2d

PAPER_K = 751


def _paper_model():
    model = preset_config("paper").model
    return dataclasses.replace(model, backbone=dataclasses.replace(model.backbone, pretrained="none"))


def _shapes_through(layers, x):
    shapes = []
    for layer in layers:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    return shapes, x


# ---------------------------------------------------------------- paper scale (Tables 6-8)


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)
    nets = build_dgnet(_paper_model(), PAPER_K)
    for net in nets.values():
        net.eval()
    return nets


@torch.no_grad()
def test_structure_encoder_table6(paper):
    enc = paper["structure"]
    gray = to_gray(torch.randn(1, 3, 256, 128))
    assert gray.shape == (1, 1, 256, 128)
    layers = list(enc.net)
    shapes, code = _shapes_through(layers, gray)
    assert shapes[:4] == [(16, 128, 64), (32, 128, 64), (32, 128, 64), (64, 64, 32)]  # Conv1-4
    assert shapes[4:8] == [(64, 64, 32)] * 4  # ResBlocks x4
    aspp = layers[-1]
    assert aspp.fuse.conv.in_channels == 128 and len(aspp.branches) == 3  # 4 x 32 concatenated
    assert [b[1].conv.dilation for b in aspp.branches] == [(3, 3), (6, 6), (9, 9)]
    assert aspp.fuse.conv.kernel_size == (1, 1)  # Conv5 1x1, 128
    assert code.shape == (1, 128, 64, 32)


@torch.no_grad()
def test_appearance_encoder_and_decoder_table7(paper):
    a = paper["appearance"](torch.randn(1, 3, 256, 128))
    assert a.code.shape == (1, 2048, 4, 1)
    assert a.f_prim.shape == a.f_fine.shape == (1, 512)
    assert a.logits_prim.shape == a.logits_fine.shape == (1, PAPER_K)
    dec = paper["decoder"]
    assert dec.chunks == [2048] * 4  # the 8192-d code in four 2048 chunks
    mlp = dec.mlp_w[0].net
    assert [(m.in_features, m.out_features) for m in mlp if isinstance(m, nn.Linear)] == [
        (2048, 512), (512, 512), (512, 256)]
    structure = torch.randn(1, 128, 64, 32)
    x = structure
    for block, mw, mb, part in zip(dec.blocks, dec.mlp_w, dec.mlp_b, a.code.flatten(1).split(2048, 1)):
        x = block(x, mw(part), mb(part))
    assert x.shape == (1, 128, 64, 32)  # ResBlocks x4
    shapes, image = _shapes_through(dec.up, x)
    assert shapes == [(128, 128, 64), (64, 128, 64), (64, 256, 128), (32, 256, 128),
                      (32, 256, 128), (32, 256, 128), (3, 256, 128)]
    assert torch.equal(image, dec(structure, a.code))


@torch.no_grad()
def test_discriminator_table8(paper):
    dis = paper["discriminator"]
    image = torch.randn(1, 3, 256, 128)
    shapes, out = _shapes_through(dis.nets[0], image)
    assert shapes == [(32, 256, 128), (32, 256, 128), (32, 128, 64), (32, 128, 64), (64, 64, 32),
                      (64, 64, 32), (64, 64, 32), (64, 64, 32), (64, 64, 32), (1, 64, 32)]
    outs = dis(image)
    assert [tuple(o.shape) for o in outs] == [(1, 1, 64, 32), (1, 1, 32, 16), (1, 1, 16, 8)]
    assert torch.equal(outs[0], out)


def test_paper_summary_and_cli(capsys):
    rows = {r["name"]: r for r in model_summary(_paper_model(), 256, 128, PAPER_K)}
    assert rows["structure"]["outputs"]["code"] == [128, 64, 32]
    assert rows["appearance"]["outputs"]["code"] == [2048, 4, 1]
    assert rows["decoder"]["outputs"]["image"] == [3, 256, 128]
    assert rows["discriminator"]["outputs"]["scale0"] == [1, 64, 32]
    assert rows["teacher"]["outputs"]["logits"] == [PAPER_K]
    assert all(r["params"] > 0 for r in rows.values())
    assert cli.main(["model", "summary", "--config", "paper", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["num_classes"] == PAPER_K and (data["height"], data["width"]) == (256, 128)
    assert {r["name"]: r["params"] for r in data["networks"]} == {k: r["params"] for k, r in rows.items()}
    assert cli.main(["model", "summary", "--config", "micro", "--classes", "5"]) == 0
    text = capsys.readouterr().out
    assert "K = 5" in text and "decoder" in text


def test_summary_cli_reads_a_params_file(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(preset_dict("micro")))
    assert cli.main(["model", "summary", "--params", str(params), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["num_classes"] == 8 - 2  # synthetic train ids less the held-out validation ids
    assert (data["height"], data["width"]) == (32, 16)
    assert cli.main(["model", "summary", "--params", str(tmp_path / "absent.yaml")]) == 2


# ---------------------------------------------------------------- CPU configurations


@pytest.mark.parametrize("name", ["default", "micro"])
def test_cpu_configs_run_forward_and_backward(name):
    torch.manual_seed(0)
    cfg = replace(preset_config(name), **{"model.backbone.pretrained": "none"})  # the pretrain stage's file
    h, w, k = cfg.data.height, cfg.data.width, 5
    nets = build_dgnet(cfg.model, k)
    teacher = build_teacher(cfg.model, k)
    x = torch.randn(2, 3, h, w)
    labels = torch.tensor([0, 3])
    a = nets["appearance"](x)
    s = nets["structure"](to_gray(x))
    assert s.shape == (2, cfg.model.structure.code_channels, h // 4, w // 4)
    fake = nets["decoder"](s, a.code.detach())
    assert fake.shape == x.shape
    real = x.clone().requires_grad_()
    d_real = nets["discriminator"](real)
    assert len(d_real) == cfg.model.discriminator.scales
    assert d_real[0].shape == (2, 1, h // 4, w // 4)
    d_loss = (losses.lsgan_dis_loss(d_real, nets["discriminator"](fake.detach()))
              + 0.01 * losses.r1_penalty(d_real, real))
    g_loss = (losses.recon_l1(fake, x) + losses.lsgan_gen_loss(nets["discriminator"](fake))
              + losses.id_loss(a.logits_prim, labels) + losses.id_loss(a.logits_fine, labels))
    t = teacher(x)
    t_loss = losses.id_loss(t.logits, labels)
    (d_loss + g_loss + t_loss).backward()
    for net in [*nets.values(), teacher]:
        grads = [p.grad for p in net.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), type(net).__name__
        assert all(torch.isfinite(g).all() for g in grads if g is not None)


def test_small_backbone_strides():
    base = dataclasses.replace(preset_config("default").model.backbone, pretrained="none")
    trunk = build_backbone(base)
    assert trunk.out_channels == base.small_widths[-1]
    assert trunk(torch.randn(2, 3, 64, 32)).shape == (2, 256, 8, 4)
    trunk2 = build_backbone(dataclasses.replace(base, last_stride=2))
    assert trunk2(torch.randn(2, 3, 64, 32)).shape == (2, 256, 4, 2)


def test_resnet18_last_stride_one():
    cfg = dataclasses.replace(preset_config("default").model.backbone, arch="resnet18", last_stride=1,
                              pretrained="none")
    trunk = build_backbone(cfg)
    assert trunk.out_channels == 512
    with torch.no_grad():
        assert trunk.eval()(torch.randn(1, 3, 64, 32)).shape == (1, 512, 4, 2)


def test_appearance_encoder_outputs_and_parameter_groups():
    torch.manual_seed(0)
    model = preset_config("micro").model
    enc = AppearanceEncoder(model.backbone, model.head, num_classes=4)
    x = torch.randn(4, 3, 32, 16)
    out1, out2 = enc(x), enc(x)
    # f_prim / f_fine are taken after BN, before dropout: dropout changes only the logits
    assert torch.equal(out1.f_prim, out2.f_prim) and torch.equal(out1.f_fine, out2.f_fine)
    assert not torch.equal(out1.logits_fine, out2.logits_fine)
    fmap = enc.backbone(x)
    assert torch.equal(out1.code, torch.nn.functional.adaptive_max_pool2d(fmap, (4, 1)))
    assert enc.code_channels == model.backbone.small_widths[-1]
    ids = [id(p) for p in enc.backbone_parameters()] + [id(p) for p in enc.head_parameters()]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in enc.parameters()}


def test_teacher_parameter_groups():
    model = preset_config("micro").model
    teacher = build_teacher(model, 3)
    ids = [id(p) for p in teacher.backbone_parameters()] + [id(p) for p in teacher.head_parameters()]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in teacher.parameters()}
    assert teacher.head.dropout.p == model.head.dropout_prim


def test_discriminator_has_no_norm_and_gaussian_init():
    dis = Discriminator(preset_config("default").model.discriminator)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in dis.modules())
    weights = torch.cat([m.weight.flatten() for m in dis.modules() if isinstance(m, nn.Conv2d)])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert weights.mean().abs().item() < 0.002


def test_gradient_flow_code_is_not_detached_by_the_models():
    torch.manual_seed(0)
    model = preset_config("micro").model
    nets = build_dgnet(model, 4)
    enc, dec, struct = nets["appearance"], nets["decoder"], nets["structure"]
    x = torch.randn(2, 3, 32, 16)
    a = enc(x)
    assert a.code.grad_fn is not None  # the model leaves the choice to the training loop
    # detached code: decoder losses reach G and E_s, never E_a
    dec(struct(to_gray(x)), a.code.detach()).abs().mean().backward()
    assert all(p.grad is None for p in enc.parameters())
    assert any(p.grad is not None for p in dec.parameters())
    assert any(p.grad is not None for p in struct.parameters())
    # not detached: nothing in G blocks the path into E_a
    dec(struct(to_gray(x)), enc(x).code).abs().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.backbone_parameters())


def test_decoder_takes_the_code_as_an_argument_per_sample():
    torch.manual_seed(0)
    model = preset_config("micro").model
    dec = Decoder(model.decoder, 16, 32, 4).eval()
    s = torch.randn(2, 16, 8, 4)
    code = torch.randn(2, 32, 4, 1)
    other = code.clone()
    other[1] = torch.randn(32, 4, 1)
    with torch.no_grad():
        y1, y2 = dec(s, code), dec(s, other)
        flat = dec(s, code.flatten(1))
    assert torch.allclose(y1[0], y2[0]) and not torch.allclose(y1[1], y2[1])
    assert torch.equal(y1, flat)
    with pytest.raises(ValueError, match="expects 128"):
        dec(s, torch.randn(2, 16, 4, 1))


def test_decoder_uneven_chunks():
    model = preset_config("micro").model
    dec = Decoder(dataclasses.replace(model.decoder, res_blocks=3), 16, 25, 2)
    assert dec.chunks == [17, 17, 16]
    assert dec(torch.randn(2, 16, 8, 4), torch.randn(2, 25, 2, 1)).shape == (2, 3, 32, 16)


def test_to_gray_is_the_channel_mean():
    x = torch.randn(2, 3, 4, 2)
    assert torch.allclose(to_gray(x), (x[:, :1] + x[:, 1:2] + x[:, 2:]) / 3)


def test_pad2d_reflects_when_it_fits_and_replicates_otherwise():
    x = torch.arange(8.0).view(1, 1, 2, 4)
    assert torch.equal(pad2d(x, 1, "reflect"), torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"))
    assert torch.equal(pad2d(x, 3, "reflect"), torch.nn.functional.pad(x, (3, 3, 3, 3), mode="replicate"))
    assert pad2d(x, 2, "zero")[0, 0, 0, 0] == 0


def test_config_consistency_errors():
    model = preset_config("micro").model
    with pytest.raises(ConfigError, match="model.structure.widths"):
        StructureEncoder(dataclasses.replace(model.structure, widths=(8,)))
    with pytest.raises(ConfigError, match="model.decoder.up_widths"):
        build_dgnet(replace(model, **{"decoder.up_widths": (8,)}), 3)
    with pytest.raises(ConfigError, match="small_widths"):
        build_backbone(dataclasses.replace(model.backbone, small_widths=(8, 8)))


# ---------------------------------------------------------------- pretrained weights


def _resnet18_cfg(pretrained):
    return dataclasses.replace(preset_config("default").model.backbone, arch="resnet18", pretrained=pretrained)


def test_imagenet_weights_load_from_the_hub_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert torch.hub.get_dir() == str(tmp_path / "hub")
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(123)
    saved = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(saved, folder / IMAGENET_FILES["resnet18"])
    trunk = build_backbone(_resnet18_cfg("imagenet"))
    loaded = trunk.state_dict()
    assert set(loaded) == {k for k in saved if not k.startswith("fc.")}
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)


def test_missing_imagenet_file_names_file_folder_and_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError) as err:
        build_backbone(_resnet18_cfg("imagenet"))
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "weights='IMAGENET1K_V1'" in message and "never downloads" in message
    with pytest.raises(UserError, match="resnet50-0676ba61.pth"):
        build_backbone(preset_config("paper").model.backbone)


def test_imagenet_for_the_small_trunk_is_a_config_error():
    with pytest.raises(ConfigError, match="model.backbone.pretrained"):
        build_backbone(dataclasses.replace(preset_config("default").model.backbone, pretrained="imagenet"))


def test_weights_from_a_path_and_mismatch_errors(tmp_path):
    cfg = preset_config("micro").model.backbone
    torch.manual_seed(5)
    source = build_backbone(cfg)
    path = tmp_path / "trunk.pth"
    torch.save(source.state_dict(), path)
    loaded = build_backbone(dataclasses.replace(cfg, pretrained=str(path)))
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in loaded.state_dict().items())
    # a file for another trunk: missing and unexpected keys, named
    other = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), other)
    with pytest.raises(UserError, match="do not fit.*(missing|unexpected) keys"):
        build_backbone(dataclasses.replace(cfg, pretrained=str(other)))
    # same keys, other widths: shape mismatch, named
    wider = build_backbone(dataclasses.replace(cfg, small_widths=(8, 16, 16, 64)))
    torch.save(wider.state_dict(), other)
    with pytest.raises(UserError, match="shape mismatches"):
        build_backbone(dataclasses.replace(cfg, pretrained=str(other)))
    with pytest.raises(UserError, match="not found"):
        build_backbone(dataclasses.replace(cfg, pretrained=str(tmp_path / "absent.pth")))
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(UserError, match="not a readable weights file"):
        build_backbone(dataclasses.replace(cfg, pretrained=str(tmp_path / "junk.pth")))


# ---------------------------------------------------------------- checkpoints -> embedder


def _checkpoint(kind, models, cfg, k):
    return {"format": "dgnet-checkpoint-v1", "kind": kind, "config": config_to_dict(cfg),
            "num_classes": k, "iteration": 7, "models": {n: m.state_dict() for n, m in models.items()}}


def test_load_embedder_teacher_and_dgnet(tmp_path):
    torch.manual_seed(0)
    cfg = preset_config("micro")
    x = torch.randn(3, 3, 32, 16)
    teacher = build_teacher(cfg.model, 6)
    teacher(torch.randn(4, 3, 32, 16))  # move BN statistics away from their defaults
    save_checkpoint(tmp_path / "teacher.pt", _checkpoint("teacher", {"teacher": teacher}, cfg, 6))
    embed, config = load_embedder(tmp_path / "teacher.pt", "cpu")
    assert config["name"] == "micro"
    out = embed(x)
    assert set(out) == {"baseline"}
    with torch.no_grad():
        assert torch.allclose(out["baseline"], teacher.eval()(x).feature)
    assert not out["baseline"].requires_grad

    nets = build_dgnet(cfg.model, 6)
    nets["appearance"](torch.randn(4, 3, 32, 16))
    save_checkpoint(tmp_path / "dgnet.pt", _checkpoint("dgnet", nets, cfg, 6))
    embed, _ = load_embedder(tmp_path / "dgnet.pt", torch.device("cpu"))
    out = embed(x)
    assert set(out) == {"f_prim", "f_fine"}
    with torch.no_grad():
        ref = nets["appearance"].eval()(x)
    assert torch.allclose(out["f_prim"], ref.f_prim) and torch.allclose(out["f_fine"], ref.f_fine)


def test_load_embedder_errors_name_the_file(tmp_path):
    cfg = preset_config("micro")
    teacher = build_teacher(cfg.model, 6)
    bad_format = _checkpoint("teacher", {"teacher": teacher}, cfg, 6) | {"format": "other"}
    save_checkpoint(tmp_path / "a.pt", bad_format)
    with pytest.raises(UserError, match=r"a\.pt.*not a dgnet checkpoint"):
        load_embedder(tmp_path / "a.pt", "cpu")
    save_checkpoint(tmp_path / "b.pt", _checkpoint("student", {"teacher": teacher}, cfg, 6))
    with pytest.raises(UserError, match=r"b\.pt.*unknown checkpoint kind"):
        load_embedder(tmp_path / "b.pt", "cpu")
    save_checkpoint(tmp_path / "c.pt", _checkpoint("teacher", {"teacher": teacher}, cfg, 9))
    with pytest.raises(UserError, match=r"c\.pt.*do not fit"):
        load_embedder(tmp_path / "c.pt", "cpu")
    with pytest.raises(UserError, match=r"d\.pt.*not found"):
        load_embedder(tmp_path / "d.pt", "cpu")
