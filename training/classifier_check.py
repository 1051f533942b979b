"""The default model card's classifier check on any MNIST model folder, without touching its card:
1,000 DDIM-100 samples from seed 0, the share with MNIST-classifier confidence > 0.9, class shares,
and the FID of those samples (MNIST-classifier features, not Inception). Writes <folder>/classifier_check.json.

    python -m training.classifier_check assets/default
"""
import json
import sys
from pathlib import Path

import dadq
from dadq.io import write_json
from scripts.evaluate_default import classifier_check


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m training.classifier_check <model folder>  (a save_pretrained folder, e.g. "
                         "assets/default)")
    folder = argv[0]
    samples = dadq.sample(dadq.load_model(folder), n=1000, steps=100, seed=0)
    out = {"model": folder, **classifier_check(samples), "fid_ddim100_1k": dadq.fid(samples),
           "command": "python -m training.classifier_check " + folder}
    write_json(Path(folder) / "classifier_check.json", out)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
