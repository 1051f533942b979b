"""Where 8-bit activations lose FID: in which half of the trajectory, and through the timestep embedding?

    python -m experiments.activation_cost            # -> experiments/results/activation_cost.json
    python -m experiments.activation_cost --quick    # 64 samples, 25 steps

Weights stay at full precision; every layer's input is quantized to 8 bits (uniform, per-tensor ranges per
group from the profile), the model input x_t kept at full precision (``fp_input``), as in the W4A8 rows. The
model is sampled with those activations quantized in every group, only in the low-noise half, only in the
high-noise half, and in every group but with the timestep-embedding path (``time_layers``) at full precision;
FP from the same sampler and seed beside them. At W4A8 the activations cost FID that the profile's per-step D
does not show (docs/results.md, "Candidate bits up to 10"); this asks where it goes.
"""
from __future__ import annotations

from benchmarks.common import EXPERIMENT_RESULTS, command_line, machine_facts, print_table, sampling_experiment, write_result
from experiments.group_halves import fid_rows, halves

NAME = "activation_cost"
BITS = 8  # activation bits of every quantized input


def time_layers(names: list[str]) -> tuple[str, ...]:
    """The layers that read the timestep embedding: its MLP and every ResNet's projection of it."""
    return tuple(n for n in names if n.startswith("time_embedding.") or n.endswith(".time_emb_proj"))


def main(argv=None) -> int:
    import dadq

    args, model, prof = sampling_experiment(__doc__, argv, n=1000, seed=1, quick_n=64)
    alloc = dadq.allocate(prof, budget=BITS, target="a", method="uniform", fp_input=True)
    G = prof.num_groups
    fp_time = time_layers(prof.layer_names)
    rows = fid_rows(dadq, model, prof, alloc, args,
                    halves(G) + [("every group, timestep embedding at FP", list(range(G)), fp_time)])
    print_table(["row", "FID"], [[r["row"], r["fid"]] for r in rows],
                title=f"A {BITS}, weights FP, x_t FP: {args.n} samples, DDIM-{args.steps}, seed {args.seed}")
    write_result(NAME, {"benchmark": NAME, "command": command_line(NAME, "experiments"), "machine": machine_facts(),
                        "setup": {"n": args.n, "steps": args.steps, "seed": args.seed, "groups": G, "bits": BITS,
                                  "time_layers": list(fp_time), "profile_settings": prof.settings(),
                                  "fingerprint": prof.fingerprint},
                        "rows": rows}, args.out, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
