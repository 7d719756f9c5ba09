"""Hostile code against the real sandbox: every attack must fail safely, and neither the host nor the prompt
file may change. The attacks dig past the guest's import allow-list to the raw WASI ``posix`` module (``POSIX``),
the way hostile code would: the allow-list is a convenience, WebAssembly + WASI is the boundary under test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from wasm_sandbox import HostFunctions, Prompt, Sandbox, SandboxLimits
from wasm_sandbox.build import build

POSIX = (
    "bi = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'BuiltinImporter'][0]\n"
    "os = bi.load_module('posix')\n"
)
TEXT = "the secret prompt\n" * 100


@pytest.fixture(scope="session", autouse=True)
def built_guest() -> None:
    build()


def _fingerprint(path: Path) -> tuple:
    st = path.stat()
    return (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns, st.st_mode, st.st_nlink)


def _tree(path: Path) -> list:
    return sorted((str(p.relative_to(path)), p.is_symlink()) for p in path.rglob("*"))


class World:
    """A prompt file used in place (with a sibling secret next to it), a canary on the host, and a sandbox."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.data.mkdir()
        self.src = self.data / "prompt.txt"
        self.src.write_text(TEXT)
        self.sibling = self.data / "sibling-secret.txt"
        self.sibling.write_text("not for the guest")
        self.canary = root / "host-canary.txt"
        self.canary.write_text("host file")
        self.prompt = Prompt.create(self.src, root / "work")
        self.work = root / "work"
        self.host_calls: list = []
        self.sb = Sandbox(
            self.prompt,
            HostFunctions(llm_query=self._llm),
            SandboxLimits(cpu_seconds=1.0, memory_bytes=192 << 20, max_output_chars=5000),
        )
        self.before = self._snapshot()

    def _llm(self, q: str, opts: dict) -> str:
        self.host_calls.append(q)
        return "ok"

    def _snapshot(self) -> tuple:
        return (
            _fingerprint(self.src),
            _fingerprint(self.prompt.path),
            _fingerprint(self.canary),
            _fingerprint(self.sibling),
            _tree(self.data),
            _tree(self.work),
            _tree(self.canary.parent),
        )

    def run(self, code: str):
        return self.sb.run_cell(code)

    def assert_untouched(self) -> None:
        assert self._snapshot() == self.before
        # the sandbox still works and still sees the intact prompt
        r = self.sb.run_cell("len(context), context[:17]")
        assert r.error is None and r.display == repr((len(TEXT), TEXT[:17]))


@pytest.fixture()
def world(tmp_path: Path):
    w = World(tmp_path)
    yield w
    w.assert_untouched()  # every attack test ends with this check
    w.sb.close()
    w.prompt.close()
    assert w.src.read_text() == TEXT


def _refused(r, *needles: str) -> None:
    assert r.error is not None, r
    assert any(n in r.error for n in needles), r.error


# --- the prompt file ----------------------------------------------------------------------------------------
def test_write_prompt(world):
    _refused(
        world.run(POSIX + "fd = os.open('/prompt/prompt.txt', os.O_WRONLY)\nos.write(fd, b'pwned')"), "PermissionError"
    )
    _refused(world.run(POSIX + "os.open('/prompt/prompt.txt', os.O_RDWR | os.O_APPEND)"), "PermissionError")
    _refused(world.run("context[0] = 'x'"), "TypeError")
    _refused(world.run("context.x = 1"), "read-only")


def test_truncate_prompt(world):
    _refused(world.run(POSIX + "os.truncate('/prompt/prompt.txt', 0)"), "PermissionError")
    _refused(world.run(POSIX + "os.open('/prompt/prompt.txt', os.O_WRONLY | os.O_TRUNC)"), "PermissionError")
    r = world.run(POSIX + "fd = os.open('/prompt/prompt.txt', os.O_RDONLY)\nos.ftruncate(fd, 0)")
    _refused(r, "PermissionError", "OSError")


def test_delete_and_rename_prompt(world):
    _refused(world.run(POSIX + "os.unlink('/prompt/prompt.txt')"), "PermissionError")
    _refused(world.run(POSIX + "os.rename('/prompt/prompt.txt', '/prompt/moved.txt')"), "PermissionError")
    _refused(world.run(POSIX + "os.rmdir('/prompt')"), "PermissionError", "OSError")
    world.run(POSIX + "os.chmod('/prompt/prompt.txt', 0o777)")  # a no-op in WASI; the fixture checks the mode


def test_create_files(world):
    for path in ("/prompt/new.txt", "/new.txt", "/tmp/new.txt", "new.txt"):
        r = world.run(POSIX + f"os.open({path!r}, os.O_WRONLY | os.O_CREAT)")
        _refused(r, "PermissionError", "FileNotFoundError")
    _refused(world.run(POSIX + "os.mkdir('/prompt/d')"), "PermissionError")
    _refused(world.run(POSIX + "os.mkdir('/d')"), "PermissionError", "FileNotFoundError")


def test_dotdot_absolute_paths_and_symlinks(world):
    data = str(world.data)
    for path in (
        "/prompt/../../etc/passwd",
        "/prompt/../sibling-secret.txt",
        "../etc/passwd",
        "/etc/passwd",
        str(world.canary),
        f"{data}/sibling-secret.txt",
        str(world.src),
    ):
        r = world.run(POSIX + f"os.open({path!r}, os.O_RDONLY)")
        _refused(r, "PermissionError", "FileNotFoundError")
    assert world.run(POSIX + "os.listdir('/prompt')").display == "['prompt.txt']"  # not the sibling
    _refused(world.run(POSIX + "os.listdir('/')"), "FileNotFoundError", "PermissionError")
    _refused(world.run(POSIX + "os.symlink('/etc/passwd', '/prompt/link')"), "PermissionError")
    # a symlink planted (by the host) inside the preopened dir must not lead out of it
    link = world.prompt.dir / "planted-link"
    os.symlink("/etc/passwd", link)
    rel = world.prompt.dir / "planted-rel"
    os.symlink("../../host-canary.txt", rel)
    try:
        for name in ("planted-link", "planted-rel"):
            r = world.run(POSIX + f"fd = os.open('/prompt/{name}', os.O_RDONLY)\nos.read(fd, 100)")
            _refused(r, "PermissionError", "FileNotFoundError", "OSError")
    finally:
        link.unlink()
        rel.unlink()


def test_read_etc_passwd_and_env(world, monkeypatch):
    monkeypatch.setenv("OUTCORE_ATTACK_SECRET", "hunter2")
    _refused(world.run("open('/etc/passwd').read()"), "NameError")
    _refused(world.run(POSIX + "os.open('/etc/passwd', os.O_RDONLY)"), "FileNotFoundError", "PermissionError")
    r = world.run(POSIX + "dict(os.environ), os.getenv if hasattr(os, 'getenv') else None")
    assert r.error is None and r.display.startswith("({},")
    r = world.run("import os")
    _refused(r, "ImportError")
    r = world.run("str(().__class__.__base__.__subclasses__())")
    assert "hunter2" not in (r.display or "")


def test_sockets(world):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list = []

    def accept() -> None:
        try:
            accepted.append(listener.accept())
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    try:
        _refused(world.run("import socket"), "ImportError")
        r = world.run(POSIX + f"s = bi.load_module('_socket').socket()\ns.connect(('127.0.0.1', {port}))")
        _refused(r, "PermissionError", "OSError")
        r = world.run(POSIX + "s = bi.load_module('_socket')\ns.getaddrinfo('example.com', 80)")
        _refused(r, "Error", "error")
    finally:
        t.join()
        listener.close()
    assert accepted == []


def test_processes(world):
    for mod in ("subprocess", "multiprocessing", "pty"):
        _refused(world.run(f"import {mod}"), "ImportError")
    for fn in (
        "system('ls')",
        "fork()",
        "execv('/bin/sh', ['sh'])",
        "spawnv(0, '/bin/sh', ['sh'])",
        "posix_spawn('/bin/sh', ['sh'], {})",
        "kill(1, 9)",
    ):
        _refused(world.run(POSIX + f"os.{fn}"), "AttributeError")


# --- resource limits ----------------------------------------------------------------------------------------
def test_while_true(world):
    world.run("keep = 1")
    r = world.run("while True: pass")
    assert r.limit == "cpu_time" and r.state_reset and "CPU time limit" in r.error
    assert r.duration_s < 3
    r = world.run("while True:\n    try:\n        while True: pass\n    except BaseException: pass")
    assert r.limit == "cpu_time" and r.state_reset  # a trap cannot be caught by the guest
    r = world.run("import time\ntime.sleep(100)")  # the guest's sleep is a CPU-limited busy wait
    assert r.limit == "cpu_time" and r.state_reset
    t0 = time.monotonic()
    r = world.run(POSIX + "bi.load_module('time').sleep(100)")  # the raw WASI sleep traps at once
    assert r.state_reset and time.monotonic() - t0 < 3


@pytest.mark.parametrize(
    "bomb",
    [
        "x = 'a' * (1 << 31)",
        "x = bytearray(10**9)",
        "x = []\nwhile True: x.append(' ' * 10**6)",
        "x = [0] * (10**9)",
        "x = 'a' * 10**10",
        "d = {}\ni = 0\nwhile True:\n    d[i] = str(i) * 100\n    i += 1",
    ],
)
def test_memory_bombs(world, bomb):
    """After a bomb the outcome is deterministic: either the state is kept and the guest has room for the next cell
    (SandboxLimits.probe_bytes() free again), or the state was reset and the result says so. Either way the next
    cells work, including one that allocates the probe's worth of memory."""
    # time enough to fill memory on a loaded machine: a bomb must end at the memory limit, not the CPU limit
    world.sb.limits = dataclasses.replace(world.sb.limits, cpu_seconds=10.0)
    world.run("keep = 1")
    r = world.run(bomb)
    assert r.error is not None
    assert r.limit == "memory" or r.error.startswith("OverflowError"), r.error
    _next_cells_work(world, r)


def _next_cells_work(world, r) -> None:
    r2 = world.run("keep")
    if r.state_reset:
        assert "state was reset" in r.error and "state kept" not in r.error, r.error
        assert r2.error is not None and r2.error.startswith("NameError"), r2.error
    else:
        assert r2.error is None and r2.display == "1", (r.error, r2.error)
    probe = world.sb.limits.probe_bytes()
    r3 = world.run(f"len(bytearray({probe}))")
    assert r3.error is None and r3.display == str(probe), r3.error
    r4 = world.run("y = [str(i) for i in range(1000)]\nlen(y)")
    assert r4.error is None and r4.display == "1000" and not r4.state_reset


def test_dict_bomb_resets_the_state(world):
    """The bomb of issue 18: a dict the globals still hold fills memory; the next cell must not meet a full guest."""
    world.sb.limits = dataclasses.replace(world.sb.limits, cpu_seconds=10.0)
    world.run("keep = 1")
    r = world.run("d = {}\ni = 0\nwhile True:\n    d[i] = str(i) * 100\n    i += 1")
    assert r.limit == "memory" and r.state_reset, r.error
    _next_cells_work(world, r)


def test_splitting_a_large_context_that_exhausts_memory(tmp_path):
    """`parts = context.split(...)` on a prompt larger than the guest's memory ends at the memory limit; the next
    cells work (state kept with room, or reset and said so), exactly as after a bomb."""
    line = "word " * 19 + "\n"
    big = tmp_path / "big.txt"
    big.write_text(line * (40_000_000 // len(line)))
    prompt = Prompt.create(big, tmp_path / "work")
    limits = SandboxLimits(cpu_seconds=20.0, memory_bytes=128 << 20, max_output_chars=5000)
    with Sandbox(prompt, limits=limits) as sb:
        w = type("W", (), {"sb": sb, "run": staticmethod(sb.run_cell)})()
        w.run("keep = 1")
        r = w.run("parts = context.split(' ')\nlen(parts)")
        assert r.error is not None and r.limit == "memory", r.error
        _next_cells_work(w, r)
    prompt.close()


def test_deep_recursion(world):
    world.run("keep = 1")
    r = world.run("def f(n): return f(n + 1)\nf(0)")
    assert r.error.startswith("RecursionError") and not r.state_reset
    r = world.run("n = []\nfor i in range(10**6): n = [n]\nrepr(n)[:5]")  # C-level recursion
    assert r.error is not None
    assert r.state_reset or "Recursion" in r.error
    r = world.run("import json\njson.loads('[' * 10**6 + ']' * 10**6)")
    assert r.error is not None


def test_huge_print(world):
    r = world.run("print('x' * 100_000_000)")
    assert r.limit in ("output", "memory")
    assert len(r.stdout) < 5000 + 200 and len(r.stderr) < 5200
    r = world.run("for i in range(10**6): print(i)")
    assert r.limit in ("output", "cpu_time") and len(r.stdout) < 5200
    r = world.run(POSIX + "os.write(1, b'R' * 10**7)\nos.write(2, b'E' * 10**7)")
    assert r.limit == "output" and len(r.stdout) < 5200 and len(r.stderr) < 5200
    r = world.run("'y' * 10**8")
    assert len(r.display or "") <= 5000


def test_overwriting_reserved_names(world):
    r = world.run(
        "llm_query = lambda *a, **k: 'fake'\ncontext = 'fake context'\nFINAL = print\n"
        "SHOW_VARS = None\nrlm_query = llm_query_batched = None\nllm_query('x'), context"
    )
    assert r.display == "('fake', 'fake context')"
    r = world.run("llm_query('q'), context[:10], FINAL('done')")
    assert r.error is None and r.display == "('ok', 'the secret', None)" and r.final == "done"
    world.run("del context, llm_query")
    assert world.run("llm_query('again')").display == "'ok'"
    # builtins and the import hook are restored too
    world.run("__builtins__['__import__'] = lambda *a, **k: None\n__builtins__['len'] = None")
    assert world.run("len('abc')").display == "3"
    _refused(world.run("import os"), "ImportError")
    # tampering with the real builtins module through introspection stays inside the guest
    r = world.run(POSIX + "b = bi.load_module('builtins')\nb.print = None")
    assert world.host_calls.count("q") == 1 and world.host_calls.count("again") == 1


def test_exit_and_trap_do_not_kill_the_host(world):
    world.run("keep = 1")
    r = world.run(POSIX + "os._exit(0)")
    assert r.state_reset
    r = world.run("raise SystemExit(0)")
    assert r.error.startswith("SystemExit") and not r.state_reset
    r = world.run("raise KeyboardInterrupt")
    assert r.error.startswith("KeyboardInterrupt") and not r.state_reset
