"""The app's tabs and their widgets: one builder per tab. Each builder adds its widgets to a
``Widgets`` namespace under readable names; the names of the views match ``ui.views.view_values``,
so a model change can refresh them all. No events here: app.py wires them."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from dadq.allocate import METHODS
from dadq.sweep import QUALITY_COLUMNS

from .handlers import GAIN_POWER_MAX, MAX_UPLOAD_BYTES
from .texts import HOW_IT_WORKS
from .views import AB_COLUMNS, BREAKDOWN_COLUMNS, FID_COLUMNS, FULL_PRECISION, PAIR_COLUMNS, SCOPES

TARGETS = [("joint W+A budget", "wa"), ("separate W and A budgets", "separate"), ("weights only (A stays FP)", "w"),
           ("activations only (W stays FP)", "a")]
DRIVES = [("size budget (average bits)", "budget"), ("slope λ (log scale)", "lambda")]
WEIGHT_MODES = [("per-group weights (paper; stores every copy)", "per-group"), ("shared weights (one copy)", "shared")]


class Widgets:
    """The app's components by name (``w.budget``), plus the views to refresh after a model change."""

    def __init__(self, values: dict[str, dict]):
        self.values = values  # name -> props of the current state (ui.views.view_values)

    def view(self, name: str, cls, **kwargs):
        """A component whose props follow the state: created with its current values, refreshable."""
        comp = cls(**kwargs, **self.values[name])
        setattr(self, name, comp)
        return comp

    def views(self) -> dict:
        return {name: getattr(self, name) for name in self.values}


class BudgetSlider(gr.Slider):
    """A gr.Slider whose typed value reaches the handler even outside [minimum, maximum]: gradio's own
    check would answer a typed 100 with a generic 'greater than maximum' and no fix; the handler
    answers with the valid range, and the controls go back to the displayed allocation.

    A subclass, not a patched instance: a property update (the drive/target toggle's visibility, a
    gr.skip()) makes gradio re-create the session's component from its class, which dropped a patch.
    ``is_template`` keeps the frontend's slider. Gradio writes a .pyi stub beside this module on
    import (git-ignored)."""

    is_template = True

    def preprocess(self, payload):
        return None if payload is None else float(payload)


def sensitivity_tab(w: Widgets):
    with gr.Tab("Layer sensitivity", id="sensitivity"):
        with gr.Row():
            w.view("sens_view", gr.Radio, choices=[("all layers, one group", "layers"),
                                                   ("one layer, all groups", "groups")], label="view", scale=2)
            w.view("sens_group", gr.Dropdown, label="timestep group", scale=2)
            w.view("sens_layer", gr.Dropdown, label="layer (for 'one layer, all groups')", scale=3)
            w.view("sens_x", gr.Radio, choices=[("bits", "bits"), ("size", "size")], label="x axis", scale=1)
            w.view("sens_bits", gr.Dropdown, label="rank at bits", scale=1)
            w.sens_top = gr.Number(value=0, precision=0, minimum=0, label="draw the top-k layers (0 = all)", scale=1,
                                   elem_id="sens-top-k")
        w.view("sens_plot", gr.Plot, label="RD curves", elem_id="rd-plot")
        w.view("sens_table", gr.Dataframe, label="layers ranked by sensitivity (D_W + D_A at the chosen bits; ★ = "
               "conv_in/out, time embedding, shortcuts)", interactive=False, max_height=360, elem_id="rank-table")


def activations_tab(w: Widgets):
    with gr.Tab("Activations", id="activations"):
        with gr.Row():
            w.view("act_layer", gr.Dropdown, label="layer (default: the one whose range varies most across groups)",
                   scale=3)
            w.view("act_style", gr.Radio, choices=[("overlaid", "overlay"), ("ridge", "ridge")], label="style",
                   scale=1)
            w.view("act_bits", gr.Dropdown, label="clipped range at bits", scale=1)
            w.view("act_log", gr.Checkbox, label="log density", scale=1)
        w.view("act_plot", gr.Plot, label="input distribution per timestep group", elem_id="act-plot")
        w.view("act_table", gr.Dataframe, label="calibrated range per group (min, max, clip)", interactive=False,
               max_height=420, elem_id="act-table")


def allocation_tab(w: Widgets):
    with gr.Tab("Budget & allocation", id="allocation"):
        with gr.Row():
            with gr.Column(scale=1, min_width=340):
                w.view("drive", gr.Radio, choices=DRIVES, label="what drives the allocation")
                w.view("target", gr.Radio, choices=TARGETS, label="target")
                w.view("budget", BudgetSlider, label="size budget (average bits per element)", step=0.05,
                       elem_id="budget-slider")
                w.view("w_budget", BudgetSlider, label="W budget (average bits)", step=0.05, elem_id="w-budget-slider")
                w.view("a_budget", BudgetSlider, label="A budget (average bits)", step=0.05, elem_id="a-budget-slider")
                w.view("log_lam", gr.Slider, label="log10 λ (distortion per average bit)", step=0.05,
                       elem_id="lambda-slider")
                w.view("method", gr.Dropdown, choices=list(METHODS), label="solver (a λ always uses lagrangian)")
                w.view("weight_mode", gr.Radio, choices=WEIGHT_MODES, label="weight mode")
                w.view("budget_scope", gr.Radio, choices=[(label, sc) for sc, label in SCOPES.items()],
                       label="budget scope (shared weights under a joint budget: mean only)", elem_id="budget-scope")
                w.view("full_precision", gr.CheckboxGroup, choices=FULL_PRECISION, label="full precision",
                       elem_id="full-precision")
                w.view("gain_power", BudgetSlider, minimum=0.0, maximum=GAIN_POWER_MAX, step=0.05,
                       label="group weights: each group's D × trajectory gain^P (0 = off; acts where groups share a "
                             "solve: budget scope mean, shared weights, or λ)", elem_id="gain-power")
                w.view("gain_md", gr.Markdown, elem_id="gain-status")
                with gr.Row():
                    w.gain_btn = gr.Button("measure trajectory gain", size="sm", elem_id="gain-btn")
                    w.gain_cancel = gr.Button("cancel", size="sm", elem_id="gain-cancel")
                # /allocate for API clients: all three views in one answer (the browser's events below
                # send the heatmap first and the trade-off figure after it)
                w.api_allocate = gr.Button("allocate", visible=False)
                w.view("summary", gr.Markdown, elem_id="alloc-summary")
                with gr.Row():
                    w.compare_btn = gr.Button("compare solvers", size="sm", elem_id="compare-btn")
                    w.add_btn = gr.Button("measure additivity", size="sm", elem_id="additivity-btn")
                w.view("solver_df", gr.Dataframe, label="all solvers at this budget", interactive=False,
                       elem_id="solver-table", wrap=True, elem_classes=["dadq-fit"])
                with gr.Row():
                    w.pin_btn = gr.Button("pin as A", size="sm", elem_id="pin-btn")
                    w.ab_btn = gr.Button("compare B with A", size="sm", elem_id="compare-ab-btn")
                w.ab_md = gr.Markdown(elem_id="ab-summary")
            with gr.Column(scale=2):
                with gr.Row():
                    w.heat_order = gr.Radio([("network order", "network"), ("most sensitive first", "sensitivity")],
                                            value="network", label="heatmap rows", elem_id="heat-order")
                    w.heat_find = gr.Textbox(label="find a layer (name contains; marked ▶)", elem_id="heat-find")
                    w.view("heat_only", gr.Checkbox, label="only matching rows", elem_id="heat-only")
                with gr.Row():
                    w.view("heat_blocks", gr.Dropdown, multiselect=True, label="blocks shown as one row (▸)",
                           elem_id="heat-blocks", scale=4)
                    w.collapse_btn = gr.Button("collapse all", size="sm", elem_id="collapse-all", scale=1)
                    w.expand_btn = gr.Button("expand all", size="sm", elem_id="expand-all", scale=1)
                w.heat_note = gr.Markdown(elem_id="heat-find-note")
                w.view("heatmap", gr.Plot, label="bit allocation", elem_id="heatmap")
                w.view("trade_plot", gr.Plot, label="total RD trade-off", elem_id="tradeoff")
                # in the wide column: one column per group's bits and shares
                w.breakdown_btn = gr.Button("where the distortion goes", size="sm", elem_id="breakdown-btn")
                w.breakdown_df = gr.Dataframe(pd.DataFrame(columns=BREAKDOWN_COLUMNS), interactive=False, wrap=True,
                                              label="largest shares of the predicted D (quantizer = layer's W or A)",
                                              elem_id="breakdown-table", elem_classes=["dadq-fit"])
                # the slider's fast path: figure specs drawn in place by ui.texts.redraw_js
                w.heat_spec = gr.JSON(visible=False)
                w.trade_spec = gr.JSON(visible=False)
                w.ab_plot = gr.Plot(label="B − A bits (pin an allocation as A, then compare)", elem_id="ab-heatmap")
                w.view("add_plot", gr.Plot, label="additivity", elem_id="additivity")
                w.view("add_md", gr.Markdown)


def samples_tab(w: Widgets):
    with gr.Tab("Samples", id="samples"):
        with gr.Row():
            w.seed = gr.Number(value=0, precision=0, minimum=0, label="seed")
            w.count = gr.Slider(1, 64, value=16, step=1, label="count")
            w.sampler = gr.Radio([("DDIM", "ddim"), ("DDPM (all T steps)", "ddpm")], value="ddim", label="sampler",
                                 elem_id="sampler")
            w.view("steps", gr.Slider, minimum=1, step=1, label="DDIM steps", elem_id="steps-slider")
            w.gen_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
        with gr.Row():  # active only for a class-conditional model (ui.views.view_values)
            w.view("class_labels", gr.Textbox, label="class labels (comma separated, repeated to the count; empty = "
                   "0, 1, …, K−1, 0, …)", elem_id="class-labels", scale=3)
            w.view("guidance", gr.Slider, minimum=0, maximum=10, step=0.25, label="guidance scale (1 = none)",
                   elem_id="guidance-slider", scale=2)
        w.gen_md = gr.Markdown(elem_id="generate-info")
        w.pairs = gr.Gallery(label="pairs from identical noise: FP | quantized | |FP − Q|", format="png", columns=4,
                             height="auto", elem_id="pair-gallery", elem_classes=["dadq-pixelated", "dadq-pairs"],
                             object_fit="contain", allow_preview=True)
        with gr.Row():
            w.gen_ab_btn = gr.Button("samples of A and B (pin A in the Allocation tab)", size="sm",
                                     elem_id="generate-ab-btn")
        w.gen_ab_md = gr.Markdown(elem_id="generate-ab-info")
        w.ab_pairs = gr.Gallery(label="A/B from identical noise: FP | A | B", format="png", columns=4, height="auto",
                                elem_id="ab-gallery", elem_classes=["dadq-pixelated", "dadq-pairs"],
                                object_fit="contain", allow_preview=True)
        w.ab_df = gr.Dataframe(pd.DataFrame(columns=AB_COLUMNS), interactive=False, elem_id="ab-table",
                               label="per-pair PSNR / SSIM of A and of B against FP", max_height=300)
        with gr.Row():
            w.pair_df = gr.Dataframe(pd.DataFrame(columns=PAIR_COLUMNS), interactive=False,
                                     label="per-pair PSNR / SSIM (quantized vs FP)", max_height=300)
            w.grid_files = gr.File(label="PNG grids (FP, quantized)", file_count="multiple", interactive=False)
        gr.Markdown("---")
        with gr.Row():
            w.q_budgets = gr.Textbox(value="2.5,3,4,6", label="quality vs bits: budgets (average bits)",
                                     elem_id="quality-budgets")
            w.q_n = gr.Slider(1, 64, value=8, step=1, label="samples per point")
            w.q_fid = gr.Checkbox(value=False, label="also FID (slow; MNIST-sized models)")
            w.q_btn = gr.Button("quality vs bits sweep", elem_id="quality-btn")
            w.q_cancel = gr.Button("cancel sweep", variant="stop", size="sm", elem_id="quality-cancel")
        w.q_md = gr.Markdown(elem_id="quality-info")
        with gr.Row():
            w.q_plot = gr.Plot(label="quality vs bits (DADQ and uniform)", elem_id="quality-plot")
            w.q_df = gr.Dataframe(pd.DataFrame(columns=QUALITY_COLUMNS[:-1]), interactive=False,  # FID: on request
                                  label="quality vs bits", elem_id="quality-table")
        gr.Markdown("---")
        w.view("fid_info", gr.Markdown)
        with gr.Row():
            w.fid_n = gr.Slider(16, 2048, value=256, step=16, label="FID samples (each of FP and quantized)")
            w.fid_feature = gr.Radio([("MNIST classifier (default)", "mnist"),
                                      ("Inception-v3 (local weights)", "inception")], value="mnist",
                                     label="feature network")
            w.fid_btn = gr.Button("Compute FID", elem_id="fid-btn")
        w.fid_df = gr.Dataframe(pd.DataFrame(columns=FID_COLUMNS), label="FID, every run (lower is better)",
                                interactive=False, elem_id="fid-table", wrap=True, elem_classes=["dadq-fit"])


def model_tab(w: Widgets, model_src: str):
    with gr.Tab("Model", id="model"):
        w.model_status = gr.Markdown("Load a model (with the profile beside it), run a new profile, or move "
                                     "profiles and allocations in and out.", elem_id="model-status")
        with gr.Row():
            w.model_box = gr.Textbox(value=model_src, label="model: 'default', a local diffusers folder, or a hub id "
                                     "(online only)", scale=3, elem_id="model-src")
            w.prof_box = gr.Textbox(value="", label="profile file (optional; default: profile.safetensors beside the "
                                    "model)", scale=3, elem_id="profile-src")
            w.load_btn = gr.Button("Load model", scale=1, elem_id="load-btn")
        gr.Markdown("#### New profile of the loaded model (fast mode measures 3 widths and fills the rest from the "
                    "noise model; exact measures all)")
        with gr.Row():
            w.view("p_groups", gr.Number, precision=0, minimum=1, label="groups G")
            w.view("p_bits", gr.Textbox, label="bits (2-8 or 2,4,8)")
            w.p_calib = gr.Number(value=8, precision=0, minimum=1, label="calibration samples / group")
            w.p_mode = gr.Radio(["exact", "fast", "naive"], value="fast", label="mode")
            w.p_layers = gr.Textbox(value="", label="layers (globs, comma separated; empty = all)")
        with gr.Row():
            w.p_rounding = gr.Radio([("round to nearest", "rtn"), ("GPTQ (Hessian-aware, slower)", "gptq"),
                                     ("GPTQ, activation order", "gptq-act"),
                                     ("GPTQ, activation order, clip by output error", "gptq-act-clip"),
                                     ("GPTQ, activation order, Hessian per group (a weight copy per group)",
                                      "gptq-act-group")],
                                    value="rtn", label="weight rounding", elem_id="profile-rounding")
            w.p_bias = gr.Checkbox(value=False, label="bias correction (per group)", elem_id="profile-bias")
            w.p_grid = gr.Radio([("symmetric (zero point 0)", "symmetric"),
                                 ("asymmetric (a zero point per channel: every level of the width)", "asymmetric")],
                                value="symmetric", label="weight grid", elem_id="profile-grid")
        with gr.Row():
            w.prof_btn = gr.Button("Run profile", variant="primary", elem_id="profile-btn")
            w.cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-btn")
        gr.Markdown(f"#### Files (uploads up to {MAX_UPLOAD_BYTES // 2**20} MB)")
        with gr.Row():
            w.prof_up = gr.File(label="upload a profile (.safetensors)", file_types=[".safetensors"],
                                elem_id="profile-upload")
            w.alloc_up = gr.File(label="upload an allocation (.json)", file_types=[".json"], elem_id="alloc-upload")
            with gr.Column():
                w.prof_dl_btn = gr.Button("Download profile")
                w.alloc_dl_btn = gr.Button("Export allocation (JSON)")
                with gr.Row():
                    w.alloc_csv_btn = gr.Button("allocation (CSV)", size="sm")
                    w.curves_csv_btn = gr.Button("RD curves (CSV)", size="sm")
                    w.fid_csv_btn = gr.Button("FID history (CSV)", size="sm")
                w.dl_file = gr.File(label="download", interactive=False, elem_id="download-file")
                w.fig_btn = gr.Button("every figure (SVG + PNG, 1200 px wide)", size="sm", elem_id="figures-btn")
                w.fig_files = gr.File(label="figures", file_count="multiple", interactive=False, elem_id="figure-files")


def how_tab(w: Widgets):
    with gr.Tab("How it works", id="how"):
        gr.Markdown(HOW_IT_WORKS)


def build(values: dict[str, dict], model_src: str) -> Widgets:
    """Every tab, in order, inside the current gr.Blocks. Returns the widgets by name."""
    w = Widgets(values)
    gr.Markdown("## dadq · distribution-aware mixed-precision quantization of diffusion models")
    w.view("header", gr.Markdown, elem_id="dadq-header")
    with gr.Tabs():
        sensitivity_tab(w)
        activations_tab(w)
        allocation_tab(w)
        samples_tab(w)
        model_tab(w, model_src)
        how_tab(w)
    return w
