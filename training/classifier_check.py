"""The default model card's classifier check on any MNIST model folder, without touching its card:
1,000 DDIM-100 samples from seed 0, the share with MNIST-classifier confidence > 0.9, class shares,
and the FID of those samples (MNIST-classifier features, not Inception). Writes <folder>/classifier_check.json.

    python training/classifier_check.py assets/default
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import dadq  # noqa: E402
from dadq.io import write_json  # noqa: E402
from evaluate_default import classifier_check  # noqa: E402

if len(sys.argv) != 2:
    raise SystemExit("usage: python training/classifier_check.py <model folder>  (a save_pretrained folder, e.g. "
                     "assets/default)")
folder = sys.argv[1]
samples = dadq.sample(dadq.load_model(folder), n=1000, steps=100, seed=0)
out = {"model": folder, **classifier_check(samples), "fid_ddim100_1k": dadq.fid(samples),
       "command": "python training/classifier_check.py " + folder}
write_json(Path(folder) / "classifier_check.json", out)
print(json.dumps(out))
