"""The README's evidence tables are generated from the committed sweep results, never typed."""
import json

from experiments import report
from benchmarks.common import REPO, RESULTS


def test_readme_report_blocks_match_the_committed_results():
    text = (REPO / "README.md").read_text()
    names = [m["name"] for m in report.BLOCK.finditer(text)]
    assert "sweep_quick" in names
    assert report.update_readme(text, None) == text, "run `python -m experiments.report --readme README.md`"
    assert report.main(["--readme", str(REPO / "README.md"), "--check"]) == 0


def test_fid_table_shows_every_seed_and_the_ratio_to_fp_of_the_same_seeds():
    fid = [{"row": "FP", "fid": 10.0, "seed": 1}, {"row": "FP", "fid": 20.0, "seed": 2},
           {"row": "WA 4 exact G=10", "fid": 30.0, "seed": 1}, {"row": "WA 4 exact G=10", "fid": 50.0, "seed": 2},
           {"row": "W 4 exact G=10", "fid": 40.0, "seed": 1}]
    t = report.fid_table(fid, [1, 2]).splitlines()
    assert t[3] == "| WA 4 exact G=10 | 30.00 | 50.00 | 40.00 ± 14.14 | 2.67× |"  # 40 / mean(10, 20)
    assert t[4] == "| W 4 exact G=10 | 40.00 | – | 40.00 (1 seed) | 4.00× |"  # seed 1 only: its FP is 10


def test_render_reads_the_numbers_from_the_result(tmp_path):
    result = json.loads((RESULTS / "sweep_quick.json").read_text())
    md = report.render(result)
    for r in result["fid"]:
        assert f"{r['fid']:.2f}" in md
    exact4 = next(c for c in result["cells"] if (c["target"], c["budget"], c["method"], c["weight_mode"])
                  == ("wa", 4.0, "exact", "per-group"))
    assert f"{exact4['paired_ssim_mean']:.3f} ({exact4['avg_bits_used']:.2f})" in md
    # a stale block is found and named
    readme = tmp_path / "R.md"
    readme.write_text("x\n<!-- report sweep_quick -->\nold numbers\n<!-- /report -->\ny\n")
    assert report.main(["--readme", str(readme), "--check"]) == 1
    assert report.main(["--readme", str(readme)]) == 0
    assert readme.read_text() == "x\n<!-- report sweep_quick -->\n" + md + "<!-- /report -->\ny\n"
    assert report.main(["--readme", str(readme), "--check"]) == 0
