"""``noisyrnn analyze``: the paper's theory applied to trained checkpoints.

For each checkpoint (a folder with model.safetensors + model.json):

* **Theorem 2** on ``samples`` test sequences (the same seeded subset for every checkpoint):
  score o(s_i), the bound gamma(s_i) of eq (16) (sup over the segment to the flip point),
  the certified bound (sup over all inputs, drift of eq (3) only) and the empirical margin
  (L2 attack + bisection); see :mod:`noisyrnn.theory.margin`.
* **Jacobian products** ||Phi_{M-1,m+1}||_2 along those sequences' trajectories.
* **Loss landscape**: Hessian of the training loss w.r.t. the parameters on the training
  split (or its first ``hessian_samples`` sequences): top eigenvalues and a one-probe
  spectral density from one Lanczos run, the trace by Hutchinson's estimator.
* **Theorem 3** bounds of eq (20) for the continuous-time drift with the trained A, W.

Each checkpoint's numbers go to ``OUT/runs/LABEL/analysis.json`` (written atomically; an
existing one is reused, so an interrupted analysis resumes), then ``summary.json``
(mean +- std per model), ``report.md`` and PNG figures.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.files import atomic_write_text
from ..dynamics import research_to_sde
from ..errors import ConfigError
from ..noise import EulerMaruyama, ResearchCodeNoise
from ..provenance import code_version, describe
from ..theory.hessian import LossHessian, hutchinson_trace, lanczos_spectrum, smoothed_density
from ..theory.margin import certified_margin_bound, empirical_margin, margin_bounds
from ..theory.stability import lyapunov_bounds
from .paper import DISPLAY_NAMES
from .figures import save_png
from .report import summarise


@dataclass
class AnalysisConfig:
    samples: int = 30  # test sequences for the margin study
    probes: int = 5  # points on the segment x_i -> flip point for the sup of eq (16)
    hessian_samples: int = 0  # training sequences for the Hessian (0: all)
    lanczos_steps: int = 15
    top_k: int = 3
    trace_probes: int = 20
    margin: bool = True
    hessian: bool = True
    seed: int = 0

    def validate(self) -> None:
        for name in ("samples", "probes", "lanczos_steps", "top_k", "trace_probes"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.hessian_samples) < 0:
            raise ConfigError(f"hessian_samples must be >= 0, got {self.hessian_samples}")


def _finite_or_none(v: float):
    return float(v) if math.isfinite(v) else None


def _floats(t: torch.Tensor) -> list:
    return [None if not math.isfinite(v) else float(v) for v in t.detach().double().tolist()]


def _margins(model, x, y, cfg: AnalysisConfig, lengths=None):
    """Empirical margins and eq (16) bounds; unequal lengths: each sequence at its own length
    (grouped by length), the per-step Jacobian norms right-aligned (index = steps before the
    last step counted from the longest sequence) and NaN where a sequence has no such step."""
    if lengths is None or int(lengths.min()) == int(lengths.max()):
        steps = x.shape[1] if lengths is None else int(lengths[0])
        x = x[:, :steps]
        em = empirical_margin(model, x, y, restarts=1, seed=cfg.seed)
        mb = margin_bounds(model, x, y, em.point, probes=cfg.probes)
        cert = (certified_margin_bound(model, x, y) if getattr(model.drift, "form", None) == "lipschitz"
                else torch.full_like(mb.bound, float("nan")))
        return em.margin, mb.score, mb.bound, mb.C, cert, mb.phi_at_x, mb.phi_sup
    longest = int(lengths.max())
    n = len(y)
    out = [torch.full((n,), float("nan"), dtype=torch.float64) for _ in range(5)]
    phis = [torch.full((n, longest), float("nan"), dtype=torch.float64) for _ in range(2)]
    for L in sorted(set(lengths.tolist())):
        rows = (lengths == L).nonzero().flatten()
        parts = _margins(model, x[rows], y[rows], cfg, lengths[rows])
        for target, part in zip(out, parts[:5]):
            target[rows] = part.double()
        for target, part in zip(phis, parts[5:]):
            target[rows, longest - L:] = part.double()
    return (*out, *phis)


def margin_study(model, task, cfg: AnalysisConfig) -> dict:
    g = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(task.test), generator=g)[: cfg.samples]
    x, y = task.test.x[idx], task.test.y[idx]
    lengths = None if task.test.lengths is None else task.test.lengths[idx]
    margin, score, bound, C, cert, phi_at_x, phi_sup = _margins(model, x, y, cfg, lengths)
    ok = score > 0
    ratio = margin[ok] / bound[ok]
    return {
        "indices": idx.tolist(),
        "score": _floats(score), "bound": _floats(bound), "certified": _floats(cert),
        "empirical": _floats(margin), "C": _floats(C),
        "correct": int(ok.sum()),
        "bound_below_empirical": int((bound[ok] <= margin[ok]).sum()),
        "looseness_median": float(ratio.median()) if len(ratio) else None,
        "empirical_mean": _finite_or_none(float(margin[ok].mean())) if ok.any() else None,
        "bound_mean": _finite_or_none(float(bound[ok].mean())) if ok.any() else None,
        "certified_mean": _finite_or_none(float(cert[ok].mean())) if ok.any() else None,
        "phi_mean": _floats(phi_at_x.nanmean(0)),  # ||Phi_{M-1,m+1}|| averaged over sequences, m = 0..M-1
        "phi_sup_mean": _floats(phi_sup.nanmean(0)),
    }


def hessian_study(model, task, cfg: AnalysisConfig) -> dict:
    n = cfg.hessian_samples or len(task.train)
    lengths = None if task.train.lengths is None else task.train.lengths[:n]
    hess = LossHessian(model, task.train.x[:n], task.train.y[:n], lengths=lengths)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    nodes, weights = lanczos_spectrum(hess, cfg.lanczos_steps, g)
    trace, stderr = hutchinson_trace(hess, cfg.trace_probes, g)
    grid, dens = smoothed_density(nodes, weights)
    return {
        "samples": n, "parameters": hess.size,
        "top_eigenvalues": _floats(nodes.flip(0)[: cfg.top_k]),
        "trace": trace, "trace_stderr": stderr,
        "density": {"grid": _floats(grid), "values": _floats(dens),
                    "nodes": _floats(nodes), "weights": _floats(weights)},
        "hvps": cfg.lanczos_steps + cfg.trace_probes, "seconds": time.perf_counter() - t0,
    }


def stability_bounds(model) -> dict | None:
    """Eq (20) for dh = [alpha A h + tanh(W h + U x + b)] dt + sigma dB with the trained A, W.

    The diffusion's increment constants: the research-code scheme and eq (4) have
    ||sigma(h+e) - sigma(h)|| = s2 ||f(h+e) - f(h)||, between 0 and s2 (||alpha A|| + ||W||) ||e||,
    with s2 = eps*sigma2 for eq (4) and mult*sqrt(max delta / 12) for the research scheme
    (:func:`noisyrnn.dynamics.research_to_sde`); the additive part does not enter."""
    drift = getattr(model, "drift", None)
    if getattr(drift, "form", None) != "lipschitz":
        return None
    with torch.no_grad():
        A, W = drift.alpha * drift.A.double(), drift.W.double()
        lip_f = float(torch.linalg.matrix_norm(A, ord=2) + torch.linalg.matrix_norm(W, ord=2))
        scheme = model.scheme
        if isinstance(scheme, ResearchCodeNoise):
            s2 = research_to_sde(scheme.mult_noise, scheme.add_noise, float(model.step_size.max()))["sigma2"]
        elif isinstance(scheme, EulerMaruyama) and hasattr(scheme.diffusion, "sigma2"):
            s2 = scheme.diffusion.eps * scheme.diffusion.sigma2
        else:
            s2 = 0.0
        det = lyapunov_bounds(A, W, 0.0, 0.0)
        noisy = lyapunov_bounds(A, W, 0.0, s2 * lip_f)
        eig = torch.linalg.eigvalsh(0.5 * (A + A.T))
    return {"lambda_min_A_sym": float(eig[0]), "lambda_max_A_sym": float(eig[-1]),
            "W_norm": float(torch.linalg.matrix_norm(W, ord=2)), "sigma1": 0.0, "sigma2": s2 * lip_f,
            "deterministic": {"lower": det[0], "upper": det[1]},
            "with_noise": {"lower": noisy[0], "upper": noisy[1]}}


def analyze_model(model, task, cfg: AnalysisConfig) -> dict:
    cfg.validate()
    model.eval()
    record = {"model": getattr(model, "config", {}).get("name", type(model).__name__), "task": task.name,
              "config": asdict(cfg)}
    t0 = time.perf_counter()
    if cfg.margin:
        record["margin"] = margin_study(model, task, cfg)
    if cfg.hessian:
        record["hessian"] = hessian_study(model, task, cfg)
    record["stability"] = stability_bounds(model)
    record["seconds"] = time.perf_counter() - t0
    return record


def checkpoint_label(folder: Path) -> str:
    folder = Path(folder).resolve()
    return f"{folder.parent.name}/{folder.name}"


def analyze_checkpoints(folders, task, out: Path, cfg: AnalysisConfig, progress: bool = True,
                        restart: bool = False) -> list[dict]:
    from tqdm.auto import tqdm

    from ..training.checkpoint import load_model

    out = Path(out)
    records = []
    for folder in tqdm(list(folders), disable=not progress, desc="analyze"):
        path = out / "runs" / checkpoint_label(folder) / "analysis.json"
        if path.is_file() and not restart:
            rec = json.loads(path.read_text())
            if rec.get("config") == asdict(cfg):
                records.append(rec)
                continue
        model, meta = load_model(folder)
        if meta.get("task") not in (None, task.name):
            raise ConfigError(f"checkpoint {folder} was trained on {meta['task']!r}, not {task.name!r}")
        with torch.random.fork_rng(devices=[]):  # the analysis' draws, without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            rec = analyze_model(model, task, cfg)
        rec["checkpoint"] = str(folder)
        rec["label"] = checkpoint_label(folder)
        m = re.search(r"seed(\d+)$", Path(folder).name)
        rec["seed"] = int(m.group(1)) if m else None
        atomic_write_text(path, json.dumps(rec))
        records.append(rec)
    return records


def group_of(rec: dict) -> str:
    """The run a checkpoint belongs to: its parent folder (``nrnn``, ``nrnn__add_noise=0.2``)."""
    label = rec.get("label") or ""
    return label.split("/")[0] if "/" in label else rec["model"]


def summarise_records(records: list[dict]) -> dict:
    """mean +- std per run (parent folder of the checkpoints) of the headline numbers."""
    groups: dict[str, list[dict]] = {}
    for rec in records:
        groups.setdefault(group_of(rec), []).append(rec)
    out = {}
    for name, recs in groups.items():
        row = {"checkpoints": len(recs)}
        if all("hessian" in r for r in recs):
            row["top_eigenvalue"] = summarise([r["hessian"]["top_eigenvalues"][0] for r in recs])
            row["trace"] = summarise([r["hessian"]["trace"] for r in recs])
        if all("margin" in r for r in recs):
            for key in ("empirical_mean", "bound_mean", "certified_mean", "looseness_median"):
                vals = [r["margin"][key] for r in recs if r["margin"][key] is not None]
                row[key] = summarise(vals) if vals else None
            row["bound_below_empirical"] = sum(r["margin"]["bound_below_empirical"] for r in recs)
            row["correct"] = sum(r["margin"]["correct"] for r in recs)
            row["phi_mean_max"] = summarise([max(v for v in r["margin"]["phi_mean"] if v is not None) for r in recs])
            # the whole-sequence product Phi_{M-1,1} (m = 0), mean over each checkpoint's sequences
            row["phi_whole"] = summarise([r["margin"]["phi_mean"][0] for r in recs])
        if all(r.get("stability") for r in recs):
            row["lyapunov_upper_deterministic"] = summarise([r["stability"]["deterministic"]["upper"] for r in recs])
            row["lyapunov_lower_deterministic"] = summarise([r["stability"]["deterministic"]["lower"] for r in recs])
        out[name] = row
    return out


def _fmt(s, digits=3) -> str:
    if not s:
        return "—"
    return f"{s['mean']:.{digits}g} ± {s['std']:.{digits - 1}g}"


def markdown_summary(summary: dict) -> str:
    lines = ["| model | n | Hessian top eigenvalue | Hessian trace | empirical margin | eq (16) bound | "
             "certified bound | empirical / bound (median) | bound <= empirical | max_m ||Phi_{M-1,m+1}|| | "
             "||Phi_{M-1,1}|| (whole sequence) | eq (20) upper (noise-free) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in summary.items():
        below = f"{row['bound_below_empirical']}/{row['correct']}" if "correct" in row else "—"
        lines.append(f"| {DISPLAY_NAMES.get(name, name)} | {row['checkpoints']} | {_fmt(row.get('top_eigenvalue'))} | "
                     f"{_fmt(row.get('trace'))} | {_fmt(row.get('empirical_mean'))} | {_fmt(row.get('bound_mean'))} | "
                     f"{_fmt(row.get('certified_mean'))} | {_fmt(row.get('looseness_median'))} | {below} | "
                     f"{_fmt(row.get('phi_mean_max'))} | {_fmt(row.get('phi_whole'))} | "
                     f"{_fmt(row.get('lyapunov_upper_deterministic'))} |")
    return "\n".join(lines)


def write_figures(out: Path, records: list[dict]) -> list[str]:
    from .figures import subplots

    written = []
    names = sorted({group_of(r) for r in records})
    colors = {n: f"C{i}" for i, n in enumerate(names)}
    if all("margin" in r for r in records):
        fig, ax = subplots(1, 2, figsize=(11, 4.2))
        ax[0].set(xscale="log", yscale="log")
        lo_hi = []
        for name in names:
            emp, bnd, phi = [], [], []
            for r in (r for r in records if group_of(r) == name):
                for e, b in zip(r["margin"]["empirical"], r["margin"]["bound"]):
                    if b is not None and e:
                        emp.append(e)
                        bnd.append(b)
                phi.append(r["margin"]["phi_mean"])
            ax[0].scatter(bnd, emp, s=8, alpha=0.5, color=colors[name], label=DISPLAY_NAMES.get(name, name))
            lo_hi += [min(bnd + emp, default=1.0), max(bnd + emp, default=1.0)]
            arr = np.array(phi, dtype=float)
            m = np.arange(arr.shape[1])
            ax[1].plot(m, arr.mean(0), color=colors[name], label=DISPLAY_NAMES.get(name, name))
            ax[1].fill_between(m, arr.min(0), arr.max(0), color=colors[name], alpha=0.2)
        lo, hi = min(lo_hi) / 2, max(lo_hi) * 2
        ax[0].plot([lo, hi], [lo, hi], "k--", lw=0.8, label="bound = empirical")
        ax[0].set(xlabel="lower bound γ(s_i), eq (16)",
                  ylabel="empirical margin (L2 attack + bisection)", title="Theorem 2 on test sequences")
        ax[0].legend(fontsize=8)
        ax[1].set(yscale="log", xlabel="step m", ylabel="||Φ_{M-1,m+1}||₂",
                  title="Jacobian products (mean; band: min-max over checkpoints)")
        ax[1].legend(fontsize=8)
        save_png(fig, out / "margins.png")
        written.append("margins.png")
    if all("hessian" in r for r in records):
        fig, ax = subplots(1, 2, figsize=(11, 4.2))
        for i, name in enumerate(names):
            recs = [r for r in records if group_of(r) == name]
            top = [r["hessian"]["top_eigenvalues"][0] for r in recs]
            tr = [r["hessian"]["trace"] for r in recs]
            ax[0].scatter(top, tr, color=colors[name], label=DISPLAY_NAMES.get(name, name))
            d = recs[0]["hessian"]["density"]
            ax[1].plot(d["grid"], np.maximum(np.array(d["values"], dtype=float), 1e-12), color=colors[name],
                       label=f"{DISPLAY_NAMES.get(name, name)} ({recs[0]['label']})")
        ax[0].set(xscale="log", yscale="symlog", xlabel="top Hessian eigenvalue", ylabel="Hessian trace (Hutchinson)",
                  title="Loss landscape, one point per checkpoint")
        ax[0].legend(fontsize=8)
        ax[1].set(yscale="log", xlabel="eigenvalue", ylabel="density (one-probe SLQ)", title="Hessian spectral density")
        ax[1].legend(fontsize=8)
        save_png(fig, out / "hessian.png")
        written.append("hessian.png")
    return written


def run_analysis(folders, task, out: Path, cfg: AnalysisConfig, progress: bool = True, restart: bool = False) -> dict:
    out = Path(out)
    t0 = time.perf_counter()
    records = analyze_checkpoints(folders, task, out, cfg, progress=progress, restart=restart)
    return write_analysis(out, task.name, cfg, records, time.perf_counter() - t0)


def write_analysis(out: Path, task_name: str, cfg: AnalysisConfig, records: list[dict], seconds: float) -> dict:
    """summary.json, the figures and report.md of an analysis from its per-checkpoint records."""
    summary = {"task": task_name, "config": asdict(cfg), "models": summarise_records(records),
               "checkpoints": [r["label"] for r in records], "seconds": seconds,
               "compute_seconds": sum(r["seconds"] for r in records), "code": code_version()}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    figures = write_figures(out, records)
    text = [f"# Theory diagnostics on `{task_name}`", "",
            f"{len(records)} checkpoints; settings: {json.dumps(asdict(cfg))}.", "",
            markdown_summary(summary["models"]), "",
            "Margins: mean over the correctly classified sequences of each checkpoint, then mean ± std over "
            "checkpoints. The eq (16) bound takes each sup over points on the segment from x_i to its flip "
            "point; the certified bound takes it over all inputs in closed form. ||Phi_{M-1,1}|| is the "
            "product of all step Jacobians (mean over each checkpoint's test sequences).", "",
            f"Report written by {describe(summary['code'])}.", ""]
    text += [f"![{f}]({f})" for f in figures]
    atomic_write_text(out / "report.md", "\n".join(text) + "\n")
    return summary


def rebuild_analysis_report(out: Path) -> dict:
    """Re-derive summary.json, figures and report.md of an analysis folder from the
    per-checkpoint ``runs/*/*/analysis.json`` it holds (no checkpoint is needed)."""
    out = Path(out)
    old = json.loads((out / "summary.json").read_text())
    by_label = {}
    for path in sorted(out.glob("runs/*/*/analysis.json")):
        rec = json.loads(path.read_text())
        by_label[rec["label"]] = rec
    records = [by_label[label] for label in old["checkpoints"] if label in by_label]
    missing = [label for label in old["checkpoints"] if label not in by_label]
    if missing:
        raise ConfigError(f"{out}: no analysis.json for checkpoint(s) {', '.join(missing)}")
    return write_analysis(out, old["task"], AnalysisConfig(**old["config"]), records, old["seconds"])
