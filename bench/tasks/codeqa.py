"""``codeqa`` (CodeQA-like): four-choice questions about a real source tree, 40K to 8M tokens.

The context is a pinned wheel's Python files (requests 2.34.2 up to 40K tokens, networkx 3.5 up to 1M, sympy
1.14.0 for 8M), each after a ``### File: path/to/mod.py`` line, in a seeded order until the size is reached.
Questions come from the parsed source of files in the context: which function a docstring belongs to, a
parameter's default value, a class's first base class, the one exception type a function raises. Distractors are
facts of the same kind from the same context. Questions whose answer shares a word with what they ask about
(``HTTPAdapter`` -> ``BaseAdapter``) are skipped, so guessing from names alone stays at chance.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import data, scoring, tokens
from bench.data import FILE_HEADER
from bench.tasks import Instance, Score, rng_for

SIZES = {"4k": 4_000, "40k": 40_000, "256k": 262_144, "1m": 1_048_576, "8m": 8_000_000}
KINDS = ("docstring", "default", "base", "raises")
SUFFIX = "\nAnswer with the letter (A, B, C or D) only."
_BUILTIN_EXC = ("ValueError", "TypeError", "KeyError", "RuntimeError", "NotImplementedError", "IndexError",
                "AttributeError", "OSError")  # fmt: skip


def _pool(size: str) -> str:
    n = SIZES[size]
    return "code-requests.txt" if n <= 50_000 else "code-networkx.txt" if n <= 1_700_000 else "code-sympy.txt"


def split_files(text: str) -> list[tuple[str, str]]:
    """(path, source) of each file in a concatenated tree."""
    parts = re.split(r"^" + re.escape(FILE_HEADER) + r"(.+)\n", text, flags=re.MULTILINE)
    return [(parts[i].strip(), parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


@functools.lru_cache(maxsize=3)
def _files(pool: str) -> list[tuple[str, str, int]]:
    return [(p, src, tokens.count(f"{FILE_HEADER}{p}\n{src}")) for p, src in split_files(data.read_text(pool))]


@dataclass(frozen=True)
class Fact:
    kind: str
    path: str
    subject: str  # function or class (qualified within the file), or the docstring sentence
    detail: str  # parameter name for defaults
    value: str  # the answer


def _parts(name: str) -> set[str]:
    words = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)
    return {w.lower() for w in words if len(w) >= 3}


def _related(a: str, b: str) -> bool:
    pa, pb = _parts(a), _parts(b)
    return any(x == y or (len(x) >= 4 and len(y) >= 4 and (x.startswith(y) or y.startswith(x))) for x in pa for y in pb)


def _first_sentence(doc: str) -> str:
    para = " ".join(doc.strip().split("\n\n")[0].split())
    m = re.match(r"(.+?[.!?])(\s|$)", para)
    return m.group(1) if m else para


def _raised(fn: ast.AST) -> set[str]:
    out: set[str] = set()
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name | ast.Attribute):
                out.add(ast.unparse(exc))
            else:
                out.add("?")
        stack.extend(ast.iter_child_nodes(node))
    return out


def facts(path: str, source: str) -> list[Fact]:
    """Every askable fact of one file; names defined twice in a file are skipped (ambiguous)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    defs: list[tuple[str, ast.AST]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defs.append((node.name, node))
        if isinstance(node, ast.ClassDef):
            defs += [
                (f"{node.name}.{n.name}", n) for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
    names = [n for n, _ in defs]
    out: list[Fact] = []
    for name, d in defs:
        if names.count(name) > 1:
            continue
        if isinstance(d, ast.ClassDef):
            if d.bases:
                base = ast.unparse(d.bases[0])
                if base != "object" and len(base) <= 40 and not _related(name, base):
                    out.append(Fact("base", path, name, "", base))
            continue
        assert isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)
        doc = ast.get_docstring(d)
        if doc:
            sent = _first_sentence(doc)
            if 25 <= len(sent) <= 160 and not _related(name, sent) and "`" not in sent:
                out.append(Fact("docstring", path, name, "", sent))
        a = d.args
        positional = a.posonlyargs + a.args
        pairs = list(zip(positional[len(positional) - len(a.defaults) :], a.defaults, strict=True))
        pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None]
        for arg, d in pairs:
            value = ast.unparse(d)
            if len(value) <= 30 and "\n" not in value:
                out.append(Fact("default", path, name, arg.arg, value))
        raised = _raised(d)
        if len(raised) == 1 and "?" not in raised:
            exc = next(iter(raised))
            if not _related(name, exc):
                out.append(Fact("raises", path, name, "", exc))
    return out


@functools.lru_cache(maxsize=3)
def _pool_facts(pool: str) -> list[Fact]:
    return [f for p, src, _ in _files(pool) for f in facts(p, src)]


def _question(f: Fact) -> str:
    if f.kind == "docstring":
        return f'Which function or method has a docstring that begins: "{f.value}"?'
    if f.kind == "default":
        return f"In {f.path}, what is the default value of the parameter `{f.detail}` of `{f.subject}`?"
    if f.kind == "base":
        return f"In {f.path}, which class is the first base class of `{f.subject}`?"
    return f"Which exception type does `{f.subject}` in {f.path} raise with a raise statement?"


def _option(f: Fact) -> str:
    return f"`{f.subject}` in {f.path}" if f.kind == "docstring" else f.value


class CodeQA:
    name = "codeqa"
    sizes = SIZES
    metric = "% of four-choice questions answered with the right letter"

    def generate(self, size: str, index: int, seed: str) -> Instance:
        rng = rng_for(seed, self.name, size, index)
        files = list(_files(_pool(size)))
        rng.shuffle(files)
        target = SIZES[size]
        chosen: list[tuple[str, str]] = []
        total = 0
        for path, src, n in files:
            if total + n <= target:
                chosen.append((path, src))
                total += n
            if total > target * 0.97:
                break
        all_facts = [f for p, s in chosen for f in facts(p, s)]
        kind = KINDS[index % len(KINDS)]
        for k in [kind, *KINDS]:
            options, gold_fact = self._pick(rng, k, all_facts, lambda: _pool_facts(_pool(size)))
            if gold_fact is not None:
                break
        else:
            raise ValueError(f"no codeqa question can be made at size {size}")
        letter = scoring.LETTERS[options.index(_option(gold_fact))]
        context = "".join(f"{FILE_HEADER}{p}\n{s.rstrip()}\n\n" for p, s in chosen)
        lines = "\n".join(f"{scoring.LETTERS[i]}. {o}" for i, o in enumerate(options))
        return Instance(
            family=self.name,
            size=size,
            index=index,
            context=context,
            question=f"{_question(gold_fact)}\n{lines}{SUFFIX}",
            gold=letter,
            input_tokens=tokens.count(context),
            answer_tokens=16,
            meta={"fact": vars(gold_fact), "options": options},
        )

    @staticmethod
    def _pick(
        rng: Any, kind: str, all_facts: list[Fact], pool: Callable[[], list[Fact]]
    ) -> tuple[list[str], Fact | None]:
        same = [f for f in all_facts if f.kind == kind]
        rng.shuffle(same)
        for f in same:
            if kind == "docstring" and sum(g.value == f.value for g in same) > 1:
                continue
            gold = _option(f)
            others = sorted({_option(g) for g in same if _option(g) != gold and g.value != f.value})
            if len(others) < 3:  # a small context: distractors from the rest of the package
                others = sorted({_option(g) for g in pool() if g.kind == kind and g.value != f.value} - {gold})
            if kind == "raises" and len(others) < 3:
                others = sorted(set(others) | {e for e in _BUILTIN_EXC if e != gold})
            if len(others) < 3:
                continue
            options = [gold, *rng.sample(others, 3)]
            rng.shuffle(options)
            return options, f
        return [], None

    def score(self, instance: Instance, answer: str) -> Score:
        return Score(scoring.choice_score(answer, str(instance.gold), instance.meta["options"]))

    def oracle(self, instance: Instance) -> str:
        """Re-parse the asked-about file from the context and pick the option that matches its source."""
        want = Fact(**instance.meta["fact"])
        files = dict(split_files(instance.context))
        for f in facts(want.path, files.get(want.path, "")):
            if (f.kind, f.subject, f.detail) == (want.kind, want.subject, want.detail) or (
                want.kind == "docstring" and f.kind == "docstring" and f.value == want.value
            ):
                opt = _option(f)
                if opt in instance.meta["options"]:
                    return scoring.LETTERS[instance.meta["options"].index(opt)]
        return ""

    def baseline(self, instance: Instance) -> str:
        """Closed-book: the option sharing most words with the question (ties: the first), no context read."""
        stem = instance.question.split("\nA. ")[0]
        q = _parts(stem)
        best = max(range(4), key=lambda i: (len(q & _parts(instance.meta["options"][i])), -i))
        return scoring.LETTERS[best]


def make_family() -> CodeQA:
    return CodeQA()
