"""Feature extraction, DG-Net's combined feature, multi-query, re-ranking,
the rank-list figure, evaluate_model and the ``dgnet evaluate`` command."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dgnet.config import EvalConfig, config_from_dict, config_to_dict, preset_dict, replace
from dgnet.eval import (
    combine_features,
    dgnet_feature,
    evaluate_features,
    evaluate_model,
    extract_features,
    multi_query_features,
    re_rank,
)
from dgnet.reports.rank_list import rank_list_figure


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, images, pids, camids):
        self.images, self.pids, self.camids = images, pids, camids

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "pid": self.pids[i], "camid": self.camids[i], "index": i}


def first_row(images):
    """A toy embedder that is not flip-invariant: the first row of channel 0."""
    return {"row": images[:, 0, 0, :], "twice": 2 * images[:, 0, 0, :]}


# ---------------------------------------------------------------- extraction


def test_extract_features_sums_normalised_image_and_flip():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(5, 3, 4, 6, generator=gen)
    ds = ListDataset(images, [1, 2, 3, 4, 5], [0, 1, 0, 1, 0])
    feats, pids, camids = extract_features(first_row, ds, batch_size=2, device="cpu", progress=False)
    row = images[:, 0, 0, :]
    want = F.normalize(F.normalize(row, dim=1) + F.normalize(row.flip(1), dim=1), dim=1)
    torch.testing.assert_close(feats["row"], want)
    torch.testing.assert_close(feats["twice"], want)  # scale-free
    assert pids.tolist() == [1, 2, 3, 4, 5] and camids.tolist() == [0, 1, 0, 1, 0]
    assert pids.dtype == np.int64
    # batching does not matter
    again, _, _ = extract_features(first_row, ds, batch_size=5, device="cpu", progress=False)
    torch.testing.assert_close(again["row"], feats["row"])


def test_extract_features_rejects_an_empty_set():
    with pytest.raises(ValueError, match="empty"):
        extract_features(first_row, ListDataset([], [], []), 4, "cpu", progress=False)


# ---------------------------------------------------------------- combined feature, multi-query


def test_combine_features_is_not_renormalised():
    p = F.normalize(torch.tensor([[3.0, 4.0]]), dim=1)
    f = F.normalize(torch.tensor([[1.0, 0.0]]), dim=1)
    c = combine_features(p, f, 0.5)
    torch.testing.assert_close(c, torch.tensor([[0.6, 0.8, 0.5, 0.0]]))
    assert c.norm().item() == pytest.approx((1 + 0.25) ** 0.5)


def test_dgnet_feature_scores_like_the_reference():
    # the reference scales only the query's f_fine by beta: s = s_prim + beta * s_fine
    gen = torch.Generator().manual_seed(1)
    q = {k: F.normalize(torch.randn(4, 8, generator=gen), dim=1) for k in ("f_prim", "f_fine")}
    g = {k: F.normalize(torch.randn(6, 8, generator=gen), dim=1) for k in ("f_prim", "f_fine")}
    make = dgnet_feature(0.5)
    ours = make(q) @ make(g).T
    reference = combine_features(q["f_prim"], q["f_fine"], 0.5) @ torch.cat([g["f_prim"], g["f_fine"]], 1).T
    torch.testing.assert_close(ours, reference)


def test_multi_query_features_mean_of_same_pid_and_camera():
    q = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=1)
    mq = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [0.0, 3.0]])
    # query 0 (pid 1, cam 0) <- mq 0 and 1; query 1 (pid 2, cam 1) <- mq 3; query 2: none (keeps its own)
    out = multi_query_features(q, [1, 2, 3], [0, 1, 0], mq, [1, 1, 2, 2], [0, 0, 0, 1])
    s = 0.5**0.5
    torch.testing.assert_close(out, torch.tensor([[s, s], [0.0, 1.0], [s, s]]))


# ---------------------------------------------------------------- re-ranking


def rerank_loop(q_g, q_q, g_g, k1, k2, lam):
    """A plain per-image port of the authors' algorithm (stable sorts), for comparison."""
    d = np.concatenate([np.concatenate([q_q, q_g], 1), np.concatenate([q_g.T, g_g], 1)], 0)
    d = np.transpose(d / np.max(d, axis=0)).astype(np.float32)
    n, nq = len(d), len(q_q)
    rank = np.argsort(d, axis=1, kind="stable")

    def reciprocal(i, k):
        return np.array([j for j in rank[i, : k + 1] if i in rank[j, : k + 1]])

    V = np.zeros_like(d)
    half = int(np.around(k1 / 2))
    for i in range(n):
        R = reciprocal(i, k1)
        members = list(R)
        for c in R:
            Rc = reciprocal(c, half)
            if len(np.intersect1d(Rc, R)) > 2 / 3 * len(Rc):
                members += list(Rc)
        members = np.unique(members)
        w = np.exp(-d[i, members])
        V[i, members] = w / w.sum()
    if k2 != 1:
        V = np.stack([V[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.zeros((nq, n - nq))
    for i in range(nq):
        for j in range(nq, n):
            s = np.minimum(V[i], V[j]).sum()
            jac[i, j - nq] = 1 - s / (2 - s)
    return jac * (1 - lam) + d[:nq, nq:] * lam


def clustered(seed, ids=6, per_q=2, per_g=6, dim=16, noise=0.9):
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(ids, dim, generator=gen), dim=1)
    q_pids = torch.arange(ids).repeat_interleave(per_q) + 1
    g_pids = torch.arange(ids).repeat_interleave(per_g) + 1
    q = F.normalize(centres[q_pids - 1] + noise * torch.randn(len(q_pids), dim, generator=gen) / dim**0.5, dim=1)
    g = F.normalize(centres[g_pids - 1] + noise * torch.randn(len(g_pids), dim, generator=gen) / dim**0.5, dim=1)
    return q, g, q_pids.numpy(), g_pids.numpy(), np.zeros(len(q_pids), int), np.ones(len(g_pids), int)


def distances(q, g):
    return (2 - 2 * q @ g.T).numpy(), (2 - 2 * q @ q.T).numpy(), (2 - 2 * g @ g.T).numpy()


@pytest.mark.parametrize("k1, k2", [(20, 6), (5, 3), (4, 1)])
def test_re_rank_matches_a_per_image_port(k1, k2):
    q, g, *_ = clustered(0)
    qg, qq, gg = distances(q, g)
    got = re_rank(qg, qq, gg, k1=k1, k2=k2, lambda_value=0.3)
    assert got.shape == (12, 36) and isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, rerank_loop(qg, qq, gg, k1, k2, 0.3), atol=2e-5)


def test_re_rank_is_deterministic_keeps_type_and_improves_map():
    q, g, qp, gp, qc, gc = clustered(3, ids=8, per_q=3, per_g=8, noise=1.4)
    qg, qq, gg = distances(q, g)
    first = re_rank(torch.from_numpy(qg), torch.from_numpy(qq), torch.from_numpy(gg))
    second = re_rank(torch.from_numpy(qg), torch.from_numpy(qq), torch.from_numpy(gg))
    assert torch.is_tensor(first) and torch.equal(first, second)
    from dgnet.eval import evaluate_ranking

    _, plain = evaluate_ranking(qg, qp, gp, qc, gc)
    _, reranked = evaluate_ranking(first, qp, gp, qc, gc)
    assert plain < 0.95  # not already perfect
    assert reranked >= plain


def test_re_rank_with_fewer_images_than_neighbours_and_bad_shapes():
    q, g, *_ = clustered(1, ids=2, per_q=1, per_g=3)
    qg, qq, gg = distances(q, g)
    got = re_rank(qg, qq, gg)  # 8 images, k1 = 20
    np.testing.assert_allclose(got, rerank_loop(qg, qq, gg, 20, 6, 0.3), atol=2e-5)
    with pytest.raises(ValueError, match="shapes"):
        re_rank(qg, gg, qq)


# ---------------------------------------------------------------- rank list figure


def write_image(path: Path, colour, size=(16, 32), seed=0):
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 8, (size[1], size[0], 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path


def test_rank_list_figure_written(tmp_path):
    paths = [write_image(tmp_path / f"img{i}.png", (20 * i, 100, 200 - 20 * i), seed=i) for i in range(8)]
    out = tmp_path / "figs" / "rank.png"
    ranked = np.array([[1, 2, 3, 4], [5, 6, 7, -1]])
    matches = np.array([[True, False, True, False], [False, False, True, False]])
    rank_list_figure(paths[:2], paths, ranked, matches, out, k=4)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > im.height
    assert [p.name for p in out.parent.iterdir()] == ["rank.png"]  # no temporary left over
    with pytest.raises(ValueError, match="queries"):
        rank_list_figure(paths[:1], paths, ranked, matches, out)


# ---------------------------------------------------------------- evaluate_model


COLOURS = {1: (220, 30, 30), 2: (30, 220, 30), 3: (30, 30, 220), 4: (220, 220, 30)}


def colour_embed(images):
    """Mean colour (f_prim) and mean colour of the top half (f_fine): identities separate."""
    return {"f_prim": images.mean(dim=(2, 3)), "f_fine": images[:, :, : images.shape[2] // 2].mean(dim=(2, 3))}


def colour_set(pids, camids, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = []
    for pid in pids:
        colour = torch.tensor(COLOURS.get(pid, (128, 128, 128)), dtype=torch.float32)[:, None, None] / 255
        images.append(colour + 0.05 * torch.randn(3, 8, 4, generator=gen))
    return ListDataset(images, list(pids), list(camids))


def test_evaluate_model_default_sets_rerank_and_multi_query():
    query = colour_set([1, 2, 3, 4], [0, 0, 1, 1])
    gallery = colour_set([1, 1, 2, 2, 3, 3, 4, 4, 0, -1], [1, 0, 1, 2, 0, 2, 0, 0, 1, 1], seed=1)
    multi = colour_set([1, 1, 2, 3], [0, 0, 0, 1], seed=2)
    cfg = EvalConfig(batch_size=3, max_rank=5)
    out = evaluate_model(colour_embed, query, gallery, cfg, "cpu", progress=False)
    swept = evaluate_model(colour_embed, query, gallery, cfg, "cpu", progress=False,
                           feature_sets={"beta=2": dgnet_feature(2.0)})
    assert swept["metrics"]["beta=2"]["beta"] == 2.0
    assert list(out["metrics"]) == ["f_prim", "f_fine", "f_prim+f_fine"]
    m = out["metrics"]["f_prim+f_fine"]
    assert m["rank1"] == 1.0 and m["mAP"] == 1.0
    assert (m["num_queries"], m["num_evaluated"], m["num_skipped"]) == (4, 4, 0)
    assert m["beta"] == 0.5 and out["metrics"]["f_prim"]["beta"] is None
    assert m["ap"] == "trapezoid" and m["rerank"] is False
    assert out["features"]["f_prim+f_fine"]["query"].shape == (4, 6)
    assert out["gallery"]["pids"].tolist()[-2:] == [0, -1]
    # the features returned are the ones scored
    f = out["features"]["f_prim"]
    cmc, mAP = evaluate_features(f["query"], f["gallery"], out["query"]["pids"], out["gallery"]["pids"],
                                 out["query"]["camids"], out["gallery"]["camids"], 5)
    assert cmc[0] == out["metrics"]["f_prim"]["rank1"] and mAP == out["metrics"]["f_prim"]["mAP"]

    both = replace(cfg, rerank=True, multi_query=True)
    out = evaluate_model(colour_embed, query, gallery, both, "cpu", multi_query_dataset=multi,
                         feature_sets={"prim": lambda f: f["f_prim"]}, progress=False)
    assert list(out["metrics"]) == ["prim"] and out["metrics"]["prim"]["rerank"] is True
    assert out["metrics"]["prim"]["beta"] is None
    assert out["features"]["prim"]["distmat"].shape == (4, 10)
    assert out["metrics"]["prim"]["rank1"] == 1.0
    with pytest.raises(ValueError, match="multi-query"):
        evaluate_model(colour_embed, query, gallery, both, "cpu", progress=False)


# ---------------------------------------------------------------- dgnet evaluate


def write_market_tree(root: Path):
    """A tiny Market-1501-layout tree of coloured images (gt_bbox included)."""
    n = 0

    def put(folder, pid, cam):
        nonlocal n
        n += 1
        name = f"{pid:04d}_c{cam}s1_{n:06d}_00.png" if pid >= 0 else f"-1_c{cam}s1_{n:06d}_00.png"
        write_image(root / folder / name, COLOURS.get(pid, (128, 128, 128)), seed=n)

    for pid in (1, 2):
        put("bounding_box_train", pid, 1)
    for pid in COLOURS:
        for cam in (1, 2):
            put("query", pid, cam)
            put("gt_bbox", pid, cam)
            put("gt_bbox", pid, cam)
        for cam in (1, 2, 3):
            put("bounding_box_test", pid, cam)
    put("bounding_box_test", 0, 1)
    put("bounding_box_test", -1, 2)
    return root


@pytest.fixture
def fake_embedder(monkeypatch):
    import dgnet.models

    config = config_to_dict(config_from_dict(preset_dict("micro")))  # 32 x 16 images

    def load_embedder(path, device):
        assert Path(path).name == "fake.pt"
        return colour_embed, config

    monkeypatch.setattr(dgnet.models, "load_embedder", load_embedder)


def test_cli_evaluate_writes_metrics_and_figure(tmp_path, fake_embedder, capsys):
    from dgnet.cli import main

    root = write_market_tree(tmp_path / "market")
    out, fig = tmp_path / "m" / "metrics.json", tmp_path / "f" / "rank_list.png"
    code = main(["evaluate", "--checkpoint", str(tmp_path / "fake.pt"), "--data-root", str(root),
                 "--layout", "market1501", "--beta", "1.0", "--ap", "standard", "--rerank",
                 "--multi-query", "--out", str(out), "--figure", str(fig), "--device", "cpu", "--quiet"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert set(doc["features"]) == {"f_prim", "f_fine", "f_prim+f_fine"}
    m = doc["features"]["f_prim+f_fine"]
    assert m["rank1"] == 1.0 and m["beta"] == 1.0 and m["ap"] == "standard"
    assert m["rerank"] and m["multi_query"] and m["num_queries"] == 8
    assert doc["image_size"] == [32, 16] and doc["num_gallery_images"] == 14
    with Image.open(fig) as im:
        assert im.format == "PNG"
    assert "f_prim+f_fine" in capsys.readouterr().out


def test_cli_evaluate_reports_a_missing_gt_bbox(tmp_path, fake_embedder, capsys):
    from dgnet.cli import main

    root = write_market_tree(tmp_path / "market")
    for p in (root / "gt_bbox").iterdir():
        p.unlink()
    (root / "gt_bbox").rmdir()
    code = main(["evaluate", "--checkpoint", str(tmp_path / "fake.pt"), "--data-root", str(root),
                 "--multi-query", "--quiet"])
    assert code == 2 and "gt_bbox" in capsys.readouterr().err


def test_cli_evaluate_real_teacher_checkpoint(tmp_path, micro_data, capsys):
    """End to end with a real (untrained) teacher checkpoint on the micro synthetic set."""
    from dgnet import io
    from dgnet.cli import main
    from dgnet.models import CHECKPOINT_FORMAT, build_teacher

    cfg = config_from_dict(preset_dict("micro"))
    torch.manual_seed(0)
    teacher = build_teacher(cfg.model, num_classes=8)
    ckpt = tmp_path / "teacher.pt"
    io.save_checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "kind": "teacher", "config": config_to_dict(cfg),
                              "num_classes": 8, "models": {"teacher": teacher.state_dict()}})
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data-root", str(micro_data), "--layout", "synthetic",
                 "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    doc = json.loads(out.read_text())
    assert list(doc["features"]) == ["baseline"]
    m = doc["features"]["baseline"]
    assert 0.0 <= m["mAP"] <= 1.0 and m["rank1"] <= m["rank5"] <= m["rank10"]
    assert m["num_evaluated"] + m["num_skipped"] == doc["num_query_images"]
