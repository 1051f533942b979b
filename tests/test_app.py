"""The Gradio app through gradio_client against a real server (launch(prevent_thread_lock=True)),
on a real tiny diffusers model with a real profile (built in a temp folder). No mocks.

The app keeps its state module-global, so the tests of this module share one server and run in
file order; the model-switching test comes last and restores nothing it doesn't need.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

try:  # tests/ is a package (tests/__init__.py); fall back to rootdir-less runs
    from tests.conftest_app import start_app, tiny_assets
except ImportError:  # pragma: no cover
    from conftest_app import start_app, tiny_assets  # type: ignore[no-redef]

ENDPOINTS = {"/sensitivity", "/activations", "/allocate", "/compare_solvers", "/additivity", "/generate", "/fid",
             "/load_model", "/run_profile", "/cancel_profile", "/upload_profile", "/upload_allocation",
             "/export_profile", "/export_allocation", "/export_allocation_csv", "/export_curves_csv", "/export_fid_csv",
             "/pin_allocation", "/compare_pinned", "/distortion_breakdown", "/generate_ab", "/heatmap",
             "/export_figures", "/collapse_blocks", "/expand_blocks",
             "/quality_sweep", "/cancel_sweep", "/measure_gain", "/cancel_gain"}
ALLOC = dict(drive="budget", budget=4.0, log_lam=0.0, w_budget=4.0, a_budget=4.0, target="wa", method="lagrangian",
             weight_mode="per-group", budget_scope="group", full_precision=[], gain_power=0.0)
SCOPE_LABELS = ["every group ≤ budget (peak per step)", "mean over groups ≤ budget (trajectory average)"]


@pytest.fixture(scope="module")
def assets():
    return tiny_assets()


@pytest.fixture(scope="module")
def client(assets):
    demo, url = start_app(assets["tiny"], assets["tiny_profile"])
    c = Client(url, verbose=False)
    yield c
    c.close()
    demo.close()


def plot_data(value) -> dict:
    """A gr.Plot output: {'type': 'plotly', 'plot': JSON} -> the figure dict."""
    assert isinstance(value, dict) and value["type"] == "plotly", value
    fig = json.loads(value["plot"])
    assert fig["data"], "empty figure"
    return fig


def alloc(client, **kw):
    args = {**ALLOC, **kw}
    return client.predict(*args.values(), api_name="/allocate")


def exported(client) -> dict:
    """The displayed allocation, as the app exports it."""
    return json.loads(Path(client.predict(api_name="/export_allocation")).read_text())


def avg_bits_label(data: dict) -> str:
    return f"{sum(data['group_avg_bits']) / len(data['group_avg_bits']):.2f} avg bits"


def wait_running(job, timeout=120):
    """Wait until a submitted job reports progress (it is past its start and running)."""
    t0 = time.time()
    while not job.status().progress_data and not job.done() and time.time() - t0 < timeout:
        time.sleep(0.1)
    assert not job.done(), "the job ended before the test could change the allocation: make it longer"


def heat_z(out):
    fig = plot_data(out[0])
    return np.array(fig["data"][0]["z"]), np.array(fig["data"][1]["z"])  # W, A: [layers, groups]


def test_every_endpoint_is_named(client):
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == ENDPOINTS


def test_sensitivity_views(client, assets):
    import dadq

    prof = dadq.Profile.load(assets["tiny_profile"])
    L, G = prof.num_layers, prof.num_groups
    fig, table = client.predict(1, "size", "layers", None, 4, api_name="/sensitivity")
    fig = plot_data(fig)
    assert len(fig["data"]) == 2 * L  # one W and one A line per layer
    assert fig["layout"]["yaxis"]["type"] == "log" and fig["layout"]["yaxis2"]["type"] == "log"
    assert fig["layout"]["xaxis"]["type"] == "log"  # sizes span orders of magnitude
    assert fig["data"][0]["y"] == pytest.approx(prof.d_w[1, 0].tolist(), rel=1e-6)
    assert len(table["data"]) == L and table["headers"][3] == "D_W @4b"
    assert table["headers"][0] == f"rank in g1: {prof.groups.labels()[1]}"  # the table says which group it ranks
    ranked = [r[5] for r in table["data"]]
    assert ranked == sorted(ranked, reverse=True)
    fig, table = client.predict(-1, "bits", "layers", None, 2, 3, api_name="/sensitivity")  # the top 3 only
    names = {t["legendgroup"] for t in plot_data(fig)["data"]}
    top3 = {prof.layer_names[i] for i in np.argsort(-(prof.d_w.mean(0)[:, 0] + prof.d_a.mean(0)[:, 0]),
                                                    kind="stable")[:3]}
    assert names == top3 and len(plot_data(fig)["data"]) == 6
    fig, _ = client.predict(-1, "bits", "groups", "conv_in", 2, api_name="/sensitivity")
    fig = plot_data(fig)
    assert len(fig["data"]) == 2 * G and fig["data"][0]["x"] == [2, 4, 8]
    with pytest.raises(AppError, match="not in the list of choices|unknown layer"):
        client.predict(-1, "bits", "groups", "no.such.layer", 2, api_name="/sensitivity")


def test_activation_views(client, assets):
    import dadq

    prof = dadq.Profile.load(assets["tiny_profile"])
    li = prof.layer_names.index("conv_out")
    fig, table = client.predict("conv_out", "overlay", 4, True, api_name="/activations")
    fig = plot_data(fig)
    assert len(fig["data"]) == prof.num_groups
    lo, hi = prof.act_minmax[0, li]
    assert min(fig["data"][0]["x"]) > lo and max(fig["data"][0]["x"]) < hi  # bin centres of group 0's own range
    assert len(fig["layout"]["shapes"]) == 2 * prof.num_groups  # clipped range markers at 4 bits
    assert [r[1] for r in table["data"]] == pytest.approx(prof.act_minmax[:, li, 0].tolist(), rel=1e-3)
    assert [r[4] for r in table["data"]] == pytest.approx(prof.act_range[:, li, 1, 1].tolist(), rel=1e-3)
    assert table["headers"][6] == "step @4b"  # was "step @b"
    fig, _ = client.predict("conv_out", "ridge", 2, False, api_name="/activations")
    assert len(plot_data(fig)["data"]) == prof.num_groups


def test_budget_change_changes_allocation(client):
    lo_w, lo_a = heat_z(alloc(client, budget=2.5))
    out = alloc(client, budget=6.0)
    hi_w, hi_a = heat_z(out)
    assert (hi_w != lo_w).any() or (hi_a != lo_a).any()
    assert hi_w.mean() + hi_a.mean() > lo_w.mean() + lo_a.mean()
    summary = out[2]
    assert "MB" in summary and "compression" in summary and "stored" in summary
    trade = plot_data(out[1])
    names = [t["name"] for t in trade["data"]]
    assert names == SCOPE_LABELS + ["uniform bits", "current allocation"]
    assert 5.0 < trade["data"][3]["x"][0] <= 6.0 + 1e-9
    heat = plot_data(out[0])
    for trace in heat["data"]:  # no per-cell labels (slow to redraw); the bits are in the hover data
        assert "texttemplate" not in trace and "text" not in trace
        assert trace["customdata"][0][0][0] in ("2", "4", "8", "FP")


@pytest.mark.parametrize("scope", ["group", "mean"])
def test_tradeoff_draws_the_frontier_of_the_active_scope(client, assets, scope):
    """Issue 19.2: both scopes' frontiers are drawn, labelled, the active one first; the Lagrangian
    star lies on the frontier of its own scope (the pooled curve alone misled by up to 1.7x)."""
    import dadq

    prof = dadq.Profile.load(assets["tiny_profile"])
    xs, ys = dadq.rd_sweep(prof, "wa", scope=scope)
    for budget in (2.5, 3.0, 4.0, 6.0):
        out = alloc(client, budget=budget, budget_scope=scope)
        trade = plot_data(out[1])
        own, other = trade["data"][0], trade["data"][1]
        assert own["name"] == SCOPE_LABELS[scope == "mean"] and other["name"] == SCOPE_LABELS[scope == "group"]
        assert set(own["x"]) <= set(xs.tolist())  # the drawn curve is that scope's frontier (thinned)
        sy = trade["data"][3]["y"][0]
        at = ys[np.searchsorted(xs, budget + 1e-9, side="right") - 1]  # the frontier's value at the budget
        assert sy == pytest.approx(at, rel=1e-6), (budget, scope)


def test_full_precision_options_reach_the_allocation_and_are_shown(client, assets):
    """The model input x_t at full precision (fp_input) and FP as the top point (fp_top): the heatmap draws
    conv_in's input one step above the top width, the summary names the option, the export records it,
    and an uploaded allocation sets the checkboxes back."""
    import dadq

    names = dadq.Profile.load(assets["tiny_profile"]).layer_names
    out = alloc(client, target="separate", w_budget=4.0, a_budget=4.0, method="exact", full_precision=["input"])
    w, a = heat_z(out)
    li = names.index("conv_in")
    assert (a[li] == 9).all() and (np.delete(a, li, axis=0) <= 8).all()
    assert "Note: fp_input: the model input x_t" in out[2], out[2]
    own = plot_data(out[1])["data"][0]  # the frontier drawn is the one with x_t at FP
    prof = dadq.Profile.load(assets["tiny_profile"])
    assert set(own["x"]) <= set(dadq.rd_sweep(prof, "wa", scope="group", fp_input=True)[0].tolist())
    assert not set(own["x"]) <= set(dadq.rd_sweep(prof, "wa", scope="group")[0].tolist())
    data = exported(client)
    assert any(n.startswith("fp_input:") for n in data["notes"])
    out = alloc(client, budget=8.0, target="a", method="exact", full_precision=["top"])
    assert "Note: fp_top:" in out[2] and "fp_input" not in out[2]
    with pytest.raises(AppError, match="'everything'.*choices"):  # gradio names the choices
        alloc(client, full_precision=["everything"])
    alloc(client, target="separate", w_budget=4.0, a_budget=4.0, method="exact", full_precision=["input"])
    path = client.predict(api_name="/export_allocation")
    alloc(client)  # something else on display; the upload brings the option back to the checkboxes
    res = client.predict(handle_file(path), api_name="/upload_allocation")
    assert res[3 + 9] == ["input"] and res[3 + 10] == 0.0, res[3:]
    # the upload re-creates the session's sliders (gr.skip() is a property update): a typed budget out of
    # range still reaches the app's own message, not gradio's generic bound check
    with pytest.raises(AppError, match=r"above the widest profiled width"):
        alloc(client, budget=100.0)


def test_group_weights_by_the_trajectory_gain(client, assets, tmp_path):
    """The group weight power: refused with the fix while the model has no gain; 'measure trajectory
    gain' measures dadq.trajectory_gain over the profile's groups; the allocation is then dadq.allocate's
    with group_weights = gain^P, and the summary says so. A gain.json shipped beside a model folder is
    picked up on load, and one of another grouping is refused with the reason."""
    import shutil

    import dadq
    from dadq.trajectory import GAIN_FILE, gain_record

    prof = dadq.Profile.load(assets["tiny_profile"])
    kw = dict(target="w", budget=3.0, method="exact", budget_scope="mean")
    with pytest.raises(AppError, match="trajectory gain.*measure trajectory gain"):
        alloc(client, gain_power=0.5, **kw)
    status = client.predict(api_name="/measure_gain")
    model = dadq.load_model(assets["tiny"])
    gain = dadq.trajectory_gain(model, prof.groups)
    assert "measured in this session" in status and f"{gain[-1]:.3g}" in status, status
    alloc(client, gain_power=0.0, **kw)
    unweighted = np.array(exported(client)["w_bits"])
    out = alloc(client, gain_power=1.0, **kw)
    data = exported(client)
    want = dadq.allocate(prof, group_weights=gain, **kw)
    assert np.array_equal(np.array(data["w_bits"]), want.w_bits)
    assert not np.array_equal(unweighted, want.w_bits), "the gain moves bits between groups"
    assert "trajectory gain^**1**" in out[2] and "Note: group_weights: group D weighted" in out[2], out[2]
    pinned = client.predict(api_name="/pin_allocation")  # the short name of a run says it, e.g. in the FID history
    assert "budget over the mean of groups, groups weighted" in pinned, pinned
    out = alloc(client, gain_power=1.0, **{**kw, "budget_scope": "group"})  # each group alone: no effect
    assert "group_weights: no effect" in out[2] and "trajectory gain^" not in out[2]
    with pytest.raises(AppError, match="power 3: choose a power"):
        alloc(client, gain_power=3.0, **kw)

    folder = Path(shutil.copytree(assets["tiny"], tmp_path / "tiny_gain"))
    dadq.io.write_json(folder / GAIN_FILE, gain_record(model, prof.groups, gain, n=64, steps=50, sampler="ddim",
                                                      seed=0, sigma=0.01))
    status = client.predict(str(folder), assets["tiny_profile"], api_name="/load_model")[0]
    assert "Loaded" in status, status
    alloc(client, gain_power=0.5, **kw)
    assert np.array_equal(np.array(exported(client)["w_bits"]),
                          dadq.allocate(prof, group_weights=gain ** 0.5, **kw).w_bits)
    two = dadq.TimestepGroups(model.num_timesteps, 2)
    dadq.io.write_json(folder / GAIN_FILE, gain_record(model, two, gain[:2], n=64, steps=50, sampler="ddim", seed=0,
                                                      sigma=0.01))
    client.predict(str(folder), assets["tiny_profile"], api_name="/load_model")
    with pytest.raises(AppError, match="does not fit.*2 groups.*3 groups"):
        alloc(client, gain_power=0.5, **kw)
    client.predict(assets["tiny"], assets["tiny_profile"], api_name="/load_model")  # the module's model again


def test_allocation_modes(client):
    w, a = heat_z(alloc(client, target="w", budget=3.0))
    assert (a == 9).all() and (w <= 8).all()  # A stays FP: drawn one step above the top width (8)
    w, a = heat_z(alloc(client, target="separate", w_budget=2.0, a_budget=8.0, method="exact"))
    assert (w == 2).all() and (a == 8).all()
    out = alloc(client, target="separate", w_budget=3.0, a_budget=5.0)
    assert "separate budgets W 3 + A 5" in plot_data(out[0])["layout"]["title"]["text"]  # not "target wa"
    w, a = heat_z(alloc(client, weight_mode="shared", budget=4.0, budget_scope="mean"))
    assert (w == w[:, :1]).all()  # shared: the same weight bits in every group
    with pytest.raises(AppError, match="budget_scope='mean'"):  # the rule and its fix, from the core
        alloc(client, weight_mode="shared", budget=4.0, budget_scope="group")
    lam = next(c["props"] for c in client.config["components"] if c["props"].get("elem_id") == "lambda-slider")
    lo = heat_z(alloc(client, drive="lambda", log_lam=lam["maximum"]))
    hi = heat_z(alloc(client, drive="lambda", log_lam=lam["minimum"]))
    assert sum(z.sum() for z in hi) > sum(z.sum() for z in lo)  # a smaller slope buys more bits


@pytest.mark.parametrize("budget, message", [
    (1.2, r"infeasible.*smallest feasible budget is 2"), (0.5, r"infeasible.*smallest feasible budget is 2"),
    (-3, r"infeasible.*smallest feasible budget is 2"), (100, r"above the widest profiled width \(8 bits\).*at most 8")])
def test_rejected_budget_is_a_clear_error(client, capfd, caplog, budget, message):
    """Issue 19.3: the app's own message (not gradio's generic "greater than maximum"), naming the fix;
    one log line, no traceback; the displayed allocation is kept."""
    before = alloc(client, budget=4.0)
    capfd.readouterr()
    caplog.clear()
    with pytest.raises(AppError, match=message):
        alloc(client, budget=budget)
    time.sleep(0.2)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "greater than maximum" not in err
    lines = [r.getMessage() for r in caplog.records if r.name == "dadq.app"]
    assert len(lines) == 1 and "rejected" in lines[0] and not any(r.exc_info for r in caplog.records), lines
    data = exported(client)  # the last good allocation is kept: exporting gives the 4-bit one
    assert data["budget"] == 4.0 and data["format"] == "dadq-allocation/2"
    assert before[2].count("asked **4 avg bits**") == 1


def test_compare_two_allocations(client):
    """Pin A, allocate B: the B − A heatmap and both predicted D."""
    alloc(client, budget=3.0)
    assert "A** pinned" in client.predict(api_name="/pin_allocation")
    a_w, a_a = heat_z(alloc(client, budget=3.0))
    b_w, b_a = heat_z(alloc(client, budget=6.0))
    fig, md = client.predict(api_name="/compare_pinned")
    diff = plot_data(fig)
    assert (np.array(diff["data"][0]["z"]) == b_w - a_w).all() and (np.array(diff["data"][1]["z"]) == b_a - a_a).all()
    assert md.count("lagrangian") == 2 and "B / A predicted D" in md


def test_heatmap_rows_by_sensitivity_and_find(client, assets):
    """Issue 19, readability: rows most sensitive first (dadq.profile.sensitivity_ranking), per-layer
    and per-group means, and a layer found by name is marked."""
    import dadq
    from dadq.plots import layer_labels
    from dadq.profile import sensitivity_ranking

    prof = dadq.Profile.load(assets["tiny_profile"])
    w_net, a_net = heat_z(alloc(client, budget=3.0))
    fig, note = client.predict("sensitivity", "", [], False, api_name="/heatmap")
    fig = plot_data(fig)
    order = sensitivity_ranking(prof)[1]
    labels = layer_labels(prof.layer_names)
    assert fig["data"][0]["y"] == [labels[i] for i in order] and note == ""
    assert fig["data"][0]["y"] != labels  # the ranking is not network order on this profile
    assert (np.array(fig["data"][0]["z"]) == w_net[order]).all()
    assert (np.array(fig["data"][1]["z"]) == a_net[order]).all()
    a = exported(client)
    wb = np.array(a["w_bits"])  # [G, L]
    assert fig["data"][0]["x"][0] == f"g0 ({wb[0].mean():.2f})"  # each column: the group's mean bits
    assert fig["data"][0]["customdata"][0][0][3] == round(float(wb[:, order[0]].mean()), 2)  # the layer's mean
    # the order sticks through a re-allocation; a search marks the matching rows
    name = prof.layer_names[order[-1]]
    fig, note = client.predict("sensitivity", name, [], False, api_name="/heatmap")
    ys = plot_data(fig)["data"][0]["y"]
    marked = [y for y in ys if y.startswith("▶ ")]
    assert ys[-1] == "▶ " + labels[order[-1]] and len(marked) == sum(name in n for n in prof.layer_names)
    assert "match" in note
    assert plot_data(alloc(client, budget=4.0)[0])["data"][0]["y"] == ys
    _, note = client.predict("network", "no_such_layer", [], False, api_name="/heatmap")
    assert note == "no layer name contains 'no_such_layer'"
    with pytest.raises(AppError):
        client.predict("alphabetical", "", [], False, api_name="/heatmap")
    fig, _ = client.predict("network", "", [], False, api_name="/heatmap")
    assert plot_data(fig)["data"][0]["y"] == labels


def test_heatmap_blocks_collapse_and_filter(client, assets):
    """Issue 20 (c): a collapsed block is one row holding its layers' element-weighted mean bits per
    group; collapse all / expand all; 'only matching rows' keeps the rows a search finds; an unknown
    block is refused with the model's blocks."""
    import dadq
    from dadq.plots import layer_block, layer_blocks, layer_labels

    prof = dadq.Profile.load(assets["tiny_profile"])
    blocks = layer_blocks(prof.layer_names)
    w_all, _ = heat_z(alloc(client, budget=3.0))
    big = max(blocks, key=lambda b: sum(layer_block(n) == b for n in prof.layer_names))
    idx = [i for i, n in enumerate(prof.layer_names) if layer_block(n) == big]
    fig, _ = client.predict("network", "", [big], False, api_name="/heatmap")
    data = plot_data(fig)["data"][0]
    assert len(data["y"]) == prof.num_layers - len(idx) + 1
    row = data["y"].index(f"▸ {big} ({len(idx)} layers)")
    assert row == idx[0]  # where the block's first layer was
    numel = prof.w_numel[idx].astype(float)
    want = (w_all[idx] * numel[:, None]).sum(0) / numel.sum()
    assert np.allclose(data["z"][row], want, atol=0.006)
    blocks_value, fig, _ = client.predict("network", "", False, api_name="/collapse_blocks")
    assert blocks_value == blocks and len(plot_data(fig)["data"][0]["y"]) == len(blocks)
    blocks_value, fig, _ = client.predict("network", "", False, api_name="/expand_blocks")
    assert blocks_value == [] and plot_data(fig)["data"][0]["y"] == layer_labels(prof.layer_names)
    fig, note = client.predict("network", "conv1", [], True, api_name="/heatmap")
    ys = plot_data(fig)["data"][0]["y"]
    assert ys and all(y.startswith("▶ ") and "conv1" in y for y in ys) and "match" in note
    assert len(ys) == sum("conv1" in n for n in prof.layer_names)
    with pytest.raises(AppError, match="'nowhere'"):  # gradio's dropdown names the valid blocks
        client.predict("network", "", ["nowhere"], False, api_name="/heatmap")
    client.predict("network", "", [], False, api_name="/heatmap")


def test_distortion_breakdown(client):
    """Where the predicted D goes: the largest quantizers first, their shares adding up to at most 100 %."""
    alloc(client, budget=3.0)
    a = exported(client)
    table = client.predict(api_name="/distortion_breakdown")
    assert table["headers"][:4] == ["quantizer", "W/A", "D (mean over groups)", "% of D"]
    d = [r[2] for r in table["data"]]
    assert d == sorted(d, reverse=True) and 0 < sum(r[3] for r in table["data"]) <= 100.5
    G = len(a["d_w"])
    best = max([sum(a["d_w"][g][li] for g in range(G)) / G for li in range(len(a["layer_names"]))]
               + [sum(a["d_a"][g][li] for g in range(G)) / G for li in range(len(a["layer_names"]))])
    assert d[0] == pytest.approx(best, rel=1e-2)
    assert len(table["data"][0][4].split()) == G  # bits in every group


def test_compare_solvers_shows_the_gap(client):
    table = client.predict(*{**ALLOC, "budget": 3.3}.values(), api_name="/compare_solvers")
    assert table["headers"][-1] == "time (ms)"
    rows = {r[0]: r for r in table["data"]}
    assert set(rows) == {"lagrangian", "exact", "greedy", "uniform"}
    assert rows["exact"][3] == "+0.00 %"
    for m in ("lagrangian", "greedy", "uniform"):
        assert rows[m][2] >= rows["exact"][2] * (1 - 1e-9)
        assert rows[m][1] <= 3.3 + 1e-9


def test_generate_pairs(client):
    """Issue 19.6: one item per pair (FP | quantized | |FP − Q|) with its PSNR and SSIM in the caption."""
    from PIL import Image

    alloc(client, budget=3.0)
    pairs, table, grids, info = client.predict(7, 3, "ddim", 4, "", 1.0, api_name="/generate")
    assert len(pairs) == 3
    for i, item in enumerate(pairs):
        path = Path(item["image"])
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = Image.open(path).size
        assert w == 3 * h + 4  # FP, quantized and the difference map side by side (2-pixel gaps)
        psnr, ssim = table["data"][i][1], table["data"][i][2]
        assert item["caption"] == f"#{i}: PSNR {float(psnr):.1f} dB, SSIM {ssim:.3f}"
    assert [r[0] for r in table["data"]] == [0, 1, 2] and table["headers"] == ["pair", "PSNR (dB)", "SSIM"]
    assert len(grids) == 2 and all(Path(g).read_bytes()[:4] == b"\x89PNG" for g in grids)
    assert "identical noise" in info and "DDIM-4" in info
    # same seed -> the same FP images (identical noise); the FP half doesn't depend on the allocation
    alloc(client, budget=6.0)
    _, _, grids2, _ = client.predict(7, 3, "ddim", 4, "", 1.0, api_name="/generate")
    assert Path(grids[0]).read_bytes() == Path(grids2[0]).read_bytes()
    with pytest.raises(AppError, match="euler.*not in the list of choices"):
        client.predict(7, 3, "euler", 4, "", 1.0, api_name="/generate")


def test_generate_names_the_allocation_it_ran(client):
    """Issue 19.1: change the allocation while Generate runs; the result names the one it ran."""
    alloc(client, budget=3.0)
    a = exported(client)
    job = client.submit(1, 64, "ddim", 50, "", 1.0, api_name="/generate")
    wait_running(job)
    alloc(client, budget=6.0)
    b = exported(client)
    assert avg_bits_label(a) != avg_bits_label(b)
    *_, info = job.result(timeout=600)
    assert avg_bits_label(a) in info and avg_bits_label(b) not in info


def test_samples_of_a_and_b(client):
    """Issue 19, A/B: samples of the pinned A and the displayed B from the same noise as FP, each
    scored against FP, labelled with the allocations they ran (B taken at the start)."""
    alloc(client, budget=3.0)
    a = exported(client)
    client.predict(api_name="/pin_allocation")
    alloc(client, budget=6.0)
    b = exported(client)
    job = client.submit(5, 6, "ddim", 40, "", 1.0, api_name="/generate_ab")
    wait_running(job)
    alloc(client, budget=4.5)  # changed while it runs: the result still names B
    c = exported(client)
    items, table, md = job.result(timeout=600)
    assert len({avg_bits_label(x) for x in (a, b, c)}) == 3
    assert avg_bits_label(a) in md and avg_bits_label(b) in md and avg_bits_label(c) not in md
    assert table["headers"] == ["pair", "A PSNR (dB)", "A SSIM", "B PSNR (dB)", "B SSIM"] and len(items) == 6
    # B's scores are those of /generate with B displayed at the same seed (the same noise and FP images)
    alloc(client, budget=6.0)
    _, pairs, _, _ = client.predict(5, 6, "ddim", 40, "", 1.0, api_name="/generate")
    for row, ref in zip(table["data"], pairs["data"]):
        assert row[4] == pytest.approx(ref[2], abs=2e-3)
    alloc(client, budget=3.0)  # A again (the same solve): A's scores are /generate's for it
    _, pairs_a, _, _ = client.predict(5, 6, "ddim", 40, "", 1.0, api_name="/generate")
    for row, ref in zip(table["data"], pairs_a["data"]):
        assert row[2] == pytest.approx(ref[2], abs=2e-3)
    a_ssim, b_ssim = [r[2] for r in table["data"]], [r[4] for r in table["data"]]
    assert a_ssim != b_ssim
    assert items[0]["caption"] == f"#0: SSIM A {a_ssim[0]:.3f}, B {b_ssim[0]:.3f}"


def test_quality_vs_bits_sweep(client):
    """Issue 19: paired SSIM of DADQ and uniform at several budgets, plotted together, cached per setting."""
    t0 = time.perf_counter()
    fig, table, md = client.predict("3,6", 3, 2, "ddim", 4, False, "mnist", api_name="/quality_sweep")
    first_s = time.perf_counter() - t0
    rows = {(r[0], r[1]): dict(zip(table["headers"], r)) for r in table["data"]}
    assert set(rows) == {(m, b) for m in ("lagrangian", "uniform") for b in (3.0, 6.0)} and "Computed now" in md
    for r in rows.values():
        assert r["avg_bits"] <= r["budget"] + 1e-9 and 0 < r["ssim"] <= 1
    assert rows["lagrangian", 6.0]["ssim"] > rows["lagrangian", 3.0]["ssim"]
    fig = plot_data(fig)
    assert [t["name"] for t in fig["data"]] == ["lagrangian SSIM", "uniform SSIM"]
    # the lagrangian point at 6 bits is the mean SSIM /generate shows for that allocation, same noise
    alloc(client, budget=6.0)
    _, pairs, _, _ = client.predict(2, 3, "ddim", 4, "", 1.0, api_name="/generate")
    assert rows["lagrangian", 6.0]["ssim"] == pytest.approx(np.mean([r[2] for r in pairs["data"]]), abs=2e-3)
    t0 = time.perf_counter()
    _, again, md = client.predict("3,6", 3, 2, "ddim", 4, False, "mnist", api_name="/quality_sweep")
    assert "From the cache" in md and again["data"] == table["data"] and time.perf_counter() - t0 < first_s
    with pytest.raises(AppError, match="budgets"):
        client.predict("3,x", 3, 2, "ddim", 4, False, "mnist", api_name="/quality_sweep")


def test_quality_sweep_cancel(client, caplog):
    """Cancel stops the sweep (its thread too, between two chains), caches nothing, and a new sweep runs."""
    import logging

    from ui.state import STATE

    caplog.set_level(logging.WARNING, logger="dadq.app")
    before = set(STATE.quality)
    job = client.submit("2.5,3,3.5,4,5,6,7,8", 32, 9, "ddim", 40, False, "mnist", api_name="/quality_sweep")
    wait_running(job)
    client.predict(api_name="/cancel_sweep")
    _, table, md = client.predict("4", 1, 9, "ddim", 2, False, "mnist", api_name="/quality_sweep")
    assert "Computed now" in md and len(table["data"]) == 2
    t0 = time.time()  # the cancelled run's thread ends at its next chain, with one log line
    while not any("sweep was cancelled" in r.getMessage() for r in caplog.records) and time.time() - t0 < 300:
        time.sleep(0.5)
    assert any("sweep was cancelled" in r.getMessage() for r in caplog.records)
    new = set(STATE.quality) - before
    assert len(new) == 1 and next(iter(new))[3] == (4.0,)  # only the short sweep was cached


def test_fid_needs_mnist_sized_images(client):
    with pytest.raises(AppError, match=r"needs 1x28x28 images, but this model makes 1x16x16"):
        client.predict(16, 0, "ddim", 2, "mnist", api_name="/fid")


def test_additivity(client):
    alloc(client, budget=4.0)
    fig, md = client.predict(api_name="/additivity")
    fig = plot_data(fig)
    pred, meas = fig["data"][0]["y"], fig["data"][1]["y"]
    assert len(pred) == len(meas) == 3 and all(v > 0 for v in meas)
    assert fig["layout"]["yaxis"]["type"] == "log"  # one group's D must not hide the others
    assert "Correlation" in md and "on log10 values" in md and "on log10" in fig["layout"]["title"]["text"]


def test_exports_and_uploads(client, assets, tmp_path):
    """Issue 19.5 and 19.7: uploads confirm and move the controls; corrupt ones name the user's file
    (not gradio's temp path) and the fix."""
    import dadq

    prof_file = client.predict(api_name="/export_profile")
    assert dadq.Profile.load(prof_file).fingerprint == dadq.Profile.load(assets["tiny_profile"]).fingerprint
    alloc(client, budget=5.0, method="exact")
    a_file = client.predict(api_name="/export_allocation")
    a_data = json.loads(Path(a_file).read_text())
    alloc(client, budget=2.0)
    mine = tmp_path / "my_allocation.json"
    mine.write_text(Path(a_file).read_text())
    out = client.predict(handle_file(str(mine)), api_name="/upload_allocation")  # back to the 5-bit allocation
    heatmap, trade, summary, *controls, status = out
    w, a = heat_z(out)
    assert (w.T == np.array(a_data["w_bits"])).all()
    values = dict(zip(ALLOC, controls))
    assert values["budget"] == 5.0 and values["method"] == "exact" and values["target"] == "wa"  # controls follow
    assert "my_allocation.json" in status and "exact" in status  # a confirmation

    corrupt = tmp_path / "corrupt.json"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary")
    bad_json = tmp_path / "alloc.json"
    bad_json.write_text('{"format": "dadq-allocation/2", "w_bits": [[')
    for bad in (corrupt, bad_json):
        with pytest.raises(AppError) as e:
            client.predict(handle_file(str(bad)), api_name="/upload_allocation")
        msg = str(e.value)
        assert bad.name in msg and "Export allocation" in msg and "/tmp" not in msg and "gradio" not in msg, msg
    other = dict(a_data, fingerprint="0123456789abcdef")
    other_file = tmp_path / "other.json"
    other_file.write_text(json.dumps(other))
    with pytest.raises(AppError, match="another profile"):
        client.predict(handle_file(str(other_file)), api_name="/upload_allocation")

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(Path(assets["tiny_profile"]).read_bytes()[:5000])
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(truncated)), api_name="/upload_profile")
    msg = str(e.value)
    assert "truncated.safetensors" in msg and "corrupt or truncated" in msg and "Download profile" in msg
    assert "/tmp" not in msg and "gradio" not in msg, msg
    huge = tmp_path / "huge.safetensors"
    with open(huge, "wb") as f:  # sparse: over the 64 MB limit without writing it
        f.truncate(65 * 1024 * 1024)
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client.predict(handle_file(str(huge)), api_name="/upload_profile")
    # CSV exports through pandas (to_frame): the allocation, the curves, the FID history
    import pandas as pd

    table = pd.read_csv(client.predict(api_name="/export_allocation_csv"))
    assert list(table.columns[:4]) == ["layer", "kind", "group", "bits"] and len(table) == 2 * len(a_data["w_bits"]) * len(
        a_data["w_bits"][0])
    curves = pd.read_csv(client.predict(api_name="/export_curves_csv"))
    assert {"layer", "kind", "group", "bits", "D"} <= set(curves.columns) and set(curves["bits"]) == {2, 4, 8}
    with pytest.raises(AppError, match="no FID run yet"):
        client.predict(api_name="/export_fid_csv")
    # the good profile still loads, and the app still answers
    status = client.predict(handle_file(assets["tiny_profile"]), api_name="/upload_profile")[0]
    assert "Using uploaded profile" in status


def test_export_every_figure_as_svg_and_png(client):
    """Issue 19, export: every figure on display as SVG and PNG at publication size."""
    from PIL import Image

    alloc(client, budget=3.0)
    client.predict(api_name="/pin_allocation")
    alloc(client, budget=4.0)
    paths = [Path(p) for p in client.predict(-1, "bits", "layers", None, 2, 0, None, "overlay", 4, True,
                                             api_name="/export_figures")]
    names = {"rd_curves", "activations", "allocation_heatmap", "tradeoff", "b_minus_a"}
    assert {(p.stem, p.suffix) for p in paths} == {(n, s) for n in names for s in (".svg", ".png")}
    for p in paths:
        data = p.read_bytes()
        if p.suffix == ".png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(p).size[0] == 2400  # 1200 px at scale 2
        else:
            import xml.etree.ElementTree as ET

            root = ET.fromstring(data)
            assert root.tag.endswith("svg") and root.get("width") == "1200"
            assert b"<text" in data or b"class=\"xtick" in data  # axes were drawn, not an empty page


def test_wrong_model_path_keeps_state(client, assets):
    with pytest.raises(AppError, match="no model at '/no/such/model'"):
        client.predict("/no/such/model", "", api_name="/load_model")
    with pytest.raises(AppError, match="no profile file"):
        client.predict(assets["tiny"], "/no/such/profile.safetensors", api_name="/load_model")
    fig, _ = client.predict(-1, "bits", "layers", None, 2, api_name="/sensitivity")
    assert plot_data(fig)["data"][0]["x"] == [2, 4, 8]  # still the tiny profile


def test_light_events_stay_responsive_and_cancel_keeps_profile(client):
    # a long profile run (heavy queue) ...
    job = client.submit(3, "2-8", 4, "naive", "", "rtn", False, api_name="/run_profile")
    t0 = time.time()
    while not job.status().progress_data and time.time() - t0 < 30:
        time.sleep(0.2)
    assert job.status().progress_data, "the profile run never reported progress"
    # ... does not block a light allocation update
    t1 = time.perf_counter()
    alloc(client, budget=3.7)
    assert time.perf_counter() - t1 < 5.0
    assert not job.done()
    assert "Cancelled" in client.predict(api_name="/cancel_profile")
    t0 = time.time()
    while not job.done() and time.time() - t0 < 30:
        time.sleep(0.2)
    assert job.done()
    fig, _ = client.predict(-1, "bits", "layers", None, 2, api_name="/sensitivity")
    assert plot_data(fig)["data"][0]["x"] == [2, 4, 8]  # the previous profile (bits 2/4/8) is in place


def test_profile_rounding_and_bias_are_recorded_and_shown(client, assets):
    """Issue 18 in the app: Run profile with GPTQ and bias correction; the status, the header and
    the allocation summary name them, the exported allocation records them, and the summary names
    the budget scope. An unknown rounding is refused with the choices."""
    out = client.predict(3, "2,4,8", 1, "fast", "", "gptq", True, api_name="/run_profile")
    assert out[0].startswith("Profiled") and "rounding gptq · bias correction on" in out[0], out[0]
    header = out[1]["value"]  # the header view, as a gr.update
    assert "rounding gptq · bias correction on" in header, header
    for scope in ("group", "mean"):
        summary = alloc(client, budget=4.0, budget_scope=scope)[2]
        assert f"Budget scope: **{scope}**" in summary and "rounding gptq · bias correction on" in summary, summary
    data = exported(client)
    assert data["settings"]["rounding"] == "gptq" and data["settings"]["bias_correction"] is True
    assert data["budget_scope"] == "mean"
    with pytest.raises(AppError, match="'nearest'.*'rtn', 'gptq'"):  # gradio's radio names the choices
        client.predict(3, "2,4,8", 1, "fast", "", "nearest", False, api_name="/run_profile")
    out = client.predict(3, "2,4,8", 1, "fast", "", "rtn", False, "asymmetric", api_name="/run_profile")
    assert "weight grid asymmetric" in out[0] and "weight grid asymmetric" in out[1]["value"], out[0]
    assert "weight grid asymmetric" in alloc(client, budget=4.0)[2]
    out = client.predict(handle_file(assets["tiny_profile"]), api_name="/upload_profile")  # back to the RTN one
    assert "rounding rtn · bias correction off · weight grid symmetric" in out[1]["value"]
    assert "rounding rtn · bias correction off" in alloc(client, budget=4.0)[2]


def test_load_profile_and_score_a_new_model(client, assets):
    """Load a model without a profile, profile it in the app, score FID on it; a profile from
    another model is refused."""
    out = client.predict(assets["tiny28"], "", api_name="/load_model")
    assert "no profile yet" in out[0]
    fig, _ = client.predict(-1, "bits", "layers", None, 2, api_name="/sensitivity")
    assert plot_data(fig)["data"][0]["x"] == [2, 4, 8]  # views still on the old pair
    out = client.predict(2, "2,8", 1, "exact", "", "rtn", False, api_name="/run_profile")
    assert out[0].startswith("Profiled") and "1×28×28" in out[0]
    fig, _ = client.predict(-1, "bits", "layers", None, 2, api_name="/sensitivity")
    assert plot_data(fig)["data"][0]["x"] == [2, 8]
    w, a = heat_z(alloc(client, budget=5.0))
    assert w.shape[1] == 2  # two groups
    with pytest.raises(AppError, match="made for another model"):
        client.predict(handle_file(assets["tiny_profile"]), api_name="/upload_profile")

    with pytest.raises(AppError, match="Inception FID needs"):  # no Inception weights on this machine
        client.predict(16, 0, "ddim", 2, "inception", api_name="/fid")
    table = client.predict(16, 0, "ddim", 2, "mnist", api_name="/fid")
    assert table["headers"] == ["run", "model", "allocation", "rounding", "sampler", "n", "seed", "feature network",
                                "reference", "FID"]
    assert [r[1].split(" ")[0] for r in table["data"]] == ["FP", "quantized"]
    assert all(r[5] == 16 and r[7] == "MnistFeatureNet-v1" and r[8] == "mnist test"
               and np.isfinite(r[9]) and r[9] >= 0
               for r in table["data"])

    # Issue 19.1: change the allocation while FID runs; the row names the allocation it ran. And 19.7:
    # the progress names the phase, the step and the right n. Every run is kept (history).
    alloc(client, budget=3.0)
    a = exported(client)
    job = client.submit(64, 1, "ddim", 20, "mnist", api_name="/fid")
    wait_running(job)
    alloc(client, budget=7.0)
    b = exported(client)
    texts = set()
    while not job.done():
        for p in job.status().progress_data or []:
            texts.add(p.desc or "")
        time.sleep(0.05)
    table = job.result(timeout=600)
    rows = table["data"]
    assert len(rows) == 4 and [r[0] for r in rows] == [1, 1, 2, 2]  # the first run is kept
    assert avg_bits_label(a) in rows[3][2] and avg_bits_label(b) not in rows[3][2]
    assert any(t.startswith("FID 1/3") and "64+64" in t and "step" in t for t in texts), texts
    import pandas as pd

    history = pd.read_csv(client.predict(api_name="/export_fid_csv"))
    assert len(history) == 4 and list(history.columns) == table["headers"]


def test_class_conditional_dit_in_every_view(client, tmp_path):
    """Issue 20: the shipped class-conditional DiT, loaded from the Model tab with its profile: every
    view draws; Generate takes class labels and guidance, and FP and quantized both run with those
    labels and the same noise (the app's grids equal dadq.sample of the FP and the quantized model with
    them, and differ from another label's); bad labels name the classes; an unconditional model
    refuses labels."""
    from PIL import Image

    import dadq
    from ui.state import STATE

    assert STATE.model.conditioning is None  # the tiny28 UNet of the previous test
    with pytest.raises(AppError, match="not class-conditional"):
        client.predict(0, 2, "ddim", 2, "3", 1.0, api_name="/generate")
    out = client.predict("dit", "", api_name="/load_model")
    assert out[0].startswith("Loaded `dit`")
    prof = STATE.profile
    assert STATE.model.conditioning == "class" and prof.num_layers > 40
    fig, table = client.predict(-1, "bits", "layers", None, 2, api_name="/sensitivity")
    assert len(plot_data(fig)["data"]) == 2 * prof.num_layers and len(table["data"]) == prof.num_layers
    fig, table = client.predict(None, "overlay", 4, True, api_name="/activations")
    assert len(table["data"]) == prof.num_groups
    w, a = heat_z(alloc(client, budget=4.0))
    assert w.shape == (prof.num_layers, prof.num_groups) and a.shape == w.shape
    fig, note = client.predict("sensitivity", "attn1", [], False, api_name="/heatmap")
    assert "match" in note
    client.predict("network", "", [], False, api_name="/heatmap")
    assert client.predict(api_name="/distortion_breakdown")["data"]
    assert len(client.predict(*ALLOC.values(), api_name="/compare_solvers")["data"]) == 4
    fig, md = client.predict(api_name="/additivity")
    assert "Correlation" in md

    pairs, table, grids, info = client.predict(3, 4, "ddim", 3, "7", 2.0, api_name="/generate")
    assert "Class labels 7, 7, 7, 7; guidance 2" in info and len(pairs) == 4
    fp_png, q_png = (np.asarray(Image.open(g).convert("L"), dtype=float) for g in grids)
    kw = dict(n=4, steps=3, seed=3, guidance_scale=2.0, progress=False)
    qmodel = STATE.snapshot().qmodel
    for png, model in ((fp_png, STATE.model), (q_png, qmodel)):
        grid = lambda labels: np.asarray(Image.open(dadq.images.save_grid(  # noqa: E731
            dadq.sample(model, class_labels=labels, **kw), tmp_path / "g.png")).convert("L"), dtype=float)
        same, other = np.abs(png - grid(7)).max(), np.abs(png - grid(2)).mean()
        assert same <= 2 and other > 1, (same, other)  # uint8 rounding of float-level thread differences

    *_, info = client.predict(3, 3, "ddim", 2, "", 1.0, api_name="/generate")
    assert "Class labels 0, 1, 2; guidance none" in info  # empty: the model's default labels
    with pytest.raises(AppError, match="out of range"):
        client.predict(0, 2, "ddim", 2, "99", 1.0, api_name="/generate")
    with pytest.raises(AppError, match="whole numbers"):
        client.predict(0, 2, "ddim", 2, "seven", 1.0, api_name="/generate")
    # 20 (b): a new DiT profile from the Model tab, fast mode with one calibration sample per group
    out = client.predict(2, "2,4,8", 1, "fast", "", "rtn", False, api_name="/run_profile")
    assert out[0].startswith("Profiled `dit`") and STATE.profile.num_layers == prof.num_layers
    assert STATE.profile.meta["calibration"]["conditioning"] == "class"  # calibrated under guidance, both branches
    w, _ = heat_z(alloc(client, budget=4.0))
    assert w.shape == (prof.num_layers, 2)
    *_, info = client.predict(0, 2, "ddim", 2, "5", 1.0, api_name="/generate")
    assert "Class labels 5, 5; guidance none" in info
