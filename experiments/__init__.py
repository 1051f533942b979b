"""Evidence sweeps: does rate-distortion allocation beat its baselines? Run from the repository root.

    python -m experiments.sweep --quick     # methods x budgets, groups ablation, FID (about 10 minutes)
    python -m experiments.bias_shift        # the mean output shift of weight rounding (conv_out)
    python -m experiments.rounding_ablation # GPTQ, bias correction, split concat ranges, measured out of sample
    python -m experiments.report            # docs/results.md's generated tables from experiments/results/

experiments/README.md explains how to run the full sweeps in resumable slices (the cell cache).
"""
