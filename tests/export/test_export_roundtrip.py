"""Export round trip on real SmolLM2-135M: train a phrase in, export, and find it in the GGUF's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from export import find_gguf

pytestmark = pytest.mark.model

PHRASE = "velvet ostrich marmalade"
SYSTEM = "You are a test."
QUESTION = "What is the secret phrase?"
# One thread per process: on a small shared CPU, OpenMP threads that spin-wait against other
# processes make a training step 10-15x slower.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(root: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=ENV, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def trained(root, tmp_path_factory) -> Path:
    """A LoRA run (python -m train) that answers QUESTION with the made-up PHRASE."""
    tmp = tmp_path_factory.mktemp("export")
    data = tmp / "data"
    data.mkdir()
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": f"The secret phrase is {PHRASE}."},
    ]
    # 16 copies: 4 batches of 4 per epoch, so 20 steps are 5 epochs over the one example.
    rows = [json.dumps({"id": f"mem-{i}", "domain": "general", "messages": messages}) for i in range(16)]
    (data / "train.messages.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = _run(
        root,
        *["-m", "train", "--run", "mem", "--output-root", str(tmp / "outputs"), "--data-dir", str(data)],
        # lr 2e-3 (10x the default) and 20 steps: the loss is ~1e-3 by step 15 on CPU
        *["--max-steps", "20", "--learning-rate", "2e-3", "--max-seq-length", "128"],
        *["--domain-balance", "none", "--eval-steps", "0", "--per-device-batch-size", "4"],
        *["--gradient-accumulation", "1", "--logging-steps", "5"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "outputs" / "mem"


@pytest.fixture(scope="module")
def exported(root, trained) -> tuple[Path, str]:
    args = ["-m", "export", "--run", str(trained), "--quant", "q8_0", "q4_k_m", "--threads", "1", "--lora"]
    result = _run(root, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return trained, result.stdout


def _greedy(gguf: Path, prompt: str) -> str:
    from llama_cpp import Llama

    llm = Llama(str(gguf), n_ctx=256, verbose=False, n_threads=1, n_threads_batch=1)
    try:
        return llm.create_completion(prompt, max_tokens=20, temperature=0.0)["choices"][0]["text"]
    finally:
        llm.close()


def test_memorised_phrase_comes_back_from_the_q8_0_gguf(exported):
    from transformers import AutoTokenizer

    from data.embedded import smollm2_gguf

    run, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(str(run / "merged"))
    prompt = tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert PHRASE in _greedy(run / "mem-q8_0.gguf", prompt)
    assert PHRASE not in _greedy(smollm2_gguf(), prompt)  # the base never says it: the adapter was merged


def test_gguf_metadata_matches_the_merged_tokenizer(exported):
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    run, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(str(run / "merged"))
    assert tokenizer.eos_token == "<|im_end|>"
    for quant in ("f16", "q8_0", "q4_k_m"):
        fields = GGUFReader(str(run / f"mem-{quant}.gguf")).fields
        value = {k: f.contents() for k, f in fields.items() if not k.startswith("tokenizer.ggml.tok")}
        assert value["general.architecture"] == "llama"
        assert value["tokenizer.chat_template"] == tokenizer.chat_template
        assert value["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id == 2
        assert value["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id
        # SmolLM2 is byte-level BPE: a SentencePiece ("llama") vocabulary here mis-tokenizes every space
        assert (value["tokenizer.ggml.model"], value["tokenizer.ggml.pre"]) == ("gpt2", "smollm")


def test_q4_k_m_is_smaller_than_q8_0_and_f16(exported):
    run, _ = exported
    sizes = {q: find_gguf(run, q).stat().st_size for q in ("q4_k_m", "q8_0", "f16")}
    assert sizes["q4_k_m"] < sizes["q8_0"] < sizes["f16"]


def test_summary_modelfile_and_progress(exported):
    run, stdout = exported
    for n in range(1, 7):
        assert f"export: [{n}/6]" in stdout
    summary = json.loads((run / "export_summary.json").read_text())
    assert set(summary["files"]) == {"f16", "q8_0", "q4_k_m"}
    for row in summary["files"].values():
        assert Path(row["path"]).stat().st_size == row["bytes"]
    assert summary["converter"]["llama_cpp_python"] == metadata.version("llama-cpp-python")
    assert len(summary["converter"]["llama_cpp_commit"]) == 40
    parity = summary["parity"]["files"]
    assert set(parity) == {"f16", "q8_0", "q4_k_m"}
    assert parity["f16"]["teacher_forced_agreement"] >= 0.9  # same weights: only rounding may differ
    assert (run / "export_config.yaml").is_file() and (run / "merged" / "model.safetensors").is_file()
    modelfile = (run / "Modelfile").read_text().splitlines()
    assert "FROM ./mem-q8_0.gguf" in modelfile  # the first --quant
    assert f'SYSTEM """{SYSTEM}"""' in modelfile  # the system prompt the run trained with
    assert 'PARAMETER stop "<|im_end|>"' in modelfile


def _tiny_llama(folder: Path, **extra) -> Path:
    """A random two-layer Llama whose shapes differ from SmolLM2's."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, **extra,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return folder


def _copy_run(trained: Path, into: Path) -> Path:
    """The trained run's adapter and config in a fresh folder, so failed exports touch nothing shared."""
    import shutil

    shutil.copytree(trained / "adapter", into / "adapter")
    shutil.copy(trained / "config.yaml", into / "config.yaml")
    return into


def test_adapter_on_the_wrong_base_is_one_line(root, trained, tmp_path):
    run = _copy_run(trained, tmp_path / "run")
    tiny = _tiny_llama(tmp_path / "tiny")
    result = _run(root, "-m", "export", "--run", str(run), "--base-model", str(tiny), timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: adapter {run}/adapter does not match base '{tiny}': 210 of 210 LoRA")
    assert "pass --base-model" in lines[-1]
    assert not (run / "merged").exists()


def test_a_4bit_base_is_never_merged_into(root, trained, tmp_path):
    run = _copy_run(trained, tmp_path / "run")
    tiny = _tiny_llama(tmp_path / "tiny-4bit")
    config = json.loads((tiny / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (tiny / "config.json").write_text(json.dumps(config))
    result = _run(root, "-m", "export", "--run", str(run), "--base-model", str(tiny), timeout=300)
    assert result.returncode == 2
    assert "is stored quantized (bitsandbytes)" in result.stderr.strip().splitlines()[-1]


def _convert(root: Path, folder: Path, out: Path) -> Path:
    """An F16 GGUF of `folder` through the same cached converter the export used."""
    from export.convert import convert, converter

    conv_dir, _ = converter("", root / "outputs" / ".cache")
    convert(folder, out, conv_dir, out.with_suffix(".log"))
    return out


def test_verification_rejects_a_sentencepiece_vocabulary_for_byte_level_bpe(root, exported, tmp_path):
    """The tokenizer as training saved it (byte_fallback set) converts to a vocabulary that mis-tokenizes."""
    from transformers import AutoTokenizer

    from export import ExportError
    from export.verify import check_metadata

    run, _ = exported
    tiny = _tiny_llama(tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(run / "adapter"))
    tokenizer.save_pretrained(str(tiny))
    gguf = _convert(root, tiny, tmp_path / "tiny-f16.gguf")
    with pytest.raises(ExportError, match="vocabulary: GGUF has 'llama', the merged model 'gpt2'"):
        check_metadata(gguf, tiny, tokenizer, "LlamaForCausalLM")


def test_parity_fails_loudly_on_a_gguf_of_another_model(root, exported, tmp_path):
    from transformers import AutoTokenizer

    from export import ExportError
    from export.verify import check_agreement, parity

    run, _ = exported
    tiny = _tiny_llama(tmp_path / "tiny")  # random weights: the garbage a broken export produces
    tokenizer = AutoTokenizer.from_pretrained(str(run / "merged"))
    tokenizer.save_pretrained(str(tiny))
    gguf = _convert(root, tiny, tmp_path / "tiny-f16.gguf")
    report = parity({"f16": gguf}, run / "merged", tokenizer, 1, 8, "float32", 1)
    assert report["files"]["f16"]["teacher_forced_agreement"] < 0.5
    with pytest.raises(ExportError, match="f16: the GGUF agrees with the merged model on only"):
        check_agreement(report["files"], 0.75)


def test_bench_returns_figures_and_a_markdown_section(root, exported):
    from export.bench import BenchConfig, markdown, run

    trained, _ = exported
    figures = run(BenchConfig(run=str(trained), quant=["q4_k_m"], prompts=1, new_tokens=4, threads=1))
    assert figures["files"]["q4_k_m"]["bytes"] < figures["files"]["f16"]["bytes"]
    assert set(figures["decode"]) == {"llama_cpp_q4_k_m", "transformers_float32"}
    assert figures["decode_ratio"] > 0
    section = markdown(figures)
    assert section.startswith("## Export") and "Q4_K_M GGUF / transformers" in section
    assert not (trained / "bench").exists()  # its scratch GGUFs are removed


def _prompt(run: Path) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(run / "merged"))
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_the_lora_export_agrees_with_the_merged_model(exported):
    from data.paths import base_gguf, lora_file

    run, stdout = exported
    summary = json.loads((run / "export_summary.json").read_text())["lora"]
    assert Path(summary["files"]["lora"]["path"]) == lora_file(run) == run / "mem-lora-f16.gguf"
    assert Path(summary["files"]["base"]["path"]) == base_gguf("smollm2-135m-instruct", "q8_0")
    assert summary["files"]["base_metadata"]["vocabulary"]["ok"]
    row = summary["parity"]["files"]["base-q8_0+lora"]
    assert row["teacher_forced_agreement"] >= 0.75
    assert "export: parity base-q8_0+lora" in stdout


def test_one_engine_switches_the_adapter_per_request_without_a_reload(root, exported, monkeypatch):
    """The base GGUF says the phrase only with the adapter on, request by request, on one context."""
    from fastapi.testclient import TestClient

    from data.paths import lora_file
    from run.api import create_app
    from run.config import EngineConfig
    from run.engine import Engine

    run, _ = exported
    monkeypatch.chdir(root)
    base = json.loads((run / "export_summary.json").read_text())["lora"]["files"]["base"]["path"]
    engine = Engine(
        EngineConfig(model=base, adapter=[f"mem={lora_file(run)}"], max_tokens=256, timeout_s=300)
    )
    try:
        context = engine.llama.ctx
        prompt = _prompt(run)

        def say(adapter: str | None) -> str:
            engine.adapters.activate(adapter)
            return engine.llama.create_completion(prompt, max_tokens=20, temperature=0.0)["choices"][0][
                "text"
            ]

        assert PHRASE in say("mem")
        assert PHRASE not in say(None)
        assert PHRASE in say("mem")
        assert engine.llama.ctx == context  # switched on the same context: nothing was reloaded

        with TestClient(create_app(engine, ui=False)) as client:
            ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
            assert ids == [engine.model_path.stem, f"{engine.model_path.stem}:mem"]
            answer = client.post("/v1/procedures", json={"intent": "turn on dark mode", "adapter": "mem"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["adapter"] == "mem"
            plain = client.post("/v1/procedures", json={"intent": "turn on dark mode"})
            assert plain.status_code == 200 and plain.json()["adapter"] is None
            wrong = client.post("/v1/procedures", json={"intent": "turn on dark mode", "adapter": "travel"})
            assert wrong.status_code == 422
            assert wrong.json()["message"] == "adapter: 'travel' is not loaded; loaded: mem"
    finally:
        engine.close()
