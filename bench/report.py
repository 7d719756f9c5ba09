"""The report: ``report.md`` (tables per family and size, mean with a bootstrap 95 % interval), ``summary.json``
(the shape ``bench/results/quick.json`` is committed in) and the PNG plots.

Why a bootstrap interval: a few instances per cell is all a CPU affords, and a mean without its uncertainty
invites reading noise as a difference between methods.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import plots
from bench.methods import METHODS, MODEL_METHODS
from bench.tasks import all_family_names, get_family

# The paper's numbers (v1 Table 1, %; * = the base model hit its context limit), printed next to ours for context.
PAPER_COLUMNS = ("codeqa", "multihop", "aggregate", "pairs")
PAPER_ROWS: tuple[tuple[str, tuple[str, str, str, str]], ...] = (
    ("Qwen3-Coder-480B base", ("20.0*", "0.0*", "36.0", "0.06")),
    ("Qwen3-Coder summary agent", ("50.0", "38.0", "44.06", "0.31")),
    ("RLM(Qwen3-Coder)", ("56.0", "44.66", "48.0", "23.11")),
    ("GPT-5 base", ("24.0*", "0.0*", "44.0", "0.04")),
    ("GPT-5 summary agent", ("58.0", "70.47", "46.0", "0.01")),
    ("RLM(GPT-5)", ("62.0", "91.33", "56.5", "58.0")),
    ("Qwen3-8B base -> RLM", ("4 -> 26", "-", "0 -> 24", "0.1 -> 4.3")),
)


def bootstrap_ci(values: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean (a single value: that value)."""
    if len(values) < 2:
        v = values[0] if values else 0.0
        return v, v
    a = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else 0.0


def cell(records: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [100 * float(r["score"]) for r in records]
    lo, hi = bootstrap_ci(scores)
    out = {
        "score": round(_mean(scores), 2),
        "ci95": [round(lo, 2), round(hi, 2)],
        "n": len(records),
        "seconds": round(_mean([float(r["seconds"]) for r in records]), 2),
        "tokens": round(_mean([float(r["tokens"]) for r in records]), 1),
        "input_tokens": round(_mean([float(r["input_tokens"]) for r in records]), 1),
        "sub_calls": round(_mean([float(r.get("sub_calls") or 0) for r in records]), 2),
        "errors": sum(1 for r in records if r.get("error")),
    }
    if any("em" in r for r in records):
        out["em"] = round(_mean([100 * float(r.get("em", 0)) for r in records]), 2)
    return out


def _order(names: list[str], known: tuple[str, ...]) -> list[str]:
    return [m for m in known if m in names] + sorted(n for n in names if n not in known)


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """{"results": {family: {method: cell}}, "by_size": {family: {size: {method: cell}}}} over the records."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    sized: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["family"], r["method"])].append(r)
        sized[(r["family"], r["size"], r["method"])].append(r)
    results: dict[str, dict[str, Any]] = {}
    by_size: dict[str, dict[str, dict[str, Any]]] = {}
    for fam in _order(sorted({r["family"] for r in records}), all_family_names()):
        methods = _order(sorted({m for f, m in groups if f == fam}), METHODS)
        results[fam] = {m: cell(groups[(fam, m)]) for m in methods}
        sizes = list(get_family(fam).sizes) if fam in all_family_names() else []
        present = {s for f, s, _ in sized if f == fam}
        by_size[fam] = {
            s: {m: cell(sized[(fam, s, m)]) for m in methods if (fam, s, m) in sized}
            for s in _order(sorted(present), tuple(sizes))
        }
    return {"results": results, "by_size": by_size}


def _fmt_cell(c: dict[str, Any]) -> str:
    lo, hi = c["ci95"]
    return f"{c['score']:.1f} [{lo:.1f}, {hi:.1f}]"


def markdown(summary: dict[str, Any], meta: dict[str, Any], plot_names: list[str]) -> str:
    m = meta.get("machine", {})
    models = meta.get("models", {})
    lines = [
        f"# outcore bench: {meta.get('profile', '?')} profile",
        "",
        f"Root `{models.get('root')}` (context {models.get('root_ctx')}; base/summary read "
        f"{models.get('base_ctx', models.get('root_ctx'))} tokens at a time), worker `{models.get('worker')}`; "
        f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, GPU layers "
        f"{'default' if m.get('n_gpu_layers') is None else m.get('n_gpu_layers')}; "
        f"outcore {m.get('versions', {}).get('outcore')}, llama-cpp-python "
        f"{m.get('versions', {}).get('llama-cpp-python')}. Token counts: {meta.get('tokenizer')}. "
        f"Seed `{meta.get('seed')}`; wall time {meta.get('wall_s', '?')} s."
        + (f" Split `{meta['split']}`." if meta.get("split") else ""),
        "",
        "Scores are % (mean over instances, bootstrap 95 % interval in brackets); seconds and tokens are means per "
        "instance (tokens: prompt + completion of every model call, all roles).",
        "",
        "## Summary",
        "",
    ]
    results = summary["results"]
    methods = _order(sorted({mm for f in results.values() for mm in f}), METHODS)
    lines.append("| family | " + " | ".join(methods) + " |")
    lines.append("|---|" + "---|" * len(methods))
    for fam, cells in results.items():
        row = [_fmt_cell(cells[mm]) if mm in cells else "-" for mm in methods]
        lines.append(f"| {fam} | " + " | ".join(row) + " |")
    for fam, sizes in summary["by_size"].items():
        metric = get_family(fam).metric if fam in all_family_names() else ""
        lines += ["", f"## {fam}", "", f"Metric: {metric}.", ""]
        has_em = any("em" in c for s in sizes.values() for c in s.values())
        head = "| size | input tokens | method | n | score [95 % CI] |" + (" EM |" if has_em else "")
        lines.append(head + " seconds | tokens | sub-calls | errors |")
        lines.append("|---|---|---|---|---|" + ("---|" if has_em else "") + "---|---|---|---|")
        for size, cells in sizes.items():
            for mm, c in cells.items():
                em = f" {c.get('em', 0):.1f} |" if has_em else ""
                lines.append(
                    f"| {size} | {c['input_tokens']:,.0f} | {mm} | {c['n']} | {_fmt_cell(c)} |{em} "
                    f"{c['seconds']:.1f} | {c['tokens']:,.0f} | {c['sub_calls']:.1f} | {c['errors']} |"
                )
    cols = PAPER_COLUMNS
    lines += ["", "## The paper's numbers, for context", "", "RLM paper v1, Table 1 (% ; * = base hit its context "
              "limit). Different tasks at other sizes (OOLONG at 131K, BrowseComp-Plus over 1,000 documents): "
              "compare the direction of the differences, not the values.", ""]  # fmt: skip
    lines.append("| method | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for name, vals in PAPER_ROWS:
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    if plot_names:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plot_names]
    return "\n".join(lines) + "\n"


def _short(c: dict[str, Any]) -> dict[str, Any]:
    return {k: c[k] for k in ("score", "n", "seconds", "tokens")}


def write_all(out_dir: Path, records: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Write report.md, summary.json and the plots; returns their paths."""
    summary = summarize(records)
    plot_paths = plots.write(out_dir, records)
    doc = {
        "machine": meta.get("machine", {}),
        "models": meta.get("models", {}),
        "tokenizer": meta.get("tokenizer"),
        "profile": meta.get("profile"),
        "seed": meta.get("seed"),
        "wall_s": meta.get("wall_s"),
        # the methods compared; the suite's own checks (oracle, baseline) go under "checks"
        "results": {
            fam: {m: _short(c) for m, c in cells.items() if m in MODEL_METHODS}
            for fam, cells in summary["results"].items()
        },
        "checks": {
            fam: {m: _short(c) for m, c in cells.items() if m not in MODEL_METHODS}
            for fam, cells in summary["results"].items()
        },
        "detail": summary,
    }
    extra = ""
    if meta.get("split"):  # the general suite: per-family rows and the split's mean (test_mean on test)
        from bench import general_results

        split_doc = general_results.split_summary(records, str(meta["split"]))
        doc.update(split_doc)
        extra = general_results.markdown(split_doc)
    (out_dir / "summary.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    rep = out_dir / "report.md"
    rep.write_text(markdown(summary, meta, [p.name for p in plot_paths]) + extra, encoding="utf-8")
    return {"report": rep, "summary": out_dir / "summary.json", "plots": plot_paths}
