"""The joint step on tiny images: finite losses and the gradient routes, under both fidelity profiles."""

from __future__ import annotations

import pytest
import torch

from dgnet.config import replace
from dgnet.models import build_dgnet, build_teacher
from dgnet.train.batches import BatchSampler, dgnet_batch, iteration_generator
from dgnet.errors import DivergenceError
from dgnet.train.dgnet_step import check_finite, dis_step, gen_losses, gen_step, generate
from dgnet.fidelity import resolve
from dgnet.train.loop import build_optimizers
from dgnet.train.schedules import loss_weights

K = 6


def _setup(cfg, seed=0):
    torch.manual_seed(seed)
    nets = build_dgnet(cfg.model, K)
    teacher = build_teacher(cfg.model, K).eval()
    images = torch.randint(0, 256, (24, 3, cfg.data.height, cfg.data.width), dtype=torch.uint8)
    labels = torch.arange(24) % K
    sampler = BatchSampler(labels, cfg.train.batch_size, seed=0)
    batch = dgnet_batch(images, sampler, 0, pad=1, device=torch.device("cpu"))
    return nets, teacher, batch


def _grads(loss, module):
    if not loss.requires_grad:  # a logged loss that sends no gradient (the official L_code1)
        return 0.0
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return sum(float(g.abs().sum()) for g in grads if g is not None)


# which network each loss must (True) and must not (False) train, under both profiles
ROUTES = {
    "img1": {"appearance": False, "structure": True, "decoder": True},
    "img2": {"appearance": False, "structure": True, "decoder": True},
    "id_gen": {"appearance": False, "decoder": True},
    "id_real": {"appearance": True, "structure": False, "decoder": False},
    "adv": {"appearance": False, "decoder": True, "discriminator": False},
    "prim": {"appearance": True, "structure": False, "decoder": False},
    "fine": {"appearance": True, "structure": False, "decoder": False},
    "fine_real": {"appearance": True, "structure": False, "decoder": False},
}


# the routes where the profiles differ: the official L_code1 is dead (its code is detached)
CODE1_ROUTES = {"reference": {"appearance": False, "structure": False, "decoder": False},
                "paper": {"appearance": False, "decoder": True}}
CYCLE_ROUTES = {"appearance": False, "decoder": True}


@pytest.mark.parametrize("fidelity", ["reference", "paper"])
def test_every_loss_is_finite_and_trains_only_its_networks(micro_cfg, fidelity):
    cfg = replace(micro_cfg, **{"train.fidelity": fidelity})
    sw = resolve(cfg)
    nets, teacher, batch = _setup(cfg)
    weights = loss_weights(10**6, cfg.train, sw)  # after warm-up: every loss on
    gen = generate(nets, batch, 0.5, torch.Generator().manual_seed(0), sw)
    losses = gen_losses(nets, teacher, batch, gen, weights, torch.Generator().manual_seed(0), sw)
    routes = {**ROUTES, "code1": CODE1_ROUTES[fidelity]}
    if fidelity == "reference":
        routes["cycle"] = CYCLE_ROUTES
    else:
        assert "cycle" not in losses
    assert set(routes) <= set(losses)
    for name, value in losses.items():
        assert torch.isfinite(value), name
    for name, net_routes in routes.items():
        for net, should in net_routes.items():
            got = _grads(losses[name], nets[net])
            assert (got > 0) == should, f"{name} -> {net}: gradient {got}"
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("seed", [0, 1])  # the coin picks the E_s route or the G route
def test_code2_trains_structure_or_decoder(micro_cfg, seed):
    nets, teacher, batch = _setup(micro_cfg)
    sw = resolve(micro_cfg)
    gen = generate(nets, batch, 0.5, torch.Generator().manual_seed(0), sw)
    weights = loss_weights(0, micro_cfg.train)
    losses = gen_losses(nets, teacher, batch, gen, weights, torch.Generator().manual_seed(seed), sw)
    assert _grads(losses["code2"], nets["appearance"]) == 0
    assert _grads(losses["code2"], nets["structure"]) > 0  # via s_j (target detached) or re-encoding


def test_warm_up_and_ablations_switch_losses_off(micro_cfg):
    nets, teacher, batch = _setup(micro_cfg)
    sw = resolve(micro_cfg)
    gen = generate(nets, batch, 0.5, torch.Generator().manual_seed(0), sw)
    g = torch.Generator().manual_seed(0)
    before = gen_losses(nets, teacher, batch, gen, loss_weights(0, micro_cfg.train), g, sw)
    assert "prim" not in before and "fine" not in before and "id_gen" in before
    no_feed = replace(micro_cfg, **{"train.feed_generated": False}).train
    losses = gen_losses(nets, teacher, batch, gen, loss_weights(10**6, no_feed), g, sw)
    assert "prim" not in losses and "fine" not in losses and "id_gen" in losses
    no_id = replace(micro_cfg, **{"train.id_supervision": False}).train
    losses = gen_losses(nets, teacher, batch, gen, loss_weights(10**6, no_id), g, sw)
    assert not {"prim", "fine", "fine_real", "id_gen"} & set(losses)


def test_one_full_iteration_updates_every_trained_network(micro_cfg):
    nets, teacher, batch = _setup(micro_cfg)
    opts = build_optimizers(micro_cfg, nets)
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in nets.items()}
    g = iteration_generator(0, 0)
    sw = resolve(micro_cfg)
    gen = generate(nets, batch, 0.5, g, sw)
    d = dis_step(nets["discriminator"], opts["discriminator"], batch.images, gen.cross, 0.01, sw.groups)
    losses = gen_step(nets, teacher, opts["generator"], opts["appearance"], batch, gen,
                      loss_weights(10**6, micro_cfg.train), g, sw)
    assert torch.isfinite(d["d_total"]) and torch.isfinite(losses["total"])
    for name, net in nets.items():
        changed = any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters()))
        assert changed, name


def test_generations_depend_on_both_codes(micro_cfg):
    nets, _, batch = _setup(micro_cfg)
    gen = generate(nets, batch, 0.0, torch.Generator().manual_seed(0), resolve(micro_cfg))
    assert gen.cross.shape == batch.images.shape
    assert not torch.allclose(gen.recon, gen.cross)  # another structure
    assert not torch.allclose(gen.recon, gen.recon_pos)  # another appearance code


def test_non_finite_loss_is_named():
    with pytest.raises(DivergenceError, match="'adv' is nan"):
        check_finite({"img1": torch.tensor(1.0), "adv": torch.tensor(float("nan"))})
