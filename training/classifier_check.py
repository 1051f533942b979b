"""The default model card's classifier check on any MNIST model folder, without touching its card:
1,000 DDIM-100 samples from seed 0, the share with MNIST-classifier confidence > 0.9, class shares,
and the FID of those samples (MNIST-classifier features, not Inception). Writes <folder>/classifier_check.json.

    python training/classifier_check.py training/mnist-next
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import dadq  # noqa: E402
from dadq.io import write_json  # noqa: E402
from dadq.metrics import classify  # noqa: E402

folder = sys.argv[1]
samples = dadq.sample(dadq.load_model(folder), n=1000, steps=100, seed=0)
labels, conf = classify(samples)
counts = np.bincount(labels, minlength=10) / len(labels)
out = {"model": folder, "frac_conf_gt_0.9": float((conf > 0.9).mean()), "class_fractions": counts.round(4).tolist(),
       "fid_ddim100_1k": dadq.fid(samples), "command": "python training/classifier_check.py " + folder}
write_json(Path(folder) / "classifier_check.json", out)
print(json.dumps(out))
