"""What the app holds between events. Heavy objects (models, profiles) live here, module-global,
never in ``gr.State``: one model, its profile, the displayed allocation, the last samples, and the
FID history."""
from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import dadq
from dadq.allocate import GROUP_WEIGHTED_NOTE
from dadq.models import shipped_file
from dadq.rounding import needs_calibration
from dadq.trajectory import GAIN_FILE, load_gain

DEFAULT_BUDGET = 4.0


class Cancelled(Exception):
    """Raised from the profile progress callback when the user presses Cancel."""


@dataclass(frozen=True)
class Snapshot:
    """What a long job runs, taken at its start: the allocation, its label and its quantized model.
    The job labels its result with this, never with whatever is displayed when it ends."""

    alloc: object
    label: str
    qmodel: object


# notes dadq.allocate writes -> what an allocation's short name adds for them (two runs that differ only
# there must not share a name in the FID history)
LABEL_NOTES = {"fp_input:": "x_t FP", "fp_top:": "FP top", GROUP_WEIGHTED_NOTE: "groups weighted"}


def has_note(alloc, start: str) -> bool:
    """Whether one of the notes dadq.allocate wrote for ``alloc`` starts with ``start``."""
    return any(n.startswith(start) for n in alloc.notes)


def gain_origin(where: str, n, sampler: str, steps) -> str:
    """Where the app's trajectory gain came from and how it was measured, as the views name it."""
    return f"{where}, {n} samples, {str(sampler).upper()}-{steps}"


def alloc_label(alloc) -> str:
    """A short name of an allocation: solver, average bits used, target and weight mode, then the budget
    scope where it is the mean over groups and the options its notes record (LABEL_NOTES)."""
    target = "W/A separate" if isinstance(alloc.budget, (tuple, list)) else alloc.target
    extra = ["budget over the mean of groups"] if alloc.budget_scope == "mean" else []
    extra += [word for start, word in LABEL_NOTES.items() if has_note(alloc, start)]
    return ", ".join([f"{alloc.method}", f"{float(alloc.group_avg_bits.mean()):.2f} avg bits", target,
                      alloc.weight_mode, *extra])


class AppState:
    """One model, its profile, the displayed allocation (and the request that made it), samples."""

    def __init__(self):
        self.model = None
        self.model_src = None
        self.profile = None
        self.profile_path: Path | None = None
        self.pending = None  # (model, src): loaded, but no profile of it yet; the views show the old pair
        self.alloc = None
        self.requested = None  # the budget the user asked for (to show the Lagrangian's unused gap)
        self.request: dict | None = None  # the controls that made ``alloc`` (to reset them after a rejection)
        self.samples = None
        self.fid_rows: list[list] = []  # every FID run, kept (model, allocation, ..., score)
        self.pinned = None  # allocation A of an A/B comparison
        self.quality: dict = {}  # quality-vs-bits sweeps, keyed by model fingerprint + settings
        self.heat_order, self.heat_find = "network", ""  # heatmap rows: order, and the layer search marked
        self.heat_collapsed: list[str] = []  # heatmap blocks shown as one row each (dadq.plots.layer_block)
        self.heat_only = False  # heatmap: only the rows the search finds
        self.sweeps: dict = {}
        self.gain = None  # float [G]: the trajectory gain of (model, profile's groups), or None: not measured
        self.gain_source = ""  # where ``gain`` came from, or why there is none
        self.cancel = threading.Event()
        self.sweep_cancel = threading.Event()  # the running quality sweep's own (a new one per sweep)
        self.workdir = Path(tempfile.mkdtemp(prefix="dadq-app-"))
        self._lock = threading.Lock()
        self._qmodel = (None, None)  # (allocation, its quantized model)

    def sweep(self, target: str, **kwargs):
        """dadq.rd_sweep of the loaded profile, cached per (profile, target, options)."""
        key = (id(self.profile), target, tuple(sorted(kwargs.items())))
        if key not in self.sweeps:
            self.sweeps[key] = dadq.rd_sweep(self.profile, target, **kwargs)
        return self.sweeps[key]

    def show(self, alloc, requested=None, request=None):
        """Make ``alloc`` the displayed allocation."""
        with self._lock:
            self.alloc, self.requested, self.request = alloc, requested, request

    def snapshot(self, progress=None) -> Snapshot:
        """The displayed allocation, its label and its quantized model (cached per allocation).
        ``progress(frac, desc=...)`` hears when a GPTQ or bias-corrected profile's calibration pass runs
        (once per model and layer set: seconds on the CPU)."""
        with self._lock:
            alloc, model, profile = self.alloc, self.model, self.profile
        cached_for, qmodel = self._qmodel
        if cached_for is not alloc:
            s = profile.settings()
            if progress is not None and needs_calibration(s):
                n = profile.meta.get("calib_per_group")
                per_group = f" ({n} per group)" if n else ""
                progress(0.0, desc=f"quantizing: {s['rounding']} weights and bias corrections from the profile's "
                                   f"calibration samples{per_group}, once per model and profile: tens of seconds on a "
                                   "2-core CPU")
            qmodel = dadq.quantize(model, profile, alloc)
            self._qmodel = (alloc, qmodel)
        return Snapshot(alloc, alloc_label(alloc), qmodel)

    def install(self, model, src, profile, profile_path=None):
        """Make (model, profile) current, with the default allocation. Nothing changes on error."""
        profile.check_model(model)
        budget = default_budget(profile)
        alloc = dadq.allocate(profile, budget=budget)
        gain, gain_source = shipped_gain(model, src, profile)
        with self._lock:
            self.model, self.model_src, self.profile, self.profile_path = model, src, profile, profile_path
            self.alloc, self.requested, self.request = alloc, budget, None
            self.pending = None
            self.samples = None
            self.pinned = None
            self.heat_collapsed, self.heat_only = default_collapsed(profile), False
            self._qmodel = (None, None)
            self.sweeps = {}
            self.gain, self.gain_source = gain, gain_source


def shipped_gain(model, src, profile) -> tuple:
    """(gain float [G] or None, where it came from or why there is none): the trajectory gain shipped
    beside the model (``GAIN_FILE``), where it was measured on this model and the profile's groups."""
    path = shipped_file(src, GAIN_FILE)
    if path is None:
        return None, "not measured for this model"
    try:
        gain, rec = load_gain(path, profile.groups, model)
    except ValueError as e:
        return None, f"the shipped {GAIN_FILE} does not fit: {e}"
    return gain, gain_origin(f"shipped with the model: {GAIN_FILE}", rec.get("n"), rec.get("sampler", "ddim"),
                             rec.get("steps"))


COLLAPSE_ABOVE = 100  # layers: a larger model's heatmap opens with every block collapsed to one row


def default_collapsed(profile) -> list[str]:
    """The heatmap's blocks collapsed when a profile is installed: none, or all above COLLAPSE_ABOVE layers."""
    from dadq.plots import layer_blocks

    return layer_blocks(profile.layer_names) if profile.num_layers > COLLAPSE_ABOVE else []


def default_budget(profile) -> float:
    """The budget the allocation tab opens with: 4 average bits, inside the profiled widths."""
    lo, hi = float(profile.bits.min()), float(profile.bits.max())
    return min(max(DEFAULT_BUDGET, lo), hi)


STATE = AppState()
