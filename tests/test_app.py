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
             "/export_profile", "/export_allocation"}
ALLOC = dict(drive="budget", budget=4.0, log_lam=0.0, w_budget=4.0, a_budget=4.0, target="wa", method="lagrangian",
             weight_mode="per-group")


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
    assert fig["data"][0]["y"] == pytest.approx(prof.d_w[1, 0].tolist(), rel=1e-6)
    assert len(table["data"]) == L and table["headers"][3] == "D_W @4b"
    ranked = [r[5] for r in table["data"]]
    assert ranked == sorted(ranked, reverse=True)
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
    assert names == ["λ sweep (Lagrangian hull)", "uniform bits", "current allocation"]
    assert 5.0 < trade["data"][2]["x"][0] <= 6.0 + 1e-9


def test_allocation_modes(client):
    w, a = heat_z(alloc(client, target="w", budget=3.0))
    assert (a == 9).all() and (w <= 8).all()  # A stays FP: drawn one step above the top width (8)
    w, a = heat_z(alloc(client, target="separate", w_budget=2.0, a_budget=8.0, method="exact"))
    assert (w == 2).all() and (a == 8).all()
    w, a = heat_z(alloc(client, weight_mode="shared", budget=4.0))
    assert (w == w[:, :1]).all()  # shared: the same weight bits in every group
    lam = next(c["props"] for c in client.config["components"] if c["props"].get("elem_id") == "lambda-slider")
    lo = heat_z(alloc(client, drive="lambda", log_lam=lam["maximum"]))
    hi = heat_z(alloc(client, drive="lambda", log_lam=lam["minimum"]))
    assert sum(z.sum() for z in hi) > sum(z.sum() for z in lo)  # a smaller slope buys more bits


def test_infeasible_budget_is_a_clear_error(client):
    before = alloc(client, budget=4.0)
    with pytest.raises(AppError, match=r"infeasible.*smallest feasible budget is 2"):
        alloc(client, budget=1.2)
    # the last good allocation is kept: exporting gives the 4-bit one
    path = client.predict(api_name="/export_allocation")
    data = json.loads(Path(path).read_text())
    assert data["budget"] == 4.0 and data["format"] == "dadq-allocation/1"
    assert before[2].count("asked **4 avg bits**") == 1


def test_compare_solvers_shows_the_gap(client):
    table = client.predict(*{**ALLOC, "budget": 3.3}.values(), api_name="/compare_solvers")
    rows = {r[0]: r for r in table["data"]}
    assert set(rows) == {"lagrangian", "exact", "greedy", "uniform"}
    assert rows["exact"][3] == "+0.00 %"
    for m in ("lagrangian", "greedy", "uniform"):
        assert rows[m][2] >= rows["exact"][2] * (1 - 1e-9)
        assert rows[m][1] <= 3.3 + 1e-9


def test_generate_pairs(client):
    alloc(client, budget=3.0)
    fp, q, pairs, grids, info = client.predict(7, 3, "ddim", 4, api_name="/generate")
    assert len(fp) == 3 and len(q) == 3
    for item in fp + q:
        assert Path(item["image"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r[0] for r in pairs["data"]] == [0, 1, 2] and pairs["headers"] == ["pair", "PSNR (dB)", "SSIM"]
    assert len(grids) == 2 and all(Path(g).read_bytes()[:4] == b"\x89PNG" for g in grids)
    assert "identical noise" in info and "DDIM-4" in info
    # same seed -> the same FP images (identical noise); the FP half doesn't depend on the allocation
    alloc(client, budget=6.0)
    fp2, q2, *_ = client.predict(7, 3, "ddim", 4, api_name="/generate")
    assert [Path(a["image"]).read_bytes() for a in fp] == [Path(b["image"]).read_bytes() for b in fp2]
    with pytest.raises(AppError, match="euler.*not in the list of choices"):
        client.predict(7, 3, "euler", 4, api_name="/generate")


def test_fid_needs_mnist_sized_images(client):
    with pytest.raises(AppError, match=r"needs 1x28x28 images, but this model makes 1x16x16"):
        client.predict(16, 0, "ddim", 2, "mnist", api_name="/fid")


def test_additivity(client):
    alloc(client, budget=4.0)
    fig, md = client.predict(api_name="/additivity")
    fig = plot_data(fig)
    pred, meas = fig["data"][0]["y"], fig["data"][1]["y"]
    assert len(pred) == len(meas) == 3 and all(v > 0 for v in meas)
    assert "Correlation" in md


def test_exports_and_uploads(client, assets, tmp_path):
    import dadq

    prof_file = client.predict(api_name="/export_profile")
    assert dadq.Profile.load(prof_file).fingerprint == dadq.Profile.load(assets["tiny_profile"]).fingerprint
    alloc(client, budget=5.0, method="exact")
    a_file = client.predict(api_name="/export_allocation")
    a_data = json.loads(Path(a_file).read_text())
    alloc(client, budget=2.0)
    out = client.predict(handle_file(a_file), api_name="/upload_allocation")  # back to the 5-bit allocation
    w, a = heat_z(out)
    assert (w.T == np.array(a_data["w_bits"])).all()

    bad_json = tmp_path / "alloc.json"
    bad_json.write_text('{"format": "dadq-allocation/1", "w_bits": [[')
    with pytest.raises(AppError, match="not valid JSON"):
        client.predict(handle_file(str(bad_json)), api_name="/upload_allocation")
    other = dict(a_data, fingerprint="0123456789abcdef")
    other_file = tmp_path / "other.json"
    other_file.write_text(json.dumps(other))
    with pytest.raises(AppError, match="another profile"):
        client.predict(handle_file(str(other_file)), api_name="/upload_allocation")

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(Path(assets["tiny_profile"]).read_bytes()[:5000])
    with pytest.raises(AppError, match="corrupt or truncated"):
        client.predict(handle_file(str(truncated)), api_name="/upload_profile")
    huge = tmp_path / "huge.safetensors"
    with open(huge, "wb") as f:  # sparse: over the 64 MB limit without writing it
        f.truncate(65 * 1024 * 1024)
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client.predict(handle_file(str(huge)), api_name="/upload_profile")
    # the good profile still loads, and the app still answers
    status = client.predict(handle_file(assets["tiny_profile"]), api_name="/upload_profile")[0]
    assert "Using uploaded profile" in status


def test_wrong_model_path_keeps_state(client, assets):
    with pytest.raises(AppError, match="no model at '/no/such/model'"):
        client.predict("/no/such/model", "", api_name="/load_model")
    with pytest.raises(AppError, match="no profile file"):
        client.predict(assets["tiny"], "/no/such/profile.safetensors", api_name="/load_model")
    fig, _ = client.predict(-1, "bits", "layers", None, 2, api_name="/sensitivity")
    assert plot_data(fig)["data"][0]["x"] == [2, 4, 8]  # still the tiny profile


def test_light_events_stay_responsive_and_cancel_keeps_profile(client):
    # a long profile run (heavy queue) ...
    job = client.submit(3, "2-8", 4, "naive", "", api_name="/run_profile")
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


def test_load_profile_and_score_a_new_model(client, assets):
    """Load a model without a profile, profile it in the app, score FID on it; a profile from
    another model is refused."""
    out = client.predict(assets["tiny28"], "", api_name="/load_model")
    assert "no profile yet" in out[0]
    fig, _ = client.predict(-1, "bits", "layers", None, 2, api_name="/sensitivity")
    assert plot_data(fig)["data"][0]["x"] == [2, 4, 8]  # views still on the old pair
    out = client.predict(2, "2,8", 1, "exact", "", api_name="/run_profile")
    assert out[0].startswith("Profiled") and "1×28×28" in out[0]
    fig, _ = client.predict(-1, "bits", "layers", None, 2, api_name="/sensitivity")
    assert plot_data(fig)["data"][0]["x"] == [2, 8]
    w, a = heat_z(alloc(client, budget=5.0))
    assert w.shape[1] == 2  # two groups
    with pytest.raises(AppError, match="made for another model"):
        client.predict(handle_file(assets["tiny_profile"]), api_name="/upload_profile")

    from dadq.metrics import FID_LABEL

    with pytest.raises(AppError, match="Inception FID needs"):  # no Inception weights on this machine
        client.predict(16, 0, "ddim", 2, "inception", api_name="/fid")
    table = client.predict(16, 0, "ddim", 2, "mnist", api_name="/fid")
    assert table["headers"][1] == FID_LABEL
    assert [r[0].split(" ")[0] for r in table["data"]] == ["FP", "quantized"]
    assert all(r[2] == 16 and r[5] == "MnistFeatureNet-v1" and np.isfinite(r[1]) and r[1] >= 0
               for r in table["data"])
