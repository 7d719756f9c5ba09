"""Prompt-level helpers (host-native) and engine-provided extra host calls, through the real sandbox."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wasm_sandbox import HostFunctions, Prompt, Sandbox, SandboxLimits
from wasm_sandbox.build import build
from wasm_sandbox.prompt import MAX_REPLY_CHARS
from wasm_sandbox.retrieval import MAX_PASSAGE

CODE = '''### File: pkg/util/io.py
```python
import os


@cache
@other(
    1,
)
def load(path: str,
         mode: str = "rb",
         size: int = 4096) -> bytes:
    """Read a file."""
    with open(path, mode) as f:
        return f.read(size)


class Store:
    """A store."""

    def load(self, key, default=None):
        return default
```

### File: pkg/cli.py
def main(argv=None):
    text = """
a string at column 0
"""
    return load(argv)

### File: docs/notes.md
# Notes
def load is mentioned here, not defined

### File: pkg/util/store.js
class Store {
  load(key) { return 1 }
}
'''


@pytest.fixture(scope="session", autouse=True)
def built_guest() -> None:
    build()


def run(sb: Sandbox, code: str):
    r = sb.run_cell(code)
    assert r.error is None, (code, r.error, r.traceback)
    return eval(r.display) if r.display is not None else None


@pytest.fixture()
def code_sb(tmp_path: Path):
    p = Prompt.create(CODE, tmp_path)
    s = Sandbox(p, limits=SandboxLimits(cpu_seconds=5))
    yield s
    s.close()
    p.close()


# --- source files -----------------------------------------------------------------------------------------
def test_files_and_read_file(code_sb):
    assert run(code_sb, "files()") == ["pkg/util/io.py", "pkg/cli.py", "docs/notes.md", "pkg/util/store.js"]
    io_lines = CODE.split("```python\n", 1)[1].split("\n```", 1)[0].split("\n")
    assert run(code_sb, "read_file('pkg/util/io.py')") == "\n".join(io_lines)  # the fences are not file lines
    assert run(code_sb, "read_file('io.py', 1, 1)") == "import os"  # a unique end of the path; 1-based, inclusive
    assert run(code_sb, "read_file('util/io.py', 9, 11)") == "\n".join(io_lines[8:11])
    assert run(code_sb, "read_file('./pkg/cli.py', 5)") == "    return load(argv)"
    r = code_sb.run_cell("read_file('store')")
    assert r.error.startswith("HostError") and "no file 'store'" in r.error and "pkg/util/store.js" in r.error
    r = code_sb.run_cell("read_file('io.py', 0, 3)")
    assert "numbered from 1" in r.error


@pytest.mark.parametrize(
    "header",
    [
        "### File: {}",
        "# File: {}",
        "## File: `{}`",
        "==> {} <==",
        "--- {} ---",
        "File: {}",
        '<file path="{}">',
        "# ===== FILE: {} =====",
        "/* ~~~~ {} ~~~~ */",
        "<!-- path: {} -->",
    ],  # fmt: skip
)
def test_header_styles(tmp_path, header):
    body = "x = 1\ny = 2"
    text = "A preamble line.\n\n" + "".join(header.format(p) + "\n" + body + "\n\n" for p in ("a/b.py", "c.txt"))
    if header.startswith("<file"):
        text = text.replace(body + "\n\n", body + "\n</file>\n\n")
    with Prompt.create(text, tmp_path) as p, Sandbox(p) as s:
        assert run(s, "files()") == ["a/b.py", "c.txt"]
        assert run(s, "read_file('a/b.py')") == body and run(s, "read_file('b.py', 2, 2)") == "y = 2"


def test_a_header_of_no_known_style_is_a_path_dressed_as_a_heading(tmp_path):
    """Any line that is only a path between marks, or after a label, heads a file; one style whatever comment leader
    each language uses; a bullet list of file names is no header."""
    text = (
        "Source dump of the repo.\n# ===== FILE: billing/render.py =====\ndef f(x=1):\n    return x\n"
        "// ===== FILE: web/app.js =====\nfunction g() {}\n# ===== FILE: tests/test_render.py =====\nassert f()\n"
    )
    with Prompt.create(text, tmp_path) as p, Sandbox(p) as s:
        assert run(s, "files()") == ["billing/render.py", "web/app.js", "tests/test_render.py"]
        assert run(s, "read_file('app.js')") == "function g() {}"
        assert run(s, "definition('f')['defaults']") == {"x": "1"}
    with Prompt.create("Files:\n- config.yaml\n- main.py\n", tmp_path) as p, Sandbox(p) as s:
        assert run(s, "files()") == []


def test_files_use_the_dominant_header_style(tmp_path):
    text = "".join(f"### File: m{i}.py\nprint({i})\nFile: not_a_header.py\n\n" for i in range(3))
    with Prompt.create(text, tmp_path) as p, Sandbox(p) as s:
        assert run(s, "files()") == ["m0.py", "m1.py", "m2.py"]
    with Prompt.create("just some text\nwithout headers\n", tmp_path) as p, Sandbox(p) as s:
        assert run(s, "files()") == []
        assert "no file header lines" in s.run_cell("read_file('a.py')").error


def test_definition(code_sb):
    d = run(code_sb, "definition('load')")
    assert d["path"] == "pkg/util/io.py" and d["line"] == 4 and d["end_line"] == 13  # decorators included
    assert d["source"].startswith("@cache\n@other(") and d["source"].endswith("return f.read(size)")
    assert 'mode: str = "rb"' in d["source"]
    assert d["matches"] == [["pkg/util/io.py", 4], ["pkg/util/io.py", 19]]  # not the .md mention
    assert run(code_sb, "read_file('pkg/util/io.py', 4, 13)") == d["source"]
    assert run(code_sb, f"context[{d['offset']}:{d['offset']} + 6]") == "@cache"
    m = run(code_sb, "definition('Store.load')")
    assert m["line"] == 19 and m["source"] == "    def load(self, key, default=None):\n        return default"
    assert run(code_sb, "definition('Store')['end_line']") == 20
    assert (
        run(code_sb, "definition('Store', path='store.js')['source']") == "class Store {\n  load(key) { return 1 }\n}"
    )
    c = run(code_sb, "definition('main', path='cli.py')")  # a string at column 0 inside the function
    assert c["source"].endswith("return load(argv)") and c["line"] == 1
    r = code_sb.run_cell("definition('nothing_here')")
    assert r.error.startswith("HostError") and "no def or class named 'nothing_here'" in r.error
    assert "give a function or class name" in code_sb.run_cell("definition('not a name')").error


def test_definition_by_indentation_outside_python(tmp_path):
    text = "### File: a.pyx\n\ncdef x\ndef f(a,\n      b):\n    return a\n\n    # still f\n    return b\nz = 1\n"
    with Prompt.create(text, tmp_path) as p, Sandbox(p) as s:
        d = run(s, "definition('f')")
        assert d["source"] == "def f(a,\n      b):\n    return a\n\n    # still f\n    return b" and d["line"] == 3


def test_definition_without_file_headers(tmp_path):
    with Prompt.create("import x\n\ndef solo(n):\n    return n * 2\n", tmp_path) as p, Sandbox(p) as s:
        d = run(s, "definition('solo')")
        assert d["path"] == "<prompt>" and d["line"] == 3 and d["source"].endswith("return n * 2")


# --- chunks and documents ---------------------------------------------------------------------------------
def test_chunks_cover_the_text(tmp_path):
    text = "".join(f"line {i} " + "w" * (i % 50) + "\n" for i in range(3000)) + "tail without newline"
    with Prompt.create(text, tmp_path) as p, Sandbox(p) as s:
        spans = run(s, "[(o, len(t)) for o, t in chunks(1000)]")
        assert spans[0][0] == 0 and all(n <= 1000 for _, n in spans)
        assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:], strict=False))  # contiguous
        assert spans[-1][0] + spans[-1][1] == len(text)
        assert run(s, "all(t.endswith('\\n') for _, t in chunks(1000)[:-1])")  # cut after a newline
        assert run(s, "''.join(chunks(777).texts()) == str(context)")
        r = s.run_cell("c = chunks(1000)\nc")
        assert r.display.startswith(f"<{len(spans)} chunks")
        assert run(s, "chunks(1000)[-1][1]") == text[spans[-1][0] :]
        assert run(s, "[t for _, t in chunks(delimiter='\\n')] == [x for x in str(context).split('\\n') if x.strip()]")
        assert run(s, "len(chunks(delimiter='\\n'))") == 3001
        assert run(s, "chunks(10, delimiter='\\n')[1]") == (text.find("line 1 "), "line 1 w")
        assert "positive" in s.run_cell("chunks(0)").error
        assert "empty" in s.run_cell("chunks(delimiter='')").error
        assert "more than 100,000 chunks" in s.run_cell("chunks(1)").error


def test_documents_helpers(tmp_path):
    docs = [f"Title {i}\nbody of document {i} about " + ("apples" if i == 3 else "pears") for i in range(6)]
    docs[4] = "\n\n  " + "T" * 500 + "\nlong title"
    with Prompt.create(docs, tmp_path) as p, Sandbox(p) as s:
        titles = run(s, "doc_titles()")
        assert titles[:4] == [f"Title {i}" for i in range(4)] and titles[4] == "T" * 200 and len(titles) == 6
        assert run(s, "[context.doc_at(o) for o, _ in chunks(25)]") == sorted(
            run(s, "[context.doc_at(o) for o, _ in chunks(25)]")
        )
        assert run(s, "{context.doc_at(o) for o, t in chunks(10_000)}") == set(range(6))  # one chunk per document
        hits = run(s, "retrieve('apple', k=3)")
        assert run(s, f"context.doc_at({hits[0][0]})") == 3 and hits[0][1] == docs[3]
    with Prompt.create("one text", tmp_path) as p, Sandbox(p) as s:
        assert "needs a prompt that is a list of documents" in s.run_cell("doc_titles()").error


# --- retrieval --------------------------------------------------------------------------------------------
STAFF = "\n\n".join(
    [f"Employee {i}: {n} works in {c} as a clerk." for i, (n, c) in enumerate([("Ann", "Oslo"), ("Bob", "Rome")])]
    + ["Dana Whitfield manages the accounts team; her office is in Lisbon.", "The canteen opens at noon."]
    + [f"Filler paragraph {i} about the weather and the trains." for i in range(200)]
)


def test_retrieve_ranks_passages(tmp_path):
    with Prompt.create(STAFF, tmp_path) as p, Sandbox(p) as s:
        hits = run(s, "retrieve('who is the manager of the accounts team', k=3)")
        assert hits[0] == (STAFF.find("Dana"), "Dana Whitfield manages the accounts team; her office is in Lisbon.")
        assert len(hits) <= 3
        assert run(s, "retrieve('canteen')")[0][1] == "The canteen opens at noon."
        assert run(s, "retrieve('zzzunknownword')") == [] and run(s, "retrieve('   ')") == []
        assert len(run(s, "retrieve('weather trains', k=1000)")) == 100  # k is capped
        assert p.tools().index.index is not None  # built once, cached on the prompt ...
        built = p.tools().index.index
        with Sandbox(p) as other:  # ... and shared by every sandbox over it
            assert run(other, "retrieve('canteen', k=1)")[0][1] == "The canteen opens at noon."
        assert p.tools().index.index is built


def test_retrieve_cuts_long_paragraphs(tmp_path):
    para = "\n".join(f"row {i}: value {i * 3}" + (" needle-topic here" if i == 777 else "") for i in range(2000))
    with Prompt.create(para, tmp_path) as p, Sandbox(p) as s:
        hits = run(s, "retrieve('needle topic', k=2)")
        assert "row 777: value 2331 needle-topic here" in hits[0][1] and len(hits[0][1]) <= MAX_PASSAGE
        assert run(s, f"context[{hits[0][0]}:{hits[0][0]} + 4]") == "row "


def test_retrieve_index_time_counts_and_the_build_goes_on(tmp_path):
    text = "\n\n".join(f"paragraph {i} " + " ".join(f"w{(i * 7 + j) % 5000}" for j in range(60)) for i in range(30000))
    with Prompt.create(text, tmp_path) as p, Sandbox(p, limits=SandboxLimits(cpu_seconds=0.2)) as s:
        t0 = time.monotonic()
        r = s.run_cell("retrieve('w17 w42')")
        assert r.limit == "cpu_time" and "still being built" in r.error and time.monotonic() - t0 < 2.0
        p.tools().index.get(timeout=60)  # the build went on in the background
        r = s.run_cell("len(retrieve('w17 w42'))")
        assert r.error is None and r.display == "5"


# --- engine-provided host calls ---------------------------------------------------------------------------
def test_extra_host_calls(tmp_path):
    seen: list = []

    def llm_map(a: dict) -> list:
        seen.append(a)
        return [f"{a['instruction']}:{x}" for x in a["items"]]

    host = HostFunctions(
        llm_query_batched=lambda qs, o: ["a", None],
        extra={"llm_map": llm_map, "count_words": lambda a: len(a["args"][0].split()), "bad": lambda a: {1, 2}},
    )
    labelled = HostFunctions(extra={"classify": lambda a: [a["instruction"]] * len(a["items"]) + a["labels"]})
    with Prompt.create("one\ntwo\n", tmp_path) as p, Sandbox(p, host) as s:
        assert run(s, "llm_map(['x', (5, 'y')], 'tag', batch=4)") == ["tag:x", "tag:y"]
        assert seen == [{"items": ["x", "y"], "instruction": "tag", "batch": 4}]
        assert run(s, "llm_map(chunks(delimiter='\\n'), 'n')") == ["n:one", "n:two"]
        assert run(s, "count_words('a b c')") == 3  # an extra without a guest wrapper gets a forwarder
        r = s.run_cell("classify(['x'], ['a', 'b'], 'topic?')")
        assert r.error.startswith("HostError: NotImplementedError: classify() is not provided")
        assert "llm_map" in r.error
        assert "not JSON" in s.run_cell("bad()").error
        assert run(s, "llm_query_batched(['p', 'q'])") == ["a", None]  # a failed item stays None
        r = s.run_cell("llm_map = 3\nclassify = None")
        assert sorted(r.restored_names) == ["classify", "llm_map"]
        assert run(s, "llm_map(['z'], 'i')") == ["i:z"]
    with Prompt.create("x", tmp_path) as p, Sandbox(p, labelled) as s:
        assert run(s, "classify(['q', 'r'], ['a', 'b'], 'topic?')") == ["topic?", "topic?", "a", "b"]


def test_which_extras_are_model_waits(tmp_path):
    def slow(a: dict) -> str:
        time.sleep(0.7)
        return "done"

    with Prompt.create("x", tmp_path) as p:
        with Sandbox(p, HostFunctions(extra={"slow": slow}), SandboxLimits(cpu_seconds=0.5)) as s:
            assert s.run_cell("slow()").display == "'done'"  # extras are model waits unless declared otherwise
        host = HostFunctions(extra={"slow": slow}, waiting=frozenset())
        with Sandbox(p, host, SandboxLimits(cpu_seconds=0.5)) as s:
            assert s.run_cell("slow()").limit == "cpu_time"


def test_host_functions_validate_extras():
    with pytest.raises(ValueError, match="built in"):
        HostFunctions(extra={"search": lambda a: 1})
    with pytest.raises(ValueError, match="identifier"):
        HostFunctions(extra={"not ok": lambda a: 1})
    with pytest.raises(ValueError, match="not in extra"):
        HostFunctions(extra={"a": lambda a: 1}, waiting=frozenset({"b"}))
    with pytest.raises(TypeError, match="not callable"):
        HostFunctions(extra={"a": 3})  # type: ignore[dict-item,unused-ignore]


def test_helper_replies_are_capped(tmp_path):
    big = "### File: big.py\n" + ("x = 1  # " + "word " * 198 + "\n") * 5000 + "### File: small.py\npass\n"
    with Prompt.create(big, tmp_path) as p, Sandbox(p, limits=SandboxLimits(memory_bytes=256 << 20)) as s:
        assert run(s, "len(read_file('big.py'))") == MAX_REPLY_CHARS < 5000 * 1000
        hits = run(s, "[len(t) for _, t in retrieve('word', k=20)]")
        assert len(hits) == 20 and max(hits) <= MAX_PASSAGE
