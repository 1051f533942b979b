"""Benchmark scripts; run them from the repository root as ``python -m benchmarks.<name>``.

    python -m benchmarks.solver_speed      # dadq.solve / dadq.allocate times, exact-vs-Lagrangian gap
    python -m benchmarks.profile_speed     # profile modes naive / exact / fast: speed and accuracy
    python -m benchmarks.sampling_speed    # quantized / FP sampling time
    python -m experiments.sweep --quick     # methods x budgets: distortion, additivity, paired SSIM, G ablation

Each writes ``benchmarks/results/<name>.json`` (plus plots for the sweep). Absolute times on the
2-core development CPU vary about 3x from run to run, so every script reports ratios measured
within one run, with the compared variants interleaved and repeated, and medians taken.
"""
