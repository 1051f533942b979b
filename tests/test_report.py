"""docs/results.md and the README's headline tables are generated from the committed results, never typed."""
import json
import re

from experiments import report

RESULTS_MD = report.REPO / "docs" / "results.md"
README = report.REPO / "README.md"


def test_generated_blocks_match_the_committed_results():
    text = RESULTS_MD.read_text()
    names = [m["name"] for m in report.BLOCK.finditer(text)]
    for name in ("sweep", "sweep_fashion", "sweep_quick", "sweep_fid5k", "headline", "solver_speed", "profile_speed",
                 "sampling_speed", "app", "default_model"):
        assert name in names
    assert report.stale_blocks(text) == [], f"run `{report.REGENERATE}`"
    assert report.stale_blocks(README.read_text()) == [], f"run `{report.REGENERATE}`"
    assert report.main(["--check"]) == 0


def test_check_fails_when_results_md_is_stale(tmp_path, capsys):
    stale = tmp_path / "results.md"
    text = RESULTS_MD.read_text()
    start = text.index("<!-- report sweep_fid5k -->")  # one number changed inside that block only
    stale.write_text(text[:start] + text[start:].replace("| FP | 11.58 |", "| FP | 11.57 |", 1))
    assert report.main(["--doc", str(stale), "--check"]) == 1
    assert "sweep_fid5k" in capsys.readouterr().err
    assert report.main(["--doc", str(stale)]) == 0
    assert stale.read_text() == text


def test_fid_table_shows_every_seed_and_the_ratio_to_fp_of_the_same_seeds():
    fid = [{"row": "FP", "fid": 10.0, "seed": 1}, {"row": "FP", "fid": 20.0, "seed": 2},
           {"row": "WA 4 exact G=10", "fid": 30.0, "seed": 1}, {"row": "WA 4 exact G=10", "fid": 50.0, "seed": 2},
           {"row": "W 4 exact G=10", "fid": 40.0, "seed": 1}]
    t = report.fid_table(fid, [1, 2]).splitlines()
    assert t[3] == "| WA 4 exact G=10 | 30.00 | 50.00 | 40.00 ± 14.14 | 2.67× |"  # 40 / mean(10, 20)
    assert t[4] == "| W 4 exact G=10 | 40.00 | – | 40.00 (1 seed) | 4.00× |"  # seed 1 only: its FP is 10


def test_render_reads_the_numbers_from_the_result(tmp_path):
    result = json.loads((report.RESULTS / "sweep_quick.json").read_text())
    md = report.render(result)
    assert "`experiments/results/sweep_quick.json`" in md
    for r in result["fid"]:
        assert f"{r['fid']:.2f}" in md
    exact4 = next(c for c in result["cells"] if (c["target"], c["budget"], c["method"], c["weight_mode"])
                  == ("wa", 4.0, "exact", "per-group"))
    assert f"{exact4['paired_ssim_mean']:.3f} ({exact4['avg_bits_used']:.2f})" in md
    # a stale block is found and named, rewritten, and then passes
    doc = tmp_path / "R.md"
    doc.write_text("x\n<!-- report sweep_quick -->\nold numbers\n<!-- /report -->\ny\n")
    assert report.main(["--doc", str(doc), "--check"]) == 1
    assert report.main(["--doc", str(doc)]) == 0
    assert doc.read_text() == "x\n<!-- report sweep_quick -->\n" + md + "<!-- /report -->\ny\n"
    assert report.main(["--doc", str(doc), "--check"]) == 0


def test_headline_and_speed_numbers_come_from_their_result_files():
    fid5k = {r["row"]: r["fid"] for r in json.loads((report.RESULTS / "sweep_rounding_5k.json").read_text())["fid"]}
    head = report.headline()
    assert f"FP {fid5k['FP']:.2f}" in head
    pairs = [report.headline_rows(key) for key, *_ in report.ROUNDING_SETTINGS]
    assert all(f" {report.SHIPPED_PROFILE} " in row for pair in pairs for row in pair)  # the shipped profile's rows
    shown = [d for d, _ in pairs if d in fid5k]
    assert shown, "the headline has no 5k DADQ row to show"
    for row in shown:
        assert f"{fid5k[row]:.2f} ({fid5k[row] / fid5k['FP']:.2f}× FP)" in head
    # the uniform column: the strongest baseline run, uniform bits over the shipped profile (this CPU, else the GPU's
    # seed 1) or over the 16-sample profile the grids ran over, whichever is lower
    gpu = {r["row"]: r["fid"] for r in json.loads((report.RESULTS / f"{report.GPU_5K}.json").read_text())["fid"]
           if r["seed"] == 1}
    for _, u in pairs:
        grid = u.replace(f" {report.SHIPPED_PROFILE} ", f" {report.GRID_PROFILE} ")
        found = [x for x in (fid5k.get(u, gpu.get(u)), fid5k.get(grid)) if x is not None]
        if found:
            assert f"{min(found):.2f} ({min(found) / fid5k['FP']:.2f}× FP" in head
    solver = json.loads((report.BENCH_RESULTS / "solver_speed.json").read_text())
    ms = solver["targets"]["real: dadq.allocate"]["lagrangian_worst_ms"]
    assert f"{ms:.1f} ms" in report.speed_targets()
    app = json.loads((report.BENCH_RESULTS / "app.json").read_text())
    assert f"{app['allocate_roundtrip_ms']['median']:.0f} ms" in report.speed_targets()


def test_readme_is_a_front_page_that_links_only_inside_the_repo():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links and not [u for u in links if u.startswith("..") or "shared/" in u]
    for u in links:
        if not u.startswith(("http", "#")):
            assert (report.REPO / u.split("#")[0]).exists(), u


def test_docs_link_only_to_files_that_exist_in_the_repo():
    for doc in (RESULTS_MD, report.REPO / "docs" / "method.md", report.REPO / "experiments" / "README.md"):
        for u in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if u.startswith(("http", "#")):
                continue
            target = (doc.parent / u.split("#")[0]).resolve()
            assert target.is_relative_to(report.REPO) and target.exists(), f"{doc.name}: {u}"


def test_rounding_grid_quotes_every_finished_row_and_computes_its_verdicts():
    """Issue 18's grid: every FID and paired SSIM of the result is in the block, each ratio is to the FP of
    the same seed, and the per-setting verdicts follow the numbers (a swapped result flips them)."""
    result = json.loads((report.RESULTS / "sweep_rounding.json").read_text())
    md = report.rounding_grid()
    fp = next(r["fid"] for r in result["fid"] if r["row"] == "FP")
    for r in result["fid"]:
        assert f"{r['fid']:.2f}" in md
        if r["row"] != "FP":
            assert f"{r['fid'] / fp:.2f}×" in md and f"{r['paired_ssim_mean']:.3f}" in md
    rows = {r["row"]: r for r in result["fid"]}
    for key, name, _, _ in report.ROUNDING_SETTINGS:
        have = all(f"{key} {k}" in rows for k in ("uniform G=10", "exact G=10")) and any(
            f"{key} {k}" in rows for k in report.STRONG_UNIFORM) and any(f"{key} {k}" in rows for k in report.DADQ_GPTQ)
        assert (f"- **{name}:** not finished." in md) != have


def test_rounding_verdict_follows_the_numbers(monkeypatch):
    def fake(fid_u, fid_e, fid_su, fid_dg, ssim_su, ssim_dg):
        base = {"seed": 1, "n": 256, "sampler": "DDIM-25", "label": "FID", "a_avg_bits": 32.0, "w_avg_bits": 4.0}
        rows = [{**base, "row": "FP", "fid": 10.0}]
        for k, f, s in (("uniform G=10", fid_u, 0.5), ("exact G=10", fid_e, 0.9), ("uniform G=10 gptq ends@8", fid_su, ssim_su),
                        ("exact G=10 gptq", fid_dg, ssim_dg)):
            rows.append({**base, "row": f"W 4 {k}", "fid": f, "paired_ssim_mean": s})
        return {"command": "python -m experiments.sweep", "complete": True, "fid": rows,
                "setup": {"profile": "p", "more_profiles": {}}}

    monkeypatch.setattr(report, "load", lambda name: fake(100.0, 50.0, 20.0, 15.0, 0.95, 0.97))
    md = report.rounding_grid()
    assert "the better quantizer buys more" in md and "beats it on both FID and paired SSIM" in md
    monkeypatch.setattr(report, "load", lambda name: fake(100.0, 15.0, 50.0, 60.0, 0.95, 0.90))
    md = report.rounding_grid()
    assert "the better allocation buys more" in md and "does **not** beat it (FID behind, paired SSIM behind)" in md
    monkeypatch.setattr(report, "load", lambda name: fake(100.0, 50.0, 20.0, 19.5, 0.95, 0.97))
    assert "is level on FID and ahead on paired SSIM" in report.rounding_grid()  # 2.5% apart: one seed can't tell
