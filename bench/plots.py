"""PNG plots of the results: score, time and tokens versus input length, one panel per family, a line per method.

matplotlib runs headless (the Agg backend), so plots are written on a server or in CI without a display.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.methods import METHODS

PLOTS = (
    ("score_vs_length.png", "score", "score (%)", False),
    ("time_vs_length.png", "seconds", "seconds per instance", True),
    ("tokens_vs_length.png", "tokens", "model tokens per instance", True),
)


def _series(records: list[dict[str, Any]], field: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """family -> method -> [(input tokens of the size, mean value)] per size, sorted by length.

    The x position of a size is the mean input length over every record of that size, so methods that ran on
    fewer instances still line up.
    """
    length: dict[tuple[str, str], list[float]] = defaultdict(list)
    acc: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        length[(r["family"], r["size"])].append(float(r["input_tokens"]))
        acc[(r["family"], r["method"], r["size"])].append(r)
    out: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for (fam, method, size), rs in acc.items():
        xs = length[(fam, size)]
        vals = [float(r[field]) * (100 if field == "score" else 1) for r in rs]
        out[fam][method].append((sum(xs) / len(xs), sum(vals) / len(vals)))
    for fam in out:
        for method in out[fam]:
            out[fam][method].sort()
    return out


def _tokens_label(x: float, _pos: object = None) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    if x >= 1e3:
        return f"{x / 1e3:.3g}K"
    return f"{x:.3g}"


def write(out_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
    """Write the plots that have data; model-free methods are left out of the time and token plots."""
    if not records:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    colors = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(METHODS)}
    paths = []
    for name, field, label, model_only in PLOTS:
        recs = [r for r in records if not (model_only and r["method"] in ("oracle", "baseline"))]
        series = _series(recs, field)
        if not series:
            continue
        fams = sorted(series)
        fig, axes = plt.subplots(1, len(fams), figsize=(3.6 * len(fams), 3.4), squeeze=False)
        for ax, fam in zip(axes[0], fams, strict=True):
            ticks: set[float] = set()
            for method in [m for m in METHODS if m in series[fam]] + sorted(set(series[fam]) - set(METHODS)):
                pts = [(x, y) for x, y in series[fam][method] if y > 0 or not model_only]  # log axis: no zeros
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                reference = method in ("oracle", "baseline")  # the suite's own checks: drawn faint, underneath
                ax.plot(
                    xs,
                    ys,
                    marker="o",
                    label=method,
                    color=colors.get(method),
                    linestyle="--" if reference else "-",
                    alpha=0.45 if reference else 1.0,
                    zorder=1 if reference else 3,
                )
                ticks.update(xs)
            ax.set_xscale("log")
            ax.set_xticks(sorted(ticks))
            ax.xaxis.set_major_formatter(FuncFormatter(_tokens_label))
            ax.xaxis.set_minor_formatter(NullFormatter())
            if model_only:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(_tokens_label))
                ax.yaxis.set_minor_formatter(FuncFormatter(_tokens_label))
            else:
                ax.set_ylim(-3, 103)
            ax.set_title(fam)
            ax.set_xlabel("input tokens (cl100k)")
            ax.grid(True, alpha=0.3)
        axes[0][0].set_ylabel(label)
        handles, labels = axes[0][0].get_legend_handles_labels()
        for ax in axes[0][1:]:
            h, lab = ax.get_legend_handles_labels()
            for hh, ll in zip(h, lab, strict=True):
                if ll not in labels:
                    handles.append(hh)
                    labels.append(ll)
        fig.legend(handles, labels, loc="lower center", ncol=max(1, len(labels)), frameon=False)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
