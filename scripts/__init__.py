"""Reproducible builders of the shipped assets. Run them from the repository root as modules:

    python -m scripts.train_default --dataset mnist --out assets/default   # the embedded DDPM
    python -m scripts.train_featurenet                                    # the FID feature network + reference
    python -m scripts.build_default_profile                               # the shipped profile
    python -m scripts.evaluate_default --quick                            # the model card's quality section
"""
