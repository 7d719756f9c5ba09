"""Source-dump families: a parameter's default value, and which function calls another, over generated Python files.

Why four header styles: a user pastes a source tree as ``### path``, ``# File: path``, ``==> path <==`` (``head``'s
output) or with no headers at all, only the ``def`` lines. The style is the instance index modulo 4, so every split
holds all four. Distractors: a near-namesake function (``..._async``) with the same parameter and another default,
other functions with that parameter, and the callee named in a docstring and in a commented-out call.
"""

from __future__ import annotations

import ast
import random
import re
from typing import Any

from bench.tasks import Instance
from bench.tasks.general.common import Built, GeneralFamily

VERBS = ("fetch", "load", "parse", "merge", "sync", "render", "build", "apply", "reconcile", "export", "validate",
         "compute", "resolve", "flush", "archive", "index", "score", "route")  # fmt: skip
NOUNS = ("ledger", "invoice", "batch", "report", "session", "profile", "cache", "token", "schedule", "manifest",
         "payload", "snapshot", "queue", "tenant", "quota", "bucket", "digest", "channel")  # fmt: skip
DEFAULTS = {
    "timeout": ("5", "10", "30", "60", "120", "2.5"),
    "retries": ("0", "1", "2", "3", "5", "8"),
    "encoding": ("'utf-8'", "'latin-1'", "'ascii'", "'utf-16'", "'cp1252'"),
    "verbose": ("True", "False"),
    "limit": ("0", "50", "100", "500", "1000"),  # no None: a method's "None" for "not found" must not score
    "mode": ("'r'", "'rb'", "'append'", "'strict'", "'lazy'"),
    "prefix": ("'tmp_'", "'v1/'", "'draft-'", "'x-'"),  # no '': an empty reply must not score
    "delay": ("0.1", "0.5", "1.0", "2.0"),
}
STYLES = ("### {p}", "# File: {p}", "==> {p} <==", "")
_HEAD = re.compile(r"^==> .* <==$", re.MULTILINE)


def _functions(rng: random.Random, chars: int) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """Distinct function names (about ``chars`` of source) and each one's parameters with defaults."""
    n = max(12, chars // 180)
    pool = [f"{v}_{o}" for v in VERBS for o in NOUNS]
    rng.shuffle(pool)
    names = pool[: min(n, len(pool))]
    while len(names) < n:  # big dumps: numbered variants
        names.append(f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}_v{len(names)}")
    params = {
        nm: [(p, rng.choice(DEFAULTS[p])) for p in rng.sample(sorted(DEFAULTS), rng.randrange(1, 4))] for nm in names
    }
    return names, params


def _render(nm: str, params: list[tuple[str, str]], calls: list[str], extra: str = "") -> str:
    args = ", ".join(["source"] + [f"{p}={d}" for p, d in params])
    body = "".join(f"    result = {c}(result)\n" for c in calls)
    return (f"def {nm}({args}):\n    \"\"\"{nm.split('_')[0].capitalize()} the {nm.split('_')[1]} from source.{extra}\"\"\"\n"
            f"    result = list(source)\n{body}    return result\n")  # fmt: skip


def _dump(rng: random.Random, funcs: list[str], style: str) -> str:
    per = max(3, len(funcs) // max(1, len(funcs) // 6))
    files = [funcs[i : i + per] for i in range(0, len(funcs), per)]
    out = []
    for k, chunk in enumerate(files):
        path = f"{rng.choice(('core', 'svc', 'lib'))}/{rng.choice(('io', 'ops', 'jobs', 'util'))}_{k}.py"
        head = style.format(p=path)
        out.append((head + "\n" if head else "") + "import logging\n\n\n" + "\n\n".join(chunk))
    return "\n\n".join(out) + "\n"


def parse_dump(context: str) -> ast.Module:
    """The whole dump as one module: ``###`` and ``# File:`` headers are comments; ``==>`` lines are dropped."""
    return ast.parse(_HEAD.sub("", context))


class CodeDefault(GeneralFamily):
    """``g-code-default``: the default value of a parameter of a named function, in a source dump."""

    name = "g-code-default"
    sizes = {"32k": 32_000, "256k": 256_000}
    metric = "1 when the reply is the default literal (quotes unified) and no other function's default"
    tags = {"format": "source code", "answer_type": "code literal", "reasoning": "lookup"}
    answer_tokens = 16
    phrasings = (
        "What is the default value of the parameter `{param}` of the function `{func}`? Answer with the value only.",
        "Give the default of `{param}` in `{func}`.",
        "In this source, `{func}` takes a `{param}` argument. What is its default value?",
        "Tell me the default value `{func}` uses for `{param}`. Reply with the Python literal only.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        names, params = _functions(rng, chars)
        func = names[0]
        param = params[func][0][0]
        twin = f"{func}_async"
        options = [d for d in DEFAULTS[param] if d != params[func][0][1]]
        params[twin] = [(param, rng.choice(options))]
        names.insert(rng.randrange(1, len(names)), twin)
        srcs = [_render(nm, params[nm], rng.sample([x for x in names if x != nm], 1)) for nm in names]
        rng.shuffle(srcs)
        context = _dump(rng, srcs, STYLES[index % 4])
        distract = sorted({d for nm in names for p, d in params[nm] if p == param} - {params[func][0][1]})
        return Built(context, {"func": func, "param": param}, params[func][0][1],
                     {"func": func, "param": param, "style": index % 4}, distract)  # fmt: skip

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        for node in ast.walk(parse_dump(context)):
            if isinstance(node, ast.FunctionDef) and node.name == meta["func"]:
                a = node.args
                for arg, d in zip(a.args[len(a.args) - len(a.defaults) :], a.defaults, strict=True):
                    if arg.arg == meta["param"]:
                        return ast.unparse(d)
        return ""

    def guess(self, instance: Instance) -> str:
        """Regex-only and careless: the first default of a parameter of that name anywhere in the dump."""
        m = re.search(r"\b" + re.escape(instance.meta["param"]) + r"=([^,)]+)", instance.context)
        return m.group(1) if m else ""


class CodeCaller(GeneralFamily):
    """``g-code-caller``: which function calls a named one; the name also sits in docstrings and commented calls."""

    name = "g-code-caller"
    sizes = {"32k": 32_000, "256k": 256_000}
    metric = "1 when the reply names the calling function and no function that only mentions the callee"
    tags = {"format": "source code", "answer_type": "code literal", "reasoning": "lookup"}
    answer_tokens = 16
    phrasings = (
        "Which function calls `{callee}`? Answer with the function name only.",
        "Name the function whose body calls `{callee}`.",
        "Where is `{callee}` called from? Give the calling function.",
        "Exactly one function calls `{callee}`. Tell me its name, nothing else.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        names, params = _functions(rng, chars)
        callee, caller, near1, near2 = names[:4]
        others = [x for x in names if x != callee]
        srcs = []
        for nm in names:
            calls = rng.sample([x for x in others if x != nm], 1)
            extra = ""
            if nm == caller:
                calls.append(callee)
            elif nm == near1:
                extra = f" Unlike {callee}, it keeps the order."
            src = _render(nm, params[nm], calls, extra)
            if nm == near2:
                src = src.replace(
                    "    return result\n", f"    # result = {callee}(result)  # disabled\n    return result\n"
                )
            srcs.append(src)
        rng.shuffle(srcs)
        context = _dump(rng, srcs, STYLES[index % 4])
        return Built(
            context, {"callee": callee}, caller, {"callee": callee, "style": index % 4}, [callee, near1, near2]
        )

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        for node in ast.walk(parse_dump(context)):
            if isinstance(node, ast.FunctionDef):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == meta["callee"]:
                        return node.name
        return ""

    def guess(self, instance: Instance) -> str:
        """Regex-only and careless: the function just before the callee's first mention after its own definition."""
        callee = instance.meta["callee"]
        defs = [(m.start(), m.group(1)) for m in re.finditer(r"^def (\w+)\(", instance.context, flags=re.MULTILINE)]
        hits = [m.start() for m in re.finditer(re.escape(callee) + r"\b", instance.context)]
        for h in hits:
            owner = [n for s, n in defs if s < h]
            if owner and owner[-1] != callee:
                return owner[-1]
        return ""
