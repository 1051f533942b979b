"""dadq analysis app: a Gradio Blocks UI over the dadq core. This file is the entry point and the
wiring: which event calls which handler (``ui.handlers``) with which widgets (``ui.layout``).

    python app.py                                  # the shipped default model and profile, http://127.0.0.1:7860
    python app.py --model PATH_OR_HUB_ID --profile FILE [--host 127.0.0.1] [--port 7860] [--share]

Models, profiles and the displayed allocation are module-global (``ui.state.STATE``), never in
``gr.State``. Every event has an ``api_name``, so ``gradio_client`` can drive it:

  light (own queues, stay responsive):  /sensitivity /activations /allocate /heatmap /collapse_blocks
      /expand_blocks /compare_solvers
      /upload_allocation /export_allocation /export_profile /export_figures /cancel_profile /cancel_sweep
      /cancel_gain
  heavy (one queue, concurrency_id "heavy", one at a time, with progress):  /generate /generate_ab /quality_sweep /fid
      /additivity /load_model /run_profile /upload_profile /measure_gain

Bad input (an infeasible budget, a wrong path, a profile of another model, a corrupt upload) raises
``gr.Error`` naming the problem and the fix; the app keeps its last good state, and the allocation
controls go back to the allocation on display.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse  # noqa: E402
import functools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

import dadq  # noqa: E402  (torch + diffusers: the bulk of start-up)
from dadq.models import default_profile_path  # noqa: E402
from ui import handlers as h, layout, views  # noqa: E402
from ui.state import STATE  # noqa: E402
from ui.texts import CSS, KEYBOARD_JS, TITLE, redraw_js  # noqa: E402

MAX_FILE_SIZE = "64mb"  # gradio's upload limit (launch(max_file_size=...)); the handlers check it again
HEAVY = dict(concurrency_id="heavy", concurrency_limit=1)  # profile, sampling, FID, model loads


def refresh(w: layout.Widgets, result):
    """After a model/profile event: the status line first, then (if the pair changed) every view."""
    msg, changed = result
    out = {w.model_status: msg + "\n\n" + views.header_md(), w.header: views.header_md()}
    if changed:
        values = views.view_values(h.sensitivity, h.activations)
        out.update({comp: gr.update(**values[name]) for name, comp in w.views().items()})
    return out


def wire_views(w: layout.Widgets):
    """Tabs 1 and 2: any control input redraws its tab."""
    sens_in = [w.sens_group, w.sens_x, w.sens_view, w.sens_layer, w.sens_bits, w.sens_top]
    gr.on([c.input for c in sens_in], h.sensitivity, sens_in, [w.sens_plot, w.sens_table], api_name="sensitivity",
          trigger_mode="always_last", show_progress="minimal")
    act_in = [w.act_layer, w.act_style, w.act_bits, w.act_log]
    gr.on([c.input for c in act_in], h.activations, act_in, [w.act_plot, w.act_table], api_name="activations",
          trigger_mode="always_last", show_progress="minimal")


def alloc_controls(w: layout.Widgets) -> list:
    """The allocation controls, in the order of the handlers' arguments (``ui.handlers.ALLOC_CONTROLS``)."""
    return [getattr(w, name) for name in h.ALLOC_CONTROLS]


def wire_allocation(w: layout.Widgets):
    """Tab 3: sliders allocate on release (a drag's end, a typed value's blur, or a key-up: see
    texts.KEYBOARD_JS), discrete controls on input; never on .change, which fires twice. The heatmap
    and summary come first, the trade-off figure in a chained event; both figures are drawn in place
    on the page (texts.redraw_js), not by replacing gr.Plot's value. A rejected input raises the
    app's message (a toast) and resets the controls to the allocation on display."""
    controls = alloc_controls(w)
    triggers = [w.budget.release, w.log_lam.release, w.w_budget.release, w.a_budget.release, w.drive.input,
                w.target.input, w.method.input, w.weight_mode.input, w.budget_scope.input, w.full_precision.input,
                w.gain_power.release]
    if os.environ.get("DADQ_APP_PLOT_REDRAW") == "1":
        # the previous path (figures as gr.Plot values, which re-create their plot element), kept only
        # as benchmarks/app_bench's same-run baseline
        @h.safe
        def plot_first(*values):
            h._allocate(*values)
            return views.heatmap_view(), views.summary_view()

        first = gr.on(triggers, plot_first, controls, [w.heatmap, w.summary], api_name="allocate_first",
                      api_visibility="private", trigger_mode="always_last", show_progress="hidden",
                      concurrency_id="allocate")
        first.success(views.tradeoff_view, None, w.trade_plot, api_visibility="private", show_progress="hidden",
                      concurrency_id="allocate")
    else:
        first = gr.on(triggers, h.allocate_first, controls, [w.heat_spec, w.summary], api_name="allocate_first",
                      api_visibility="private", trigger_mode="always_last", show_progress="hidden",
                      concurrency_id="allocate")
        first.success(None, w.heat_spec, None, js=redraw_js("heatmap"), api_visibility="private")
        second = first.success(h.tradeoff, None, w.trade_spec, api_visibility="private", show_progress="hidden",
                               concurrency_id="allocate")
        second.success(None, w.trade_spec, None, js=redraw_js("tradeoff"), api_visibility="private")
    first.failure(h.reset_controls, None, controls, queue=False, show_progress="hidden", api_visibility="private")
    w.api_allocate.click(h.allocate, controls, [w.heatmap, w.trade_plot, w.summary], api_name="allocate",
                         concurrency_id="allocate")

    def toggle(drive, target):
        lam = drive == "lambda"
        sep = target == "separate" and not lam
        return (gr.update(visible=not lam and not sep), gr.update(visible=sep), gr.update(visible=sep),
                gr.update(visible=lam))

    gr.on([w.drive.change, w.target.change], toggle, [w.drive, w.target], [w.budget, w.w_budget, w.a_budget,
          w.log_lam], api_name="toggle_controls", api_visibility="private", queue=False, show_progress="hidden")
    rows_in = [w.heat_order, w.heat_find, w.heat_blocks, w.heat_only]
    gr.on([w.heat_order.input, w.heat_find.submit, w.heat_blocks.input, w.heat_only.input], h.heatmap, rows_in,
          [w.heatmap, w.heat_note], api_name="heatmap", concurrency_id="allocate", trigger_mode="always_last")
    for btn, collapse in ((w.collapse_btn, True), (w.expand_btn, False)):
        btn.click(functools.partial(h.collapse_blocks, collapse), [w.heat_order, w.heat_find, w.heat_only],
                  [w.heat_blocks, w.heatmap, w.heat_note], api_name="collapse_blocks" if collapse else "expand_blocks",
                  concurrency_id="allocate")
    gain_evt = w.gain_btn.click(h.measure_gain, None, w.gain_md, api_name="measure_gain",
                                show_progress_on=[w.gain_md], **HEAVY)
    w.gain_cancel.click(h.cancel_gain, None, w.gain_md, api_name="cancel_gain", cancels=[gain_evt], queue=False)
    w.compare_btn.click(h.compare_solvers, controls, w.solver_df, api_name="compare_solvers")
    w.add_btn.click(h.additivity, None, [w.add_plot, w.add_md], api_name="additivity", **HEAVY)
    w.breakdown_btn.click(h.distortion_breakdown, None, w.breakdown_df, api_name="distortion_breakdown")
    w.pin_btn.click(h.pin_allocation, None, w.ab_md, api_name="pin_allocation")
    w.ab_btn.click(h.compare_pinned, None, [w.ab_plot, w.ab_md], api_name="compare_pinned")


def wire_samples(w: layout.Widgets):
    """Tab 4: Generate and FID run in the heavy queue; DDPM makes the DDIM steps slider inactive."""
    w.sampler.change(h.sampler_controls, w.sampler, w.steps, queue=False, show_progress="hidden",
                     api_visibility="private")
    sample_in = [w.seed, w.count, w.sampler, w.steps, w.class_labels, w.guidance]
    w.gen_btn.click(h.generate, sample_in, [w.pairs, w.pair_df, w.grid_files, w.gen_md], api_name="generate", **HEAVY)
    w.gen_ab_btn.click(h.generate_ab, sample_in, [w.ab_pairs, w.ab_df, w.gen_ab_md], api_name="generate_ab", **HEAVY)
    q_evt = w.q_btn.click(h.quality_sweep, [w.q_budgets, w.q_n, w.seed, w.sampler, w.steps, w.q_fid, w.fid_feature],
                          [w.q_plot, w.q_df, w.q_md], api_name="quality_sweep", show_progress_on=[w.q_md], **HEAVY)
    w.q_cancel.click(h.cancel_sweep, None, w.q_md, api_name="cancel_sweep", cancels=[q_evt], queue=False)
    w.fid_btn.click(h.fid, [w.fid_n, w.seed, w.sampler, w.steps, w.fid_feature], w.fid_df, api_name="fid",
                    show_progress_on=[w.fid_df], **HEAVY)


def wire_model(w: layout.Widgets):
    """Tab 5: model and profile changes answer with the status line, then every refreshed view."""
    refresh_out = [w.model_status] + list(w.views().values())

    @h.safe
    def load_model_ui(src, prof, progress=gr.Progress()):
        return refresh(w, h.load_model(src, prof, progress=progress))

    @h.safe
    def run_profile_ui(groups, bits, calib, mode, layers, rounding, bias_correction, weight_grid,
                       progress=gr.Progress()):
        return refresh(w, h.run_profile(groups, bits, calib, mode, layers, rounding, bias_correction, weight_grid,
                                        progress=progress))

    @h.safe
    def upload_profile_ui(file):
        return refresh(w, h.upload_profile(file))

    w.load_btn.click(load_model_ui, [w.model_box, w.prof_box], refresh_out, api_name="load_model",
                     show_progress_on=[w.model_status], **HEAVY)
    prof_evt = w.prof_btn.click(run_profile_ui, [w.p_groups, w.p_bits, w.p_calib, w.p_mode, w.p_layers, w.p_rounding,
                                                  w.p_bias, w.p_grid], refresh_out,
                                api_name="run_profile", show_progress_on=[w.model_status], **HEAVY)
    w.cancel_btn.click(h.cancel_profile, None, w.model_status, api_name="cancel_profile", cancels=[prof_evt],
                       queue=False)
    w.prof_up.upload(upload_profile_ui, w.prof_up, refresh_out, api_name="upload_profile",
                     show_progress_on=[w.model_status], **HEAVY)
    controls = alloc_controls(w)
    w.alloc_up.upload(h.upload_allocation, w.alloc_up, [w.heatmap, w.trade_plot, w.summary, *controls, w.model_status],
                      api_name="upload_allocation", show_progress_on=[w.model_status])
    w.prof_dl_btn.click(h.export_profile, None, w.dl_file, api_name="export_profile")
    w.alloc_dl_btn.click(h.export_allocation, None, w.dl_file, api_name="export_allocation")
    w.alloc_csv_btn.click(h.export_allocation_csv, None, w.dl_file, api_name="export_allocation_csv")
    w.curves_csv_btn.click(h.export_profile_csv, None, w.dl_file, api_name="export_curves_csv")
    w.fig_btn.click(h.export_figures, [w.sens_group, w.sens_x, w.sens_view, w.sens_layer, w.sens_bits, w.sens_top,
                                       w.act_layer, w.act_style, w.act_bits, w.act_log], w.fig_files,
                    api_name="export_figures")
    w.fid_csv_btn.click(h.export_fid_csv, None, w.dl_file, api_name="export_fid_csv")


def build_demo(model_src: str = "default", profile_path: str | None = None) -> gr.Blocks:
    """Load ``model_src`` with its profile (``profile_path``, or the one shipped beside the model) and
    build the Blocks. Raises ValueError with a clear message if either can't be loaded."""
    model = dadq.load_model(model_src)
    path = Path(profile_path).expanduser() if profile_path else default_profile_path(model_src)
    if path is None:
        raise ValueError(f"no profile for model {model_src!r}: pass --profile FILE, or make one with "
                         f"`dadq profile --model {model_src} --out profile.safetensors`.")
    STATE.install(model, model_src, dadq.Profile.load(path), path)
    values = views.view_values(h.sensitivity, h.activations)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        w = layout.build(values, model_src)
        wire_views(w)
        wire_allocation(w)
        wire_samples(w)
        wire_model(w)
    demo.queue(max_size=64)
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """demo.launch with the app's defaults: 127.0.0.1, upload size limit, its CSS and JS, no share."""
    kwargs.setdefault("server_name", "127.0.0.1")
    kwargs.setdefault("max_file_size", MAX_FILE_SIZE)
    kwargs.setdefault("share", False)
    kwargs.setdefault("css", CSS)
    kwargs.setdefault("js", KEYBOARD_JS)
    kwargs.setdefault("footer_links", ["api", "gradio"])
    return demo.launch(**kwargs)


def main(argv=None):
    ap = argparse.ArgumentParser(description="dadq analysis app (Gradio).")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--model", default="default", help="'default', a local diffusers folder, or a hub id")
    ap.add_argument("--profile", default=None, help="profile .safetensors (default: the one beside the model)")
    ap.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        demo = build_demo(args.model, args.profile)
    except ValueError as e:
        print(f"dadq app: {e}", file=sys.stderr)
        return 2
    print(f"dadq app: built in {time.perf_counter() - t0:.1f} s; serving http://{args.host}:{args.port}", flush=True)
    launch(demo, server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
