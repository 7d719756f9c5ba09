"""The general suite's summary rows: per family the mean score, its interval and its failures; on ``test``, the mean.

Why its own shape: issue 17 asks for ``bench/results/general.json`` with the test split's mean ``rlm`` score as
``test_mean`` (0-1) beside per-family rows, so a reader sees the one number and what it averages. The rows are
added to the runner's ``summary.json`` of a split run; a test split's ``summary.json`` is what is committed as
``bench/results/general.json``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from bench.report import bootstrap_ci

PRIMARY = "rlm"  # the method the suite's mean is reported for


def family_rows(records: list[dict[str, Any]], method: str) -> dict[str, dict[str, Any]]:
    """{family: {mean, ci95, n, failures, tags}} of ``method`` (scores 0-1; failures: ids scoring under 1)."""
    from bench.tasks import get_family

    by_fam: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["method"] == method:
            by_fam[r["family"]].append(r)
    rows = {}
    for fam in sorted(by_fam):
        recs = sorted(by_fam[fam], key=lambda r: str(r["id"]))
        scores = [float(r["score"]) for r in recs]
        lo, hi = bootstrap_ci(scores)
        fam_obj = get_family(fam)
        rows[fam] = {
            "mean": round(sum(scores) / len(scores), 4),
            "ci95": [round(lo, 4), round(hi, 4)],
            "n": len(scores),
            "seconds": round(sum(float(r["seconds"]) for r in recs) / len(recs), 1),
            "failures": [
                {
                    "id": r["id"],
                    "score": r["score"],
                    "answer": str(r["answer"])[:120],
                    "gold": r["gold"],
                    "finish_reason": r.get("finish_reason"),
                    "trace": r.get("trace_path"),
                }
                for r in recs
                if float(r["score"]) < 1.0
            ],  # fmt: skip
            "tags": dict(getattr(fam_obj, "tags", {})),
        }
    return rows


def split_summary(records: list[dict[str, Any]], split: str, method: str = PRIMARY) -> dict[str, Any]:
    """The keys a split run adds to ``summary.json``: ``split``, ``families`` and, on ``test``, ``test_mean``.

    ``<split>_mean`` is the mean over families of each family's mean score (every family weighs the same, however
    many instances it ran), with a bootstrap interval over the family means; None when ``method`` did not run.
    """
    rows = family_rows([r for r in records if r.get("split") == split], method)
    means = [row["mean"] for row in rows.values()]
    mean = round(sum(means) / len(means), 4) if means else None
    lo, hi = bootstrap_ci(means) if means else (0.0, 0.0)
    return {
        "split": split,
        "method": method,
        f"{split}_mean": mean,
        f"{split}_ci95": [round(lo, 4), round(hi, 4)] if means else None,
        "families_under_0.40": sorted(f for f, row in rows.items() if row["mean"] < 0.40),
        "families": rows,
    }


def markdown(doc: dict[str, Any]) -> str:
    """The report's section for a split run: the split's mean, then one row per family with its tags."""
    split, method = doc["split"], doc["method"]
    mean, ci = doc.get(f"{split}_mean"), doc.get(f"{split}_ci95")
    head = f"## The {split} split ({method})"
    if mean is None or ci is None:
        return f"\n{head}\n\nNo `{method}` run on this split yet.\n"
    lines = [
        "",
        head,
        "",
        f"Mean over families: **{mean:.3f}** (95 % interval over the family means {ci[0]:.3f}-{ci[1]:.3f}); "
        f"families under 0.40: {', '.join(doc['families_under_0.40']) or 'none'}.",
        "",
        "| family | format | answer | reasoning | mean [95 % CI] | n | failures | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fam, row in doc["families"].items():
        t = row["tags"]
        lo, hi = row["ci95"]
        lines.append(
            f"| {fam} | {t.get('format', '')} | {t.get('answer_type', '')} | {t.get('reasoning', '')} | "
            f"{row['mean']:.2f} [{lo:.2f}, {hi:.2f}] | {row['n']} | {len(row['failures'])} | {row['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"
