"""``outcore bench compare DIR [DIR ...]``: one Markdown table and one PNG across benchmark result folders.

The leaderboard for a user who benchmarks several GGUF roots: one row per (folder, method) with the root, the
worker and the machine, and per family the score with its 95 % interval, the seconds and the tokens per instance.

Why refuse rather than average: two folders are comparable only when they ran the same instances (same seed,
same split, same instance ids). Otherwise a difference between rows could be a difference between the questions,
so the command names what differs and stops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report
from bench.methods import MODEL_METHODS
from bench.tasks import family_names
from engine.errors import UserError

TABLE = "compare.md"
PLOT = "compare.png"


class Folder:
    """One result folder: its run description (``run.json``) and its records (``results.jsonl``)."""

    def __init__(self, path: Path) -> None:
        from bench.runner import RESULTS, load_results

        if not (path / RESULTS).exists():
            raise UserError(f"{path}: no {RESULTS} (not an `outcore bench` result folder)")
        self.path = path
        run = path / "run.json"
        self.meta: dict[str, Any] = json.loads(run.read_text(encoding="utf-8")) if run.exists() else {}
        models = self.meta.get("models", {})
        root, worker = models.get("root"), models.get("worker")
        split = self.meta.get("split")
        # the folder's own rows: the run's root/worker pair (a folder reused with --root holds several) and the
        # run's split (dev and test may share a folder)
        self.records = [
            r
            for r in load_results(path / RESULTS)
            if r["method"] in MODEL_METHODS
            and (root is None or (r["root"], r["worker"]) == (root, worker))
            and (split is None or r.get("split") in (None, split))
        ]
        if not self.records:
            raise UserError(f"{path}: no results of a model method ({', '.join(MODEL_METHODS)})")

    @property
    def split(self) -> str | None:
        found = {r.get("split") for r in self.records} | {self.meta.get("split")}
        found.discard(None)
        return ",".join(sorted(str(s) for s in found)) or None

    def instances(self) -> dict[str, set[str]]:
        """Instance ids per family (any model method ran them)."""
        out: dict[str, set[str]] = {}
        for r in self.records:
            out.setdefault(r["family"], set()).add(str(r["id"]))
        return out

    def machine(self) -> str:
        m = self.meta.get("machine", {})
        gpu = m.get("n_gpu_layers")
        where = f"GPU layers {gpu}" if gpu not in (None, 0) else "CPU"
        return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {where}"


def check_same_instances(folders: list[Folder]) -> None:
    """Raise UserError naming the first difference (seed, split, instance ids) between the folders."""
    first = folders[0]
    for f in folders[1:]:
        for what, a, b in (
            ("seed", first.meta.get("seed"), f.meta.get("seed")),
            ("split", first.split, f.split),
        ):
            if a != b:
                raise UserError(f"{first.path} and {f.path} ran different instances: {what} {a!r} vs {b!r}")
        mine, theirs = first.instances(), f.instances()
        for fam in sorted(set(mine) | set(theirs)):
            only_a = sorted(mine.get(fam, set()) - theirs.get(fam, set()))
            only_b = sorted(theirs.get(fam, set()) - mine.get(fam, set()))
            if only_a or only_b:
                detail = ", ".join([f"only in {first.path}: {only_a[:3]}"] * bool(only_a)
                                   + [f"only in {f.path}: {only_b[:3]}"] * bool(only_b))  # fmt: skip
                raise UserError(f"{first.path} and {f.path} ran different instances of {fam} ({detail})")


def rows(folders: list[Folder]) -> list[dict[str, Any]]:
    """One row per (folder, method): who ran it, where, and per family the report's cell."""
    out = []
    for f in folders:
        summary = report.summarize(f.records)["results"]
        methods = report._order(sorted({m for cells in summary.values() for m in cells}), MODEL_METHODS)
        for m in methods:
            out.append(
                {
                    "folder": str(f.path),
                    "root": f.records[0]["root"],
                    "worker": f.records[0]["worker"],
                    "machine": f.machine(),
                    "profile": f.meta.get("profile"),
                    "split": f.split,
                    "method": m,
                    "families": {fam: cells[m] for fam, cells in summary.items() if m in cells},
                }
            )
    return out


def _fmt(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    lo, hi = c["ci95"]
    flag = " †" if c.get("wide") else ""
    return f"{c['score']:.1f} [{lo:.1f}, {hi:.1f}]{flag}<br>{c['seconds']:.0f} s, {c['tokens']:,.0f} tok"


def markdown(table: list[dict[str, Any]], families: list[str]) -> str:
    split = {r["split"] for r in table} - {None}
    lines = [
        "# outcore bench compare",
        "",
        "Score % [95 % interval] (n per cell in the folders' report.md), then mean seconds and tokens per instance."
        f" † marks an interval wider than ±{report.WIDE:.0f} points."
        + (f" Split: {', '.join(sorted(str(s) for s in split))}." if split else ""),
        "",
        "| root | worker | machine | method | " + " | ".join(families) + " |",
        "|---|---|---|---|" + "---|" * len(families),
    ]
    for r in table:
        cells = [_fmt(r["families"].get(fam)) for fam in families]
        lines.append(
            f"| `{r['root']}` | `{r['worker']}` | {r['machine']} | {r['method']} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Folders: " + ", ".join(f"`{d}`" for d in dict.fromkeys(r["folder"] for r in table)), ""]
    return "\n".join(lines)


def plot(table: list[dict[str, Any]], families: list[str], path: Path) -> Path:
    """Grouped bars: per family, one bar per (root, method) with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / max(len(table), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(families) + 0.3 * len(table)), 4.2))
    x = np.arange(len(families))
    for i, r in enumerate(table):
        cells = [r["families"].get(f) for f in families]
        score = [c["score"] if c else 0.0 for c in cells]
        err = np.array([[c["score"] - c["ci95"][0], c["ci95"][1] - c["score"]] if c else [0.0, 0.0] for c in cells]).T
        label = f"{Path(r['root']).name} / {r['method']}" + (f" ({r['split']})" if r["split"] else "")
        ax.bar(x + i * width - 0.4 + width / 2, score, width, yerr=err, capsize=2, label=label)
    ax.set_xticks(x, families)
    ax.set_ylabel("score % (95 % interval)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare(dirs: list[Path], out: Path) -> dict[str, Path]:
    """Check the folders ran the same instances, then write ``compare.md`` and ``compare.png`` under ``out``."""
    if not dirs:
        raise UserError("outcore bench compare needs at least one result folder")
    folders = [Folder(d) for d in dirs]
    check_same_instances(folders)
    table = rows(folders)
    families = report._order(sorted({fam for r in table for fam in r["families"]}), family_names())
    out.mkdir(parents=True, exist_ok=True)
    (out / TABLE).write_text(markdown(table, families), encoding="utf-8")
    (out / "compare.json").write_text(json.dumps({"rows": table}, indent=2) + "\n", encoding="utf-8")
    return {"table": out / TABLE, "plot": plot(table, families, out / PLOT), "json": out / "compare.json"}
