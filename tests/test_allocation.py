"""Allocation over a Profile: budget scopes, the self-contained Allocation (check, save/load, tables),
and the one-home helpers (bit widths, chosen distortion, trade-off curves)."""
import importlib
import json

import numpy as np
import pytest

import dadq
from dadq.allocate import Allocation, chosen_distortion, lambda_range, rd_sweep, target_numel
from dadq.bitwidths import FP_BITS, option_index, parse_bits
from dadq.models import DEFAULT_MODEL_DIR

SHIPPED = DEFAULT_MODEL_DIR / "profile.safetensors"


@pytest.fixture(scope="module")
def shipped():
    return dadq.Profile.load(SHIPPED)


# --- bit widths ---------------------------------------------------------------------------------

def test_parse_bits():
    assert parse_bits("2-8") == list(range(2, 9))
    assert parse_bits(" 8, 2,4 ") == [2, 4, 8]
    for bad in ("2-x", "", "0-4", "4,17", "a"):
        with pytest.raises(ValueError, match="range like 2-8 or a list like 2,4,8"):
            parse_bits(bad)


def test_option_index():
    opts = np.array([2, 4, 8])
    assert option_index(opts, 4) == 1
    assert option_index(opts, np.array([[2, FP_BITS], [8, 4]])).tolist() == [[0, -1], [2, 1]]
    with pytest.raises(ValueError, match=r"3 bits were not profiled; choose one of \[2, 4, 8\]"):
        option_index(opts, np.array([2, 3]))
    with pytest.raises(ValueError, match="32 bits were not profiled"):
        option_index(opts, FP_BITS, fp_ok=False)


# --- budget scopes ------------------------------------------------------------------------------

def _scopes_hold(prof, budgets, targets=("wa", "w", "a")):
    for target in targets:
        for b in budgets:
            g = dadq.allocate(prof, budget=b, target=target, method="exact", budget_scope="group")
            m = dadq.allocate(prof, budget=b, target=target, method="exact", budget_scope="mean")
            assert g.budget_scope == "group" and m.budget_scope == "mean"
            assert g.group_avg_bits.max() <= b + 1e-9
            assert m.group_avg_bits.mean() <= b + 1e-9  # the mean never exceeds its budget
            # every group-scope allocation is feasible for 'mean': exact there is never worse
            assert m.predicted.sum() <= g.predicted.sum() * (1 + 1e-12)
            for method in ("lagrangian", "greedy"):
                other = dadq.allocate(prof, budget=b, target=target, method=method, budget_scope="mean")
                assert other.group_avg_bits.mean() <= b + 1e-9
                assert m.predicted.sum() <= other.predicted.sum() * (1 + 1e-12)


def test_mean_scope_on_tiny_profile(tiny_profile):
    _scopes_hold(tiny_profile, (2.5, 3.0, 4.0, 6.0))


def test_mean_scope_on_shipped_profile(shipped):
    _scopes_hold(shipped, (3.0, 4.0, 6.0), targets=("wa",))
    # bits move between groups: with one budget for the trajectory, groups differ in size
    m = dadq.allocate(shipped, budget=3.0, method="lagrangian", budget_scope="mean")
    g = dadq.allocate(shipped, budget=3.0, method="lagrangian")
    assert m.group_avg_bits.max() > 3.0 + 0.1 and m.predicted.mean() < 0.8 * g.predicted.mean()


@pytest.mark.parametrize("dadq_allocate_dp_cells", [None, 0], ids=["dp", "milp-fallback"])
def test_exact_mean_scope_with_separate_budgets_beats_the_heuristics(shipped, dadq_allocate_dp_cells, monkeypatch):
    """Pooled knapsacks of 640 rows: the exact DP must cover them (HiGHS's MILP stops at an absolute gap
    that is coarse on these distortions), and where the MILP is used after all, exact is never worse
    than greedy or Lagrangian."""
    allocate_module = importlib.import_module("dadq.allocate")  # the attribute dadq.allocate is the function
    if dadq_allocate_dp_cells is not None:
        monkeypatch.setattr(allocate_module, "DP_MAX_CELLS", dadq_allocate_dp_cells)
    for w, a in ((4, 8), (4, 6)):
        kw = dict(w_budget=w, a_budget=a, budget_scope="mean")
        ex = dadq.allocate(shipped, method="exact", **kw)
        for method in ("lagrangian", "greedy"):
            assert ex.predicted.sum() <= dadq.allocate(shipped, method=method, **kw).predicted.sum() * (1 + 1e-12)
    if dadq_allocate_dp_cells is None:
        # at the widest profiled width, activations keep it: the bits below 8 save nearly nothing in D
        ex = dadq.allocate(shipped, method="exact", w_budget=4, a_budget=8, budget_scope="mean")
        assert (ex.a_bits * shipped.a_numel).sum() / shipped.a_numel.sum() / shipped.num_groups > 7.99


def test_fp_top_buys_full_precision_within_the_budget_and_never_predicts_worse(shipped):
    # on the shipped profile conv_in's input (x_t) keeps a large distortion at 8 bits in the last group,
    # and its 784 elements are cheap at FP_BITS: the solver takes it wherever FP is offered
    conv_in = shipped.layer_names.index("conv_in")
    for kw in (dict(w_budget=4, a_budget=8), dict(budget=6.0), dict(budget=4.0, target="w")):
        for scope in ("group", "mean"):
            plain = dadq.allocate(shipped, method="exact", budget_scope=scope, **kw)
            top = dadq.allocate(shipped, method="exact", budget_scope=scope, fp_top=True, **kw)
            assert top.predicted.sum() <= plain.predicted.sum() * (1 + 1e-12)
            budget = kw.get("budget")
            if "w_budget" in kw:
                wb, ab = top.step_bits()
                assert (wb / shipped.w_numel.sum()).mean() <= 4 + 1e-9 and (ab / shipped.a_numel.sum()).mean() <= 8 + 1e-9
            else:
                avg = top.group_avg_bits
                assert (avg.mean() if scope == "mean" else avg.max()) <= budget + 1e-9
            assert set(np.unique(top.w_bits)) | set(np.unique(top.a_bits)) <= set(shipped.bits.tolist()) | {FP_BITS}
    top = dadq.allocate(shipped, method="exact", budget_scope="mean", fp_top=True, w_budget=4, a_budget=8)
    assert (top.a_bits[:, conv_in] == FP_BITS).all()
    assert top.predicted.mean() < 0.2 * dadq.allocate(shipped, method="exact", budget_scope="mean", w_budget=4,
                                                      a_budget=8).predicted.mean()


def test_fp_top_layers_run_unquantized(tiny_model, tiny_profile):
    a = dadq.allocate(tiny_profile, budget=8.0, method="exact", fp_top=True)
    fp = np.argwhere(a.a_bits == FP_BITS)
    assert len(fp), "at the widest profiled width the tiny profile buys some full-precision inputs"
    q = dadq.quantize(tiny_model, tiny_profile, a)
    g, l = fp[0]
    assert q.unet.layers[tiny_profile.layer_names[l]].a_bits[g] == FP_BITS


def test_fp_input_keeps_x_t_at_full_precision_outside_the_budget(shipped):
    conv_in = shipped.layer_names.index("conv_in")
    others = np.arange(shipped.num_layers) != conv_in
    a_numel = shipped.a_numel.astype(float)
    for kw in (dict(w_budget=4, a_budget=8, method="exact", budget_scope="mean"),
               dict(budget=8.0, target="a", method="uniform"), dict(budget=5.0, method="exact"),
               dict(budget=6.0, method="lagrangian", budget_scope="mean")):
        a = dadq.allocate(shipped, fp_input=True, **kw)
        plain = dadq.allocate(shipped, **kw)
        assert (a.a_bits[:, conv_in] == FP_BITS).all() and (plain.a_bits[:, conv_in] != FP_BITS).all()
        assert (a.a_bits[:, others] != FP_BITS).all() and any(n.startswith("fp_input:") for n in a.notes)
        # the budget bounds the other elements; x_t counts at FP_BITS in the real average on top of it
        if "a_budget" in kw or kw.get("target") == "a":
            b = kw.get("a_budget", kw.get("budget"))
            rest = (a.a_bits[:, others] * a_numel[others]).sum(1) / a_numel[others].sum()
            assert rest.mean() <= b + 1e-9 and rest.mean() > b - 0.05
            real = (a.a_bits * a_numel).sum(1) / a_numel.sum()
            assert np.allclose(real, rest + (FP_BITS - rest) * a_numel[conv_in] / a_numel.sum())
    uni = dadq.allocate(shipped, budget=8.0, target="a", method="uniform", fp_input=True)
    assert (uni.a_bits[:, others] == 8).all(), "uniform keeps its width on the quantized elements"
    # the ends rule of the strong baselines does not quantize what fp_input keeps at FP
    from dadq.allocate import pin_bits
    pinned = pin_bits(uni, shipped, ["conv_in", "conv_out"], 8)
    assert (pinned.a_bits[:, conv_in] == FP_BITS).all()
    joint = pin_bits(dadq.allocate(shipped, budget=4.0, method="uniform", fp_input=True), shipped, ["conv_in"], 8)
    assert (joint.w_bits[:, conv_in] == 8).all() and (joint.a_bits[:, conv_in] == FP_BITS).all()
    assert dadq.allocate(shipped, budget=4.0, target="w", method="exact", fp_input=True).w_bits.max() <= 8


def test_fp_input_needs_a_layer_that_reads_the_model_input(tiny_profile):
    import dataclasses

    renamed = dataclasses.replace(tiny_profile, layer_names=[f"x.{n}" for n in tiny_profile.layer_names])
    with pytest.raises(ValueError, match="none of this profile's layers reads the model input"):
        dadq.allocate(renamed, budget=4.0, fp_input=True)


def test_group_weights_move_bits_to_the_weighted_groups(shipped):
    from dadq.allocate import _group_weights

    G = shipped.num_groups
    kw = dict(budget=4.0, target="w", method="exact", budget_scope="mean")
    plain = dadq.allocate(shipped, **kw)
    assert (dadq.allocate(shipped, group_weights=np.full(G, 3.0), **kw).w_bits == plain.w_bits).all(), \
        "equal weights change nothing"
    w = np.ones(G)
    w[-3:] = 20.0  # the high-noise groups count 20 times
    a = dadq.allocate(shipped, group_weights=w, **kw)
    avg = lambda al: al.step_bits()[0] / al.w_numel.sum()  # noqa: E731  [G] average weight bits
    assert avg(a).mean() <= 4.0 + 1e-9, "the budget still bounds the mean over groups"
    assert avg(a)[-3:].mean() > avg(plain)[-3:].mean() + 0.3 and avg(a)[:-3].mean() < avg(plain)[:-3].mean()
    # the exact solve is optimal for the weighted sum, and the D it reports stays the profile's
    wn = _group_weights(shipped, w)["w"]
    assert (wn * a.predicted).sum() <= (wn * plain.predicted).sum() + 1e-12
    assert (plain.predicted.sum() <= a.predicted.sum()) and any(n.startswith("group_weights:") for n in a.notes)
    # a budget met per group is solved per group: a constant factor per group changes nothing
    per_group = dict(budget=4.0, target="w", method="exact", budget_scope="group")
    assert (dadq.allocate(shipped, group_weights=w, **per_group).w_bits
            == dadq.allocate(shipped, **per_group).w_bits).all()
    for bad in (np.ones(G - 1), -w, np.zeros(G), np.full(G, np.nan)):
        with pytest.raises(ValueError, match=f"give {G} finite weights >= 0.*trajectory_gain"):
            dadq.allocate(shipped, group_weights=bad, **kw)


def test_group_weights_per_kind_weigh_weights_and_activations_each_by_their_own(shipped):
    """{"w": ..., "a": ...}: each kind's D in the joint knapsack counts by its own group weights."""
    G = shipped.num_groups
    w = np.geomspace(0.05, 20.0, G)  # the high-noise groups count most
    kw = dict(w_budget=4.0, a_budget=6.0, target="wa", method="exact", budget_scope="mean")
    both = dadq.allocate(shipped, group_weights=w, **kw)
    plain = dadq.allocate(shipped, **kw)
    same = dadq.allocate(shipped, group_weights={"w": w, "a": w}, **kw)
    assert (same.w_bits == both.w_bits).all() and (same.a_bits == both.a_bits).all()
    w_only = dadq.allocate(shipped, group_weights={"w": w}, **kw)  # separate budgets: two independent solves
    assert (w_only.w_bits == both.w_bits).all() and (w_only.a_bits == plain.a_bits).all()
    a_only = dadq.allocate(shipped, group_weights={"w": None, "a": w}, **kw)
    assert (a_only.w_bits == plain.w_bits).all() and (a_only.a_bits == both.a_bits).all()
    assert (both.a_bits != plain.a_bits).any(), "the weights must move some activation bits for this test to mean anything"
    assert any(n.startswith("group_weights: group D weighted by W ") and "; A unweighted" in n for n in w_only.notes)
    with pytest.raises(ValueError, match="keys \\['x'\\] are not quantizer kinds"):
        dadq.allocate(shipped, group_weights={"x": w}, **kw)
    with pytest.raises(ValueError, match=f"give {G} finite weights"):
        dadq.allocate(shipped, group_weights={"a": w[:-1]}, **kw)


def test_trajectory_gain_grows_with_the_noise_level():
    """An eps error at the high-noise steps moves the final sample far more than one at the last steps."""
    model = dadq.load_model("default")
    gain = dadq.trajectory_gain(model, 10, n=2, steps=10, seed=3)
    assert gain.shape == (10,) and (gain > 0).all()
    assert gain[-1] > 30 * gain[0] and gain[5:].mean() > gain[:5].mean()
    assert np.array_equal(gain, dadq.trajectory_gain(model, 10, n=2, steps=10, seed=3)), "seeded: reproducible"
    with pytest.raises(ValueError, match="positive standard deviation"):
        dadq.trajectory_gain(model, 10, n=2, steps=2, sigma=0.0)


def test_mean_scope_uniform_stays_uniform(tiny_profile):
    a = dadq.allocate(tiny_profile, budget=4.0, method="uniform", budget_scope="mean")
    assert (a.w_bits == 4).all() and (a.a_bits == 4).all()


def test_scope_with_shared_weights(tiny_profile):
    a = dadq.allocate(tiny_profile, budget=4.0, weight_mode="shared", method="exact")
    assert a.budget_scope == "mean" and (a.w_bits == a.w_bits[:1]).all()
    with pytest.raises(ValueError, match="budget_scope='mean'"):
        dadq.allocate(tiny_profile, budget=4.0, weight_mode="shared", budget_scope="group")
    # separate budgets: the one weight copy meets its W budget, each group its A budget
    s = dadq.allocate(tiny_profile, w_budget=4.0, a_budget=3.0, weight_mode="shared", budget_scope="group")
    a_avg = (s.a_bits * s.a_numel).sum(1) / s.a_numel.sum()
    assert a_avg.max() <= 3.0 + 1e-9 and (s.w_bits == s.w_bits[:1]).all()


def test_lam_is_the_same_point_in_both_scopes(tiny_profile):
    for lam in (1e-3, 1e-1, 10.0):
        g = dadq.allocate(tiny_profile, lam=lam)
        m = dadq.allocate(tiny_profile, lam=lam, budget_scope="mean")
        assert (g.w_bits == m.w_bits).all() and (g.a_bits == m.a_bits).all()


def test_rd_sweep_scopes(tiny_profile):
    xm, ym = rd_sweep(tiny_profile, "wa", scope="mean")
    xg, yg = rd_sweep(tiny_profile, "wa", scope="group")
    assert np.all(np.diff(xm) > 0) and np.all(np.diff(xg) > 0) and np.all(np.diff(ym) <= 1e-15)
    # at every budget the pooled frontier lies on or below the per-group one
    assert np.all(np.interp(xg, xm, ym) <= yg + 1e-12)
    # the 'group' curve is what the Lagrangian delivers in group scope
    for b in (3.0, 5.0):
        a = dadq.allocate(tiny_profile, budget=b)
        k = np.searchsorted(xg, b, side="right") - 1
        assert a.predicted.mean() == pytest.approx(yg[k], rel=1e-9)
    lo, hi, mid = lambda_range([(xm, ym), (xg, yg)])
    assert lo < mid < hi


@pytest.mark.parametrize("options", [dict(fp_input=True), dict(fp_top=True), dict(fp_input=True, fp_top=True)])
def test_rd_sweep_with_full_precision_options_is_the_frontier_their_allocations_lie_on(tiny_profile, options):
    xs, ys = rd_sweep(tiny_profile, "wa", scope="mean", **options)
    plain = rd_sweep(tiny_profile, "wa", scope="mean")
    for lam in (1e-4, 1e-3, 1e-2):
        a = dadq.allocate(tiny_profile, lam=lam, budget_scope="mean", **options)
        k = np.searchsorted(xs, a.group_avg_bits.mean() + 1e-9, side="right") - 1
        assert xs[k] == pytest.approx(a.group_avg_bits.mean(), rel=1e-9)
        assert ys[k] == pytest.approx(a.predicted.mean(), rel=1e-9)
    if options.get("fp_input"):  # x_t's FP elements count in the average bits: the curve starts further right
        assert xs[0] > plain[0][0]


# --- argument rules -----------------------------------------------------------------------------

def test_one_way_to_give_each_budget(tiny_profile):
    with pytest.raises(ValueError, match="w_budget=... and a_budget="):
        dadq.allocate(tiny_profile, budget=(4.0, 4.0))
    with pytest.raises(ValueError, match="method='exact'"):
        dadq.allocate(tiny_profile, lam=0.1, method="exact")
    with pytest.raises(ValueError, match="budget_scope='sometimes'"):
        dadq.allocate(tiny_profile, budget=4.0, budget_scope="sometimes")
    a = dadq.allocate(tiny_profile, w_budget=4.0, a_budget=8.0)
    assert a.budget == (4.0, 8.0)


# --- the Allocation itself ------------------------------------------------------------------------

def test_allocation_carries_what_it_needs(tiny_profile):
    p = tiny_profile
    a = dadq.allocate(p, budget=4.0, method="exact", target="w")
    assert np.array_equal(a.act_range, p.activation_ranges_for(a.a_bits))
    assert np.array_equal(a.d_w, chosen_distortion(p.d_w, p.bits, a.w_bits))
    assert np.array_equal(a.predicted, a.distortion_on(p))
    assert (a.a_bits == FP_BITS).all() and (a.d_a == 0).all()
    assert a.group_bits == pytest.approx((a.w_bits * p.w_numel).sum(1))
    assert a.group_avg_bits == pytest.approx(a.group_bits / target_numel(p, "w"))
    assert a.settings == p.settings() and a.groups == p.groups


def test_to_frame(tiny_profile):
    a = dadq.allocate(tiny_profile, budget=3.0, method="exact")
    t = a.to_frame()
    G, L = a.w_bits.shape
    assert list(t.columns) == ["layer", "kind", "group", "bits", "D", "size_bits"] and len(t) == 2 * G * L
    for kind, bits, d, numel in (("w", a.w_bits, a.d_w, a.w_numel), ("a", a.a_bits, a.d_a, a.a_numel)):
        k = t[t.kind == kind]
        for g, l in ((0, 0), (G - 1, L - 1), (1, L // 3)):
            row = k[(k.group == g) & (k.layer == a.layer_names[l])].iloc[0]
            assert row.bits == bits[g, l] and row.D == d[g, l] and row.size_bits == numel[l] * bits[g, l]
    by_group = t.groupby("group").size_bits.sum().to_numpy()
    assert np.array_equal(by_group, a.group_bits)
    assert np.allclose(t.groupby("group").D.sum().to_numpy(), a.predicted)


def test_breakdown_is_where_the_predicted_distortion_goes(tiny_profile):
    a = dadq.allocate(tiny_profile, budget=3.0, method="exact")
    b = a.breakdown()
    G, L = a.w_bits.shape
    assert list(b.columns) == ["layer", "kind", "group", "bits", "D", "share", "share_of_mean"] and len(b) == 2 * G * L
    assert (np.diff(b.D.to_numpy()) <= 0).all()  # largest first
    top = b.iloc[0]
    d = a.d_w if top.kind == "w" else a.d_a
    assert top.D == d.max() == max(a.d_w.max(), a.d_a.max())
    assert top.share == pytest.approx(top.D / a.predicted[top.group])
    assert np.allclose(b.groupby("group").share.sum().to_numpy(), 1.0)  # each group's shares add up
    assert b.share_of_mean.sum() == pytest.approx(1.0)
    l = a.layer_names.index(top.layer)
    per_quantizer = b[(b.layer == top.layer) & (b.kind == top.kind)].share_of_mean.sum()
    assert per_quantizer == pytest.approx(d[:, l].mean() / a.predicted.mean())


def test_save_load_roundtrip(tiny_profile, tmp_path):
    a = dadq.allocate(tiny_profile, w_budget=3.0, a_budget=5.0, method="exact", budget_scope="mean")
    b = Allocation.load(a.save(tmp_path / "a.json"), profile=tiny_profile)
    for k in ("w_bits", "a_bits", "d_w", "d_a", "act_range", "w_numel", "a_numel", "bit_options"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert (b.budget, b.budget_scope, b.settings, b.num_timesteps) == ((3.0, 5.0), "mean", a.settings, a.num_timesteps)
    assert json.loads((tmp_path / "a.json").read_text())["format"] == "dadq-allocation/2"


def test_old_format_loads_with_its_profile(tiny_profile, tmp_path):
    a = dadq.allocate(tiny_profile, budget=4.0, method="exact")
    old = {k: v for k, v in a.to_dict().items() if k in (
        "layer_names", "w_bits", "a_bits", "predicted", "group_bits", "group_avg_bits", "stored_weight_bits",
        "fp_weight_bits", "method", "target", "weight_mode", "budget", "lam", "fingerprint", "notes")}
    old["format"] = "dadq-allocation/1"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="old format .* load it with its profile"):
        Allocation.load(path)
    b = Allocation.load(path, profile=tiny_profile)
    assert np.array_equal(b.act_range, a.act_range) and np.array_equal(b.predicted, a.predicted)


@pytest.mark.parametrize("edit, message", [
    (lambda o: o.update(fingerprint="0123456789abcdef"), "another profile"),
    (lambda o: o.update(w_bits=o["w_bits"][:-1]), r"w_bits has shape \(2, 51\); 3 groups x 51 layers need \(3, 51\)"),
    (lambda o: o["a_bits"][0].__setitem__(0, 3), r"a_bits uses bits \[3\] that its profile does not hold"),
    (lambda o: o.update(settings={"distortion": "MSE"}), "settings"),
    (lambda o: o.update(num_timesteps=500), r"\(T, bit widths, settings, split inputs\)"),
    (lambda o: o.update(budget_scope="always"), "budget_scope='always' is none of"),
    (lambda o: o.update(a_split=[0] * len(o["a_split"])), "split inputs"),
])
def test_check_names_each_problem(tiny_profile, tmp_path, edit, message):
    obj = dadq.allocate(tiny_profile, budget=4.0).to_dict()
    edit(obj)
    with pytest.raises(ValueError, match=message):
        Allocation.from_dict(obj, profile=tiny_profile)


def test_check_against_a_model(tiny_profile, tiny_model):
    from tests.conftest import TINY

    a = dadq.allocate(tiny_profile, budget=4.0)
    a.check(model=tiny_model)
    with pytest.raises(ValueError, match="another model"):
        a.check(model=dadq.load_model(dict(TINY), seed=1))


def test_pin_bits_keeps_the_ends_at_8_and_reports_the_real_average(shipped):
    """The PTQ baselines' rule (first and last layers at 8 bits) on top of uniform bits: the pinned
    layers' widths, D and activation ranges follow, and the average bits rise above the budget."""
    from dadq.allocate import pin_bits

    ends = ["conv_in", "conv_out"]
    idx = [shipped.layer_names.index(n) for n in ends]
    for kw in (dict(budget=4.0, target="w"), dict(budget=4.0, target="wa"), dict(w_budget=4.0, a_budget=8.0, target="wa")):
        a = dadq.allocate(shipped, method="uniform", **kw)
        b = pin_bits(a, shipped, ends, 8)
        assert (b.w_bits[:, idx] == 8).all() and b.group_avg_bits.mean() > a.group_avg_bits.mean()
        assert (b.a_bits[:, idx] == (32 if kw["target"] == "w" else 8)).all()
        m8 = list(shipped.bits).index(8)
        assert np.allclose(b.d_w[:, idx], shipped.d_w[:, idx, m8])
        assert np.allclose(b.act_range, shipped.activation_ranges_for(b.a_bits))
        others = [i for i in range(shipped.num_layers) if i not in idx]
        assert (b.w_bits[:, others] == a.w_bits[:, others]).all()
        b.check(profile=shipped)
    with pytest.raises(ValueError, match="not layers of this profile"):
        pin_bits(a, shipped, ["nope"], 8)
    with pytest.raises(ValueError, match="not one of the profile's widths"):
        pin_bits(a, shipped, ends, 9)
