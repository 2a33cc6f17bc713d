"""Datasets, image cache, transforms, cross-identity pairing and the validation split."""

from __future__ import annotations


import pytest
import torch

from dgnet.config import SynthConfig
from dgnet.data.dataset import (
    ImageCache,
    ReidTestDataset,
    ReidTrainDataset,
    cross_identity_partners,
    decode_image,
    scaled_pad,
)
from dgnet.data.layouts import DataLayoutError, Sample, load_layout, relabel
from dgnet.data.splits import split_validation
from dgnet.data.synth import write_synthetic
from dgnet.data.transforms import (
    denormalize,
    normalize,
    pad_and_crop,
    random_erasing,
    random_flip,
)
from dgnet.errors import UserError

H, W = 32, 16


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "synth"
    write_synthetic(root, SynthConfig(train_ids=6, test_ids=3, distractors=2, junk=1,
                                      images_per_camera=2, cameras=3, seed=3, height=40, width=20))
    return load_layout("synthetic", root)


# ---------------------------------------------------------------- datasets


def test_train_dataset_item_shapes_and_pairs(splits):
    train, mapping = relabel(splits.train)
    ds = ReidTrainDataset(train, H, W, pad=10, cache=True, seed=0, progress=False)
    assert len(ds) == len(train) and ds.num_classes == len(mapping) == 6
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (3, H, W) and item["image"].dtype == torch.float32
        assert item["pair_image"].shape == (3, H, W)
        assert item["index"] == i and item["pid"] == train[i].pid and item["camid"] == train[i].camid
        j = item["pair_index"]
        assert train[j].pid == train[i].pid and j != i  # every synthetic id has several images
    assert ds.pad == scaled_pad(10, H) == 1


def test_train_dataset_is_seeded(splits):
    train, _ = relabel(splits.train)
    a = ReidTrainDataset(train, H, W, pad=10, cache=True, seed=5, progress=False)
    b = ReidTrainDataset(train, H, W, pad=10, cache=False, seed=5, progress=False)
    c = ReidTrainDataset(train, H, W, pad=10, cache=True, seed=6, progress=False)
    items_a = [a[i] for i in range(6)]
    items_b = [b[i] for i in range(6)]
    items_c = [c[i] for i in range(6)]
    for x, y in zip(items_a, items_b):
        assert torch.equal(x["image"], y["image"]) and x["pair_index"] == y["pair_index"]
    assert any(not torch.equal(x["image"], z["image"]) for x, z in zip(items_a, items_c))


def test_train_dataset_single_image_id_pairs_with_itself(tmp_path):
    from PIL import Image

    paths = []
    for k in range(3):
        p = tmp_path / f"{k}.jpg"
        Image.new("RGB", (8, 16), (k * 80, 20, 20)).save(p)
        paths.append(str(p))
    samples = [Sample(paths[0], 0, 0), Sample(paths[1], 1, 0), Sample(paths[2], 1, 1)]
    ds = ReidTrainDataset(samples, 16, 8, pad=0, cache=False, seed=0)
    assert ds[0]["pair_index"] == 0 and ds[1]["pair_index"] == 2 and ds[2]["pair_index"] == 1


def test_train_dataset_requires_relabelled_pids(splits):
    with pytest.raises(ValueError, match="relabel"):
        ReidTrainDataset(splits.train, H, W, pad=10, cache=False)


def test_test_dataset_no_augmentation_cache_equals_decode(splits):
    cached = ReidTestDataset(splits.gallery, H, W, cache=True, progress=False)
    direct = ReidTestDataset(splits.gallery, H, W, cache=False)
    for i in (0, len(cached) - 1):
        x, y = cached[i], direct[i]
        assert torch.equal(x["image"], y["image"]) and x["image"].shape == (3, H, W)
        assert (x["pid"], x["camid"], x["index"]) == (splits.gallery[i].pid, splits.gallery[i].camid, i)
    assert torch.equal(cached[0]["image"], cached[0]["image"])
    assert {cached[i]["pid"] for i in range(len(cached))} >= {0, -1}


def test_image_cache_resizes_and_names_corrupt_files(splits, tmp_path):
    paths = [s.path for s in splits.query]
    cache = ImageCache(paths, H, W, progress=False, threads=2)
    assert cache.images.shape == (len(paths), 3, H, W) and cache.images.dtype == torch.uint8
    assert torch.equal(cache[1], decode_image(paths[1], H, W))
    bad = tmp_path / "0001_c1s1_000001_01.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataLayoutError, match=r"0001_c1s1_000001_01.jpg: unreadable or corrupt image"):
        ImageCache(paths + [str(bad)], H, W, progress=False)


def test_scaled_pad():
    assert scaled_pad(10, 256) == 10 and scaled_pad(10, 128) == 5
    assert scaled_pad(10, 64) == 3 and scaled_pad(10, 16) == 1 and scaled_pad(0, 64) == 0


# ---------------------------------------------------------------- transforms


def _batch(b=4, h=12, w=6, seed=0):
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_normalize_roundtrip_and_type():
    x = _batch()
    n = normalize(x)
    assert n.dtype == torch.float32 and abs(float(normalize(torch.full((1, 3, 2, 2), 124, dtype=torch.uint8))[0, 0].mean())) < 0.02
    assert torch.allclose(denormalize(n) * 255, x.float(), atol=1e-3)
    assert normalize(x[0]).shape == (3, 12, 6)
    with pytest.raises(TypeError):
        normalize(x.float())


def test_random_flip():
    x = _batch()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_flip(x, g, p=1.0), x.flip(-1))
    assert torch.equal(random_flip(x, g, p=0.0), x)
    mixed = random_flip(x, torch.Generator().manual_seed(1))
    for i in range(4):
        assert torch.equal(mixed[i], x[i]) or torch.equal(mixed[i], x[i].flip(-1))


def test_pad_and_crop_shape_content_and_determinism():
    x = _batch(b=8)
    a = pad_and_crop(x, 3, torch.Generator().manual_seed(4))
    b = pad_and_crop(x, 3, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)  # 8 random offsets in 7x7 are not all the centre
    assert torch.equal(pad_and_crop(x, 0, torch.Generator()), x)
    # every crop is a shifted copy: some interior pixel of the original is still present
    for i in range(8):
        assert (a[i] == 0).all(0).sum() <= (2 * 3) * (12 + 6)


def test_random_erasing():
    x = normalize(_batch(b=16, h=32, w=16))
    assert torch.equal(random_erasing(x, 0.0, torch.Generator().manual_seed(0)), x)
    out = random_erasing(x, 1.0, torch.Generator().manual_seed(0))
    again = random_erasing(x, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    for i in range(16):
        erased = (out[i] != x[i]).any(0)
        frac = erased.float().mean().item()
        assert 0.0 < frac <= 0.45  # area 2-40 % (+ rounding)
        assert (out[i][:, erased] == 0).all()
        rows, cols = erased.nonzero(as_tuple=True)  # one rectangle
        assert erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


# ---------------------------------------------------------------- cross-identity partners


def test_cross_identity_partners():
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    for seed in range(20):
        j = cross_identity_partners(pids, torch.Generator().manual_seed(seed))
        assert sorted(j.tolist()) == list(range(8))
        assert (pids[j] != pids).all()
    same = cross_identity_partners(torch.tensor([4, 4, 4]), torch.Generator().manual_seed(0))
    assert sorted(same.tolist()) == [0, 1, 2]
    skewed = torch.tensor([0, 0, 0, 0, 0, 1, 2])  # at most 4 positions can be fixed
    j = cross_identity_partners(skewed, torch.Generator().manual_seed(1))
    assert sorted(j.tolist()) == list(range(7)) and (skewed[j] != skewed).sum() == 4


# ---------------------------------------------------------------- validation split


def _train_samples():
    samples = []
    for pid in range(1, 13):
        cams = [0] if pid == 5 else list(range(pid % 4 + 2))
        for cam in cams:
            for k in range(1 + (pid + cam) % 3):
                samples.append(Sample(f"{pid}_{cam}_{k}.jpg", pid, cam))
    return samples


def test_split_validation_deterministic_disjoint_and_valid():
    train = _train_samples()
    a = split_validation(train, 5, seed=0)
    assert a == split_validation(train, 5, seed=0)
    assert a != split_validation(train, 5, seed=1)
    part, query, gallery = a
    paths = [s.path for s in part + query + gallery]
    assert sorted(paths) == sorted(s.path for s in train) and len(set(paths)) == len(paths)
    held = {s.pid for s in query + gallery}
    assert len(held) == 5 and held.isdisjoint({s.pid for s in part})
    seen = set()
    for q in query:
        assert (q.pid, q.camid) not in seen  # at most one query per id and camera
        seen.add((q.pid, q.camid))
        assert any(g.pid == q.pid and g.camid != q.camid for g in gallery)
    assert query and all(isinstance(s, Sample) for s in query)


def test_split_validation_single_camera_id_goes_to_gallery():
    train = _train_samples()
    for seed in range(10):
        _, query, gallery = split_validation(train, 10, seed)
        if any(s.pid == 5 for s in gallery):
            assert not any(s.pid == 5 for s in query)
            break
    else:
        pytest.fail("pid 5 never held out")


def test_split_validation_one_image_per_camera_id():
    # two cameras, one image each: only one of them can be a query
    train = [Sample("a", 1, 0), Sample("b", 1, 1), Sample("c", 2, 0), Sample("d", 3, 0), Sample("e", 4, 1)]
    for seed in range(20):
        _, query, gallery = split_validation(train, 1, seed)
        if {s.pid for s in query + gallery} == {1}:
            assert len(query) == 1 and len(gallery) == 1 and query[0].camid != gallery[0].camid
            break
    else:
        pytest.fail("pid 1 never held out")


def test_split_validation_limits():
    train = _train_samples()
    assert split_validation(train, 0, 0) == (tuple(train), (), ())
    with pytest.raises(UserError, match="val_ids = 11: too many; the training set has 12 ids"):
        split_validation(train, 11, 0)


def test_split_validation_on_synthetic(splits):
    part, query, gallery = split_validation(splits.train, 2, seed=0)
    assert len({s.pid for s in part}) == 4
    assert len({s.pid for s in query}) == 2
    relabelled, _ = relabel(part)
    assert sorted({s.pid for s in relabelled}) == [0, 1, 2, 3]
