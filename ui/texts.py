"""Static texts of the app, and the page's CSS and JavaScript."""

TITLE = "dadq: distribution-aware diffusion quantization"

HOW_IT_WORKS = """
### How it works

**1 · Timestep groups.** A diffusion model denoises in T steps (T = 1000 for DDPM). Early steps
(large t) see almost pure noise, late steps (small t) nearly clean images, and the inputs of a layer
look very different across them: compare the groups in the *Activations* tab. So the T steps are cut
into G groups (t 0–99, 100–199, ...), and each group gets its own activation ranges and its own bits.

**2 · Rate–distortion curves.** For one group g, quantize a single quantizer (one layer's weights
W, or its input activations A) to b bits, keep everything else in full precision, and measure how
much the predicted noise changes: D = (1 − SSIM) + MSE of ε. Repeating this for every layer and
bit width gives one curve D_{g,l}(b) per quantizer, against its size s_l(b) = elements × b bits
(*Layer sensitivity* tab). Steep curves are sensitive layers.

**3 · Additivity.** Quantizing many layers at once costs, to first order, the sum of their
individual D. The *measure additivity* button checks that on the loaded model.

**4 · Equal slopes.** Minimising Σ D_{g,l}(b_l) under a size budget Σ s_l(b_l) ≤ B has a classic
answer: at the optimum every curve has the same slope λ (distortion saved per extra bit). For a
given λ each quantizer simply picks argmin_b D + λ·s, which is instant; sweeping λ traces the best
trade-off (the *Total RD trade-off* curve) and a budget maps to λ by bisection. The λ sweep only
reaches points on the lower convex hull, so the *exact* solver (a knapsack) can do slightly better
in between: *compare solvers* shows the gap.

**5 · Storage honesty.** With *per-group* weights (the paper) a layer may use different weight bits
in different groups, and a deployed model must store every distinct copy; the stored size counts
them. *Shared* weights keep one copy and allocate only activations per group.

**6 · Where the curves are blind.** D is measured on one step's ε. The model's input x_t, read by
conv_in, has a coarse 8-bit step in the noisy early groups; the ε error there is small, so its
curve calls it cheap, but an early step's error moves the whole trajectory. *Full precision →
model input x_t* keeps it unquantized, outside the budget (one image's elements per step).
The same blindness holds between groups: an ε error at the noisy steps is carried through every later
step, one at the last steps barely moves the image. The *trajectory gain* measures how far, per group
(the final sample's MSE per unit ε MSE added at that group's steps); *group weights* multiply each
group's D by gain^P where groups share one budget (scope *mean*, shared weights, or λ). P = 0 is the
profile as measured; which P pays is the model's and the sampler's to measure by FID (the default
model's sweep over P: docs/results.md, "Group weights between none and the gain").
"""

# Pixel art stays sharp. The pair gallery: each item is as wide as its strip (FP | Q | |FP − Q|),
# its caption sits below the image in full (not cut to "#0 PSNR …"), and the grid grows with its
# rows instead of scrolling. Tables wrap their cells, so the last columns stay on screen. A failed
# event's "Error" chip over its outputs is hidden: it covered the views, and the toast holds the message.
CSS = """
.dadq-pixelated img { image-rendering: pixelated; }
#pair-gallery .grid-wrap { max-height: none !important; min-height: 0 !important; overflow-y: visible !important; }
#pair-gallery .grid-container { grid-template-rows: none !important; grid-auto-rows: auto !important; }
#pair-gallery .thumbnail-item { aspect-ratio: auto !important; height: auto !important; display: flex;
  flex-direction: column; }
#pair-gallery .thumbnail-item > img { aspect-ratio: 3.2 / 1; height: auto !important; }
#pair-gallery .caption-label { position: static !important; max-width: none !important; white-space: normal !important;
  overflow: visible !important; border: none !important; background: none !important; text-align: center !important;
  font-size: var(--text-md) !important; }
.wrap > span.error { display: none !important; }  /* the status tracker's "Error" chip: the toast says it */
.dadq-fit table { table-layout: auto !important; width: 100% !important; }
.dadq-fit th, .dadq-fit td { white-space: normal !important; overflow-wrap: anywhere; min-width: 0 !important; }
"""

# Arrow keys (and Home/End/PageUp/PageDown) move a range slider without a pointer: gradio's slider
# then fires only `input`, never `release`, and nothing would update. On key-up, send the release
# a pointer would have sent, so the keyboard allocates exactly like a drag (once, at the end).
KEYBOARD_JS = """
() => {
  const keys = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);
  document.addEventListener("keyup", (e) => {
    const t = e.target;
    if (t instanceof HTMLInputElement && t.type === "range" && keys.has(e.key)) {
      t.dispatchEvent(new PointerEvent("pointerup", {bubbles: true}));
    }
  }, true);
}
"""

# The slider's fast path redraws a figure in place. gr.Plot re-creates its plotly element on every
# new value (a keyed block: Plotly.react on the old element, then newPlot on a new one), about two
# full draws of the 1,280-cell heatmap per release; measured in chromium that was most of the
# release -> redraw time. The allocation events send the figure to a hidden gr.JSON instead, and
# this calls Plotly.react on the element already on the page (one incremental draw), with the layout
# tweaks gr.Plot applies (autosize, room for the title under the label). A plot not mounted yet (its
# tab just opened) is waited for, up to 10 s; a newer figure for the same plot replaces a waiting one.
def redraw_js(elem_id: str) -> str:
    """JS for ``event.success(None, hidden_json, None, js=...)``: Plotly.react ``#elem_id``'s plot
    with the figure spec in the JSON (``{data, layout}``)."""
    return f"""(fig) => {{
  if (!fig || !fig.data) return;
  const latest = (window.__dadqFigures = window.__dadqFigures || {{}});
  latest['{elem_id}'] = fig;
  const draw = (tries) => {{
    if (latest['{elem_id}'] !== fig) return;
    const g = document.querySelector('#{elem_id} .js-plotly-plot');
    if (!g || !window.Plotly) {{ if (tries > 0) setTimeout(() => draw(tries - 1), 50); return; }}
    const layout = Object.assign({{}}, fig.layout, {{autosize: true}});
    layout.margin = Object.assign({{}}, layout.margin, {{autoexpand: true}});
    if (layout.title) layout.margin.t = Math.max(100, layout.margin.t || 0);
    window.Plotly.react(g, fig.data, layout);
  }};
  draw(200);
}}"""
