"""How long a full profile of the CIFAR-10 DDPM architecture takes (google/ddpm-cifar10-32's UNet2DModel,
35.7 M parameters, 113 quantizable layers, random seeded weights: no hub download; the time does not depend
on the weights' values).

    python -m benchmarks.profile_cifar10 --device cuda                  # both recipes below, full settings
    python -m benchmarks.profile_cifar10 --quick                        # G=2, bits 4 and 8, 3 layers (a check)

Each recipe is one ``dadq.profile`` call with the shipped defaults (G=10, bits 2-8, 16 calibration samples
per group, DDIM-100 calibration, exact mode, weights and activations):
- ``rtn``: round to nearest, the library default;
- ``shipped``: the recipe of the default model's shipped profile (``gptq-act`` rounding, bias correction).
Progress is written to the result as the profile runs (the elapsed time at each tenth of it), so a run cut
short by a time limit still says how far it got and how fast.
"""
from __future__ import annotations

import argparse
import time

from benchmarks.common import add_common_args, command_line, machine_facts, setup_threads, write_result

RECIPES = {"rtn": dict(rounding="rtn", bias_correction=False),
           "shipped": dict(rounding="gptq-act", bias_correction=True)}


def main(argv=None) -> int:
    import dadq
    from dadq.models import CIFAR10_DDPM_CONFIG, quantizable_layers

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "G=2, bits 4 and 8, 2 calibration samples per group, 3 layers")
    p.add_argument("--device", default="cpu")
    p.add_argument("--recipes", default="rtn,shipped", help=f"comma-separated, of {', '.join(RECIPES)}")
    p.add_argument("--note", default=None, help="a remark stored with the result (e.g. what shared the machine)")
    args = p.parse_args(argv)
    setup_threads(args.threads)
    name = "profile_cifar10" + ("_quick" if args.quick else "") + ("" if args.device == "cpu" else f"_{args.device}")
    model = dadq.load_model(dict(CIFAR10_DDPM_CONFIG), seed=0, device=args.device)
    settings = (dict(groups=2, bits=[4, 8], calib_per_group=2, calib_steps=10,
                     layers=["conv_in", "re:^mid_block.attentions.0.to_q$", "conv_out"]) if args.quick else {})
    result = {"benchmark": name, "command": command_line("profile_cifar10"), "machine": machine_facts(),
              "note": args.note, "model": {"config": "google/ddpm-cifar10-32 (dadq.models.CIFAR10_DDPM_CONFIG)",
                                           "parameters": sum(t.numel() for t in model.unet.parameters()),
                                           "quantizable_layers": len(quantizable_layers(model.unet))},
              "settings": dict(settings), "recipes": {}}
    for recipe in args.recipes.split(","):
        row = result["recipes"][recipe] = {**RECIPES[recipe], "progress": [], "complete": False}
        t0 = time.perf_counter()
        last = [0.0]

        def progress(frac, text, row=row, t0=t0, last=last):
            # a tenth of the way at a time: enough to extrapolate a cut-short run, few writes
            if frac - last[0] >= 0.1 or frac >= 1.0:
                last[0] = frac
                row["progress"].append([round(frac, 4), round(time.perf_counter() - t0, 2)])
                write_result(name, result, args.out)
                print(f"{recipe}: {100 * frac:.0f}% after {time.perf_counter() - t0:.1f} s", flush=True)

        prof = dadq.profile(model, device=args.device, progress=progress, **RECIPES[recipe], **settings)
        row.update(seconds=round(time.perf_counter() - t0, 2), complete=True, quantizers=len(prof.layer_names),
                   groups=prof.num_groups, bits=prof.bits.tolist(), calib_per_group=prof.meta.get("calib_per_group"))
        print(f"{recipe}: full profile in {row['seconds']:.1f} s", flush=True)
        write_result(name, result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
