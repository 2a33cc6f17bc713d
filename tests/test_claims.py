"""The claims scorecard: the verdict rule and the paired differences, on hand-made metrics files."""

from __future__ import annotations

import json

import pytest

from dgnet.reports import claims


@pytest.mark.parametrize("values, expected", [
    ([5.0], "inconclusive (1 seed)"),  # no noise estimate
    ([1.0, 2.0], "inconclusive (2 seeds)"),  # fewer than three seeds carry no verdict
    ([1.0, 1.2, 0.9], "reproduced"),  # t 11.7, p 0.004
    ([-2.0, -2.5, -1.8], "not reproduced"),
    ([1.0, -0.8, 0.5], "inconclusive"),  # t 0.43: inside the noise
    ([3.0, 0.5, 1.5], "inconclusive"),  # mean 1.67 > 2 standard errors (1.46), but p 0.066: the old rule's pass
    ([0.4, 0.4, 0.4], "reproduced"),  # no spread: the sign decides
])
def test_verdict_rule(values, expected):
    assert claims.verdict(values) == expected


def test_t_and_p_are_the_one_sided_one_sample_t_test():
    from scipy import stats

    values = [3.0, 0.5, 1.5, -0.2]
    t, p = claims.t_test(values)
    reference = stats.ttest_1samp(values, 0.0, alternative="greater")
    assert t == pytest.approx(reference.statistic) and p == pytest.approx(reference.pvalue)


def _metrics(baseline, prim, fine, combined, offline, nofeed_fd=20.0, dgnet_fd=18.0, bottom=0.7, camera=0.7):
    """One seed's metrics files; ``bottom`` and ``camera``: the probe's rates of the full model's generations."""
    def entry(m, r1=None, beta=None):
        return {"mAP": m / 100, "rank1": (r1 if r1 is not None else m + 10) / 100, "beta": beta}
    return {
        "table3": {"baseline": entry(baseline), "f_prim": entry(prim), "f_fine": entry(fine),
                   "f_prim+f_fine": entry(combined, beta=0.5)},
        "offline": {"f_prim+f_fine": entry(offline)},
        "ablations": {"w/o feed": {"f_prim+f_fine": entry(combined - 3)},
                      "w/o id": {"f_prim+f_fine": entry(combined - 4)}},
        "beta_sweep": {"points": [{"beta": 0.0, "mAP": (combined - 1) / 100, "rank1": 0.5},
                                  {"beta": 0.5, "mAP": combined / 100, "rank1": 0.5},
                                  {"beta": 2.0, "mAP": (combined - 2.5) / 100, "rank1": 0.5}]},
        "generation": {"table2": {"DG-Net": {"frechet_teacher": dgnet_fd},
                                  "DG-Net w/o feed": {"frechet_teacher": nofeed_fd}},
                       "disentanglement": {"models": {"DG-Net": {"scores": [
                           {"attribute": "bottom_color", "follows appearance source": bottom,
                            "follows structure source": 0.1},
                           {"attribute": "camid", "follows appearance source": 0.2,
                            "follows structure source": camera}]}}}},
    }


def _write(folder, metrics):
    folder.mkdir(parents=True)
    for name, data in metrics.items():
        (folder / f"{name}.json").write_text(json.dumps(data))


def test_scorecard_pairs_each_seed_and_reads_replicates(tmp_path):
    _write(tmp_path / "main", _metrics(50, 55, 45, 56, 52))
    _write(tmp_path / "s1", _metrics(48, 54, 44, 55.5, 50))
    _write(tmp_path / "s2", _metrics(51, 55, 46, 57, 54))
    seeds = claims.load_seed_metrics(0, tmp_path / "main", {1: tmp_path / "s1", 2: tmp_path / "s2"})
    card = claims.scorecard(seeds, "test", baseline_epochs=40, plateau_epochs=40)
    by_id = {c["id"]: c for c in card["claims"]}
    assert card["seeds"] == [0, 1, 2]
    assert by_id["dgnet_vs_baseline"]["ours"]["values"] == pytest.approx([6.0, 7.5, 6.0])
    assert by_id["dgnet_vs_baseline"]["verdict"] == "reproduced"
    assert by_id["e2e_vs_offline"]["ours"]["values"] == pytest.approx([4.0, 5.5, 3.0])
    assert by_id["beta_peak"]["ours"]["values"] == pytest.approx([2.5, 2.5, 2.5])  # best of (0, 1] - beta 2
    assert by_id["combined_vs_prim"]["ours"]["values"] == pytest.approx([1.0, 1.5, 2.0])  # a different number
    assert by_id["feed_realism"]["ours"]["values"] == pytest.approx([2.0, 2.0, 2.0])
    assert by_id["alpha_peak"]["ours"]["n_seeds"] == 0 and by_id["alpha_peak"]["verdict"] == "inconclusive (0 seeds)"
    assert "dgnet_vs_baseline_rank1" not in by_id  # Rank@1 of the same comparison is not a second claim
    assert by_id["dgnet_vs_baseline"]["ours"]["p"] < 0.05 and by_id["dgnet_vs_baseline"]["ours"]["t"] > 0
    md = claims.markdown(card)
    assert "`dgnet_vs_baseline`" in md and "+6.50 ± 0.87 (3)" in md


def _card(tmp_path, baseline=50.0, bottom=0.7, camera=0.7, baseline_epochs=40, plateau_epochs=40):
    """Three seeds on which DG-Net is 6-7.5 mAP above (baseline 50) or below (baseline 63) the Baseline."""
    for name, args in (("main", (55, 45, 56, 52)), ("s1", (54, 44, 55.5, 50)), ("s2", (55, 46, 57, 54))):
        _write(tmp_path / name, _metrics(baseline + (name == "s1") * -2, *args, bottom=bottom, camera=camera))
    seeds = claims.load_seed_metrics(0, tmp_path / "main", {1: tmp_path / "s1", 2: tmp_path / "s2"})
    card = claims.scorecard(seeds, "test", baseline_epochs=baseline_epochs, plateau_epochs=plateau_epochs)
    return card, {c["id"]: c for c in card["claims"]}


ON_GENERATOR = {"dgnet_vs_baseline", "prim_vs_baseline", "combined_vs_prim", "e2e_vs_offline", "alpha_peak",
                "beta_peak", "feed_realism", "transfer"}  # docs/claims_diagnosis.md, section 18
ON_BASELINE = {"dgnet_vs_baseline", "prim_vs_baseline", "transfer"}


@pytest.mark.parametrize("baseline, bottom, camera, baseline_epochs, plateau_epochs, untestable", [
    (50, 0.7, 0.7, 40, 40, set()),  # both hold: the t-test decides
    (63, 0.7, 0.7, 40, 40, set()),
    (50, 0.5, 0.7, 40, 40, ON_GENERATOR),
    (63, 0.7, 0.59, 40, 40, ON_GENERATOR),
    (50, 0.7, 0.7, 20, 40, ON_BASELINE),  # a Baseline short of its plateau
    (63, 0.7, 0.7, 60, None, ON_BASELINE),  # no plateau on record for the data set
])
def test_a_claim_whose_precondition_fails_is_not_testable(tmp_path, baseline, bottom, camera, baseline_epochs,
                                                          plateau_epochs, untestable):
    card, by_id = _card(tmp_path, baseline, bottom, camera, baseline_epochs, plateau_epochs)
    expected = {"dgnet_vs_baseline": "reproduced" if baseline == 50 else "not reproduced",
                "combined_vs_prim": "reproduced", "e2e_vs_offline": "reproduced"}
    for claim, t_test_verdict in expected.items():
        assert by_id[claim]["verdict"] == ("not testable here" if claim in untestable else t_test_verdict)
    assert {c for c, r in by_id.items() if r["verdict"] == "not testable here"} == untestable
    assert by_id["dgnet_vs_baseline"]["ours"]["values"]  # the per-seed numbers are still there
    assert by_id["disentangle"]["preconditions"] == []  # it measures the generator itself
    checks = {p["id"]: p for p in by_id["dgnet_vs_baseline"]["preconditions"]}
    assert checks["generator_follows_codes"]["measured"]["percent"] == pytest.approx(
        {"bottom_color": 100 * bottom, "camera": 100 * camera})
    assert checks["baseline_at_plateau"]["measured"] == {"epochs": baseline_epochs, "plateau_epochs": plateau_epochs}
    assert claims.verdict_counts(card)["not testable here"] == len(untestable)
    if untestable:
        row = next(line for line in claims.markdown(card).splitlines() if line.startswith("| `transfer`"))
        assert "**not testable here**" in row and ("fails" in row or "not measured" in row)


def test_an_unmeasured_generator_makes_its_claims_not_testable():
    main = {key: {"rank1": 0.5, "mAP": 0.4} for key in ("baseline", "f_prim", "f_fine", "f_prim+f_fine")}
    card = claims.scorecard({0: {"table3": main}}, "t", baseline_epochs=40, plateau_epochs=40)
    row = next(r for r in card["claims"] if r["id"] == "combined_vs_prim")
    assert row["verdict"] == "not testable here" and row["preconditions"][0]["holds"] is None
    assert "bottom colour not measured" in claims.markdown(card)


def test_a_seed_without_metrics_is_not_listed(tmp_path):
    _write(tmp_path / "main", _metrics(50, 55, 45, 56, 52))
    seeds = claims.load_seed_metrics(0, tmp_path / "main", {1: tmp_path / "absent"})
    card = claims.scorecard(seeds, "t")
    assert card["seeds"] == [0]
    assert all(c["ours"]["n_seeds"] <= 1 for c in card["claims"])


def test_write_scorecard_adds_the_seed_table(tmp_path):
    _write(tmp_path / "main", _metrics(50, 55, 45, 56, 52))
    _write(tmp_path / "s1", _metrics(48, 54, 44, 55, 50))
    seeds = claims.load_seed_metrics(0, tmp_path / "main", {1: tmp_path / "s1"})
    claims.write_scorecard(claims.scorecard(seeds, "t"), tmp_path / "c.md", tmp_path / "c.json", seeds)
    doc = json.loads((tmp_path / "c.json").read_text())
    row = next(r for r in doc["seed_table"] if r["model"] == "Baseline (teacher)")
    assert row["mAP"] == "49.0 ± 1.4" and row["n_seeds"] == 2
    assert "The central models over seeds" in (tmp_path / "c.md").read_text()


def test_every_table_over_seeds(tmp_path):
    from dgnet.reports import seeds as over

    _write(tmp_path / "main", _metrics(50, 55, 45, 56, 52))
    _write(tmp_path / "s1", _metrics(48, 54, 44, 55, 50, dgnet_fd=20.0))
    seed_metrics = claims.load_seed_metrics(0, tmp_path / "main", {1: tmp_path / "s1", 2: tmp_path / "absent"})
    reid = over.reid_over_seeds(seed_metrics, claims.SEED_ROWS).set_index("Method")
    assert reid.loc["Baseline (teacher)", "mAP"] == "49.0 ± 1.4"
    assert reid.loc["Baseline (teacher)", "Rank@1"] == "59.0 ± 1.4" and reid.loc["Baseline (teacher)", "seeds"] == 2
    assert reid.loc["Baseline (teacher)", "mINP"] == "not measured"
    generation = over.generation_over_seeds(seed_metrics).set_index("Method")
    assert generation.loc["DG-Net", "Fréchet distance (teacher features)"] == "19.00 ± 1.41"
    beta = over.beta_over_seeds(seed_metrics).set_index("beta")
    assert beta.loc[0.5, "mAP"] == "55.5 ± 0.7"
    alpha = over.alpha_over_seeds(seed_metrics, main_alpha=0.2).set_index("alpha")
    assert list(alpha.index) == [0.2] and alpha.loc[0.2, "mAP"] == "55.5 ± 0.7"
    over.write_seeds_page(tmp_path / "seeds.md", "# head\n", seed_metrics, claims.SEED_ROWS, 0.2)
    page = (tmp_path / "seeds.md").read_text()
    assert "Seeds: 0, 1." in page and "Figure 8 (left)" in page
    assert over.mean_std([61.23]) == "61.2 (1 seed)" and over.mean_std([]) == "not measured"


def test_table9_over_seeds_pairs_each_seeds_transfer_rows():
    from dgnet.reports import seeds as over
    from dgnet.reports.build import transfer_by_pair

    def rows(baseline, dgnet, with_b_to_a):
        out = [{"train": "A", "test": "B", "method": "Baseline (teacher)", "rank1": 0.3, "mAP": baseline},
               {"train": "A", "test": "B", "method": "DG-Net", "rank1": 0.3, "mAP": dgnet}]
        if with_b_to_a:
            out.append({"train": "B", "test": "A", "method": "DG-Net", "rank1": 0.4, "mAP": 0.28})
        return {"transfer": {"rows": out}}

    by_pair = transfer_by_pair({0: rows(0.19, 0.21, True), 1: rows(0.17, 0.21, False), 2: {}})
    assert set(by_pair[0]["transfer"]) == {"A -> B", "B -> A"} and by_pair[2] == {"transfer": {}}
    table = over.reid_over_seeds(by_pair, [("A -> B: DG-Net", "transfer", ("A -> B", "DG-Net")),
                                           ("B -> A: DG-Net", "transfer", ("B -> A", "DG-Net"))]).set_index("Method")
    assert table.loc["A -> B: DG-Net", "mAP"] == "21.0 ± 0.0" and table.loc["A -> B: DG-Net", "seeds"] == 2
    assert table.loc["B -> A: DG-Net", "mAP"] == "28.0 (1 seed)"
    assert claims.transfer(rows(0.17, 0.21, False)) == pytest.approx(4.0)
