"""Cancellation, many threads at once, and the layer rule, against the real sandbox (built guest in Wasmtime)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wasm_sandbox import HostFunctions, Prompt, Sandbox, SandboxLimits
from wasm_sandbox.build import build

ROOT = Path(__file__).resolve().parents[1]
TEXT = "".join(f"record {i}: the {'manager' if i % 7 == 0 else 'clerk'} of office {i % 13}\n\n" for i in range(400))


@pytest.fixture(scope="session", autouse=True)
def built_guest() -> None:
    build()


@pytest.fixture()
def prompt(tmp_path: Path):
    p = Prompt.create(TEXT, tmp_path / "work")
    yield p
    p.close()


class Token:
    """Duck-typed like engine.cancel.CancelToken: is_set() and a reason."""

    def __init__(self) -> None:
        self._ev = threading.Event()
        self.reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._ev.set()

    def is_set(self) -> bool:
        return self._ev.is_set()


def _cancel_after(token, seconds: float) -> list[float]:
    at: list[float] = []

    def fire() -> None:
        time.sleep(seconds)
        at.append(time.monotonic())
        token.cancel() if hasattr(token, "cancel") else token.set()

    threading.Thread(target=fire, daemon=True).start()
    return at


def test_cancel_a_cell_waiting_on_llm_query(prompt):
    calls: list[str] = []

    def slow_llm(q: str, opts: dict) -> str:
        calls.append(q)
        time.sleep(0.05)  # a model answering
        return "ok"

    ev = threading.Event()
    with Sandbox(prompt, HostFunctions(llm_query=slow_llm), SandboxLimits(cpu_seconds=5), cancel=ev) as sb:
        sb.run_cell("keep = 1")
        fired = _cancel_after(ev, 0.3)
        r = sb.run_cell("while True:\n    llm_query('again')")
        done = time.monotonic()
        assert r.limit == "cancelled" and r.state_reset
        assert r.error.startswith("Cancelled:") and "cancelled" in r.error and "state was reset" in r.error
        assert done - fired[0] < 1.0
        assert len(calls) >= 3
        n = len(calls)
        # the sandbox serves the next cell (a fresh instance: the REPL state is gone, and it says so above)
        ev.clear()
        r = sb.run_cell("llm_query('after')")
        assert r.error is None and r.display == "'ok'" and len(calls) == n + 1
        assert sb.run_cell("keep").error.startswith("NameError")


def test_cancel_pure_compute_within_a_tick(prompt):
    tok = Token()
    with Sandbox(prompt, limits=SandboxLimits(cpu_seconds=30), cancel=tok) as sb:
        fired = _cancel_after(tok, 0.3)
        r = sb.run_cell("n = 0\nwhile True:\n    n += 1")
        assert r.limit == "cancelled" and r.state_reset and time.monotonic() - fired[0] < 1.0
        sb.cancel = Token()  # one token per run: the next run's token replaces it
        assert sb.run_cell("sum(range(10))").display == "45"


def test_pure_compute_still_ends_at_the_cpu_limit(prompt):
    with Sandbox(prompt, limits=SandboxLimits(cpu_seconds=0.4), cancel=Token()) as sb:
        t0 = time.monotonic()
        r = sb.run_cell("while True: pass")
        assert r.limit == "cpu_time" and 0.35 < time.monotonic() - t0 < 1.5


def test_cancelled_host_answer_is_not_handed_to_the_guest(prompt):
    """A backend that raises when cancelled must not look like an ordinary failure the cell can catch."""
    tok = Token()

    def llm(q: str, opts: dict) -> str:
        tok.cancel("max_wall_s")  # the deadline passes while the model works
        raise RuntimeError("the run was cancelled")

    with Sandbox(prompt, HostFunctions(llm_query=llm), cancel=tok) as sb:
        r = sb.run_cell("try:\n    llm_query('x')\nexcept BaseException:\n    pass\nFINAL('swallowed')")
        assert r.limit == "cancelled" and r.final is None and "max_wall_s" in r.error


def test_cancel_is_checked_in_prompt_helpers(prompt):
    for code in ("while True:\n    context[0:10]", "while True:\n    search('manager', max_hits=1)",
                 "while True:\n    retrieve('manager office', k=2)", "while True:\n    chunks(500)"):  # fmt: skip
        tok = Token()
        with Sandbox(prompt, limits=SandboxLimits(cpu_seconds=20), cancel=tok) as sb:
            fired = _cancel_after(tok, 0.2)
            r = sb.run_cell(code)
            assert r.limit == "cancelled", (code, r.error)
            assert time.monotonic() - fired[0] < 1.0, code


def test_already_cancelled_cell_does_not_run(prompt):
    ev = threading.Event()
    with Sandbox(prompt, cancel=ev) as sb:
        sb.run_cell("keep = 7")
        ev.set()
        r = sb.run_cell("keep = 8")
        assert r.limit == "cancelled" and not r.state_reset and "did not run" in r.error
        ev.clear()
        assert sb.run_cell("keep").display == "7"


def test_eight_threads_create_and_run_sandboxes_at_once(prompt, tmp_path):
    """Instantiation, host calls, traps and the shared retrieval index from 8 threads at the same time."""
    n = 8
    start = threading.Barrier(n)
    errors: list = []
    own = [Prompt.create(f"thread {i} text\nline two of {i}\n", tmp_path / f"w{i}") for i in range(n)]

    def worker(i: int) -> None:
        try:
            host = HostFunctions(
                llm_query=lambda q, o: f"{i}:{q}", extra={"llm_map": lambda a: [f"{i}:{x}" for x in a["items"]]}
            )
            start.wait(10)
            for _ in range(3):
                with Sandbox(prompt, host, SandboxLimits(cpu_seconds=2)) as s, Sandbox(own[i]) as mine:
                    s.run_cell(f"mine = {i}")
                    assert mine.run_cell("context.splitlines()[0]").display == repr(f"thread {i} text")
                    for j in range(15):
                        r = s.run_cell(f"llm_query('{j}'), llm_map(['a', 'b'], 'x')")
                        assert r.display == repr((f"{i}:{j}", [f"{i}:a", f"{i}:b"])), r
                    r = s.run_cell("[o for o, _ in retrieve('manager office', k=3)]")
                    assert r.error is None and len(eval(str(r.display))) == 3, r
                    if i % 2:
                        r = s.run_cell("x = 'a' * 100\nwhile True: pass")
                        assert r.limit == "cpu_time" and r.state_reset
                        assert s.run_cell("llm_query('back')").display == repr(f"{i}:back")
                    else:
                        assert s.run_cell("mine").display == str(i)
        except BaseException as e:  # noqa: BLE001
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    for p in own:
        p.close()
    assert not errors, errors


def test_layers_wasm_sandbox_and_models_import_nothing_of_engine():
    code = (
        "import importlib, pkgutil, sys\n"
        "import wasm_sandbox, models\n"
        "for pkg in (wasm_sandbox, models):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m == 'engine' or m.startswith('engine.'))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('wasm_sandbox.', 'models.')))\n"
        "print(len(loaded), bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n, bad = out.stdout.split(" ", 1)
    assert int(n) >= 15 and bad.strip() == "[]", out.stdout


def test_ctrl_c_while_the_guest_computes(prompt, sigint_default):
    """Ctrl-C reaches the main thread inside the 10 ms epoch check: the cell stops, run_cell re-raises it, and the
    sandbox (a fresh instance) keeps working."""
    import _thread

    assert threading.current_thread() is threading.main_thread()
    with Sandbox(prompt, limits=SandboxLimits(cpu_seconds=20)) as sb:
        sb.run_cell("keep = 1")
        threading.Timer(0.3, _thread.interrupt_main).start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            sb.run_cell("while True: pass")
        assert time.monotonic() - t0 < 2.0
        assert sb.run_cell("keep").error.startswith("NameError")  # the instance was replaced
        assert sb.run_cell("2 + 2").display == "4"


def test_ctrl_c_while_llm_query_waits(prompt, sigint_default):
    def slow(q: str, opts: dict) -> str:
        time.sleep(10)  # a long model call: Ctrl-C must interrupt the wait itself
        return "late"

    import signal

    main = threading.main_thread().ident
    assert main is not None
    with Sandbox(prompt, HostFunctions(llm_query=slow), SandboxLimits(cpu_seconds=20)) as sb:
        threading.Timer(0.3, signal.pthread_kill, args=(main, signal.SIGINT)).start()  # a real Ctrl-C
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            sb.run_cell("try:\n    llm_query('x')\nexcept BaseException:\n    pass\nwhile True: pass")
        assert time.monotonic() - t0 < 2.0
        assert sb.run_cell("2 + 2").display == "4"


def test_ctrl_c_reaches_a_nested_sandbox(prompt, sigint_default):
    """rlm_query may run a child sandbox on the same thread: Ctrl-C stops the innermost cell and unwinds both."""
    import _thread

    inner = Sandbox(prompt, limits=SandboxLimits(cpu_seconds=20))

    def child(q: str, opts: dict) -> str:
        return str(inner.run_cell("while True: pass").error)

    try:
        with Sandbox(prompt, HostFunctions(rlm_query=child), SandboxLimits(cpu_seconds=20)) as outer:
            threading.Timer(0.3, _thread.interrupt_main).start()
            t0 = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                outer.run_cell("rlm_query('go')")
            assert time.monotonic() - t0 < 2.0
            assert outer.run_cell("1 + 1").display == "2" and inner.run_cell("3").display == "3"
    finally:
        inner.close()


def test_sigint_ignored_by_the_parent_stays_ignored(prompt, sigint_ignored):
    """A process started with SIGINT ignored (a background job of a non-interactive shell) keeps ignoring it: the
    sandbox installs no handler of its own then, a SIGINT during a cell changes nothing, and none is left behind."""
    import os
    import signal

    def poke(q: str, opts: dict) -> str:
        os.kill(os.getpid(), signal.SIGINT)  # delivered while the guest waits in this host call
        return "still here"

    with Sandbox(prompt, HostFunctions(llm_query=poke), SandboxLimits(cpu_seconds=20)) as sb:
        sb.run_cell("keep = 1")
        r = sb.run_cell("a = llm_query('x')\nn = sum(range(10**5))\na, keep")
        assert r.error is None and r.display == "('still here', 1)" and not r.state_reset
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
