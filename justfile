# stepsmith: every command a user types is a recipe here. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
py := venv / "bin/python"

# List the recipes.
default:
    @just --list --unsorted

# Create .venv and install everything (idempotent; llama-cpp-python builds from source, ~6 min on 2 cores).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    # llama.cpp builds for the build machine's CPU by default (-march=native). On a virtual
    # machine whose CPU lists AMX and AVX-512, such a build died with SIGILL in its first decode;
    # pip's wheel cache can also hand a build made on one CPU to another. So llama-cpp-python is
    # built from source, never from the cache, for the portable x86-64 AVX2/FMA/F16C baseline
    # (or the plain Arm target). CMAKE_ARGS builds it otherwise and is remembered, e.g.
    # CMAKE_ARGS="-DGGML_CUDA=on" just setup for llama.cpp on the GPU.
    want="$( (cat pyproject.toml; echo "llama-cpp-python: portable build") | sha256sum | cut -d' ' -f1)"
    stamp="{{venv}}/.stepsmith-setup"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -z "${CMAKE_ARGS:-}" ]; then
        echo "setup: {{venv}} is up to date with pyproject.toml"; exit 0
    fi
    [ -x "{{py}}" ] || python3 -m venv "{{venv}}"
    "{{py}}" -m pip install --quiet --upgrade pip
    llama="$(grep -o '"llama-cpp-python[^"]*"' pyproject.toml | tr -d '"')"
    llama_stamp="{{venv}}/.stepsmith-llama"
    built="$(cat "$llama_stamp" 2>/dev/null || true)"  # "<requirement> <cmake args>"
    llama_cmake="${CMAKE_ARGS:-${built#* }}"
    llama_cmake="${llama_cmake:--DGGML_NATIVE=OFF}"
    if [ "$built" != "$llama $llama_cmake" ]; then
        echo "setup: building $llama from source ($llama_cmake; about 6 min on 2 cores)"
        CMAKE_ARGS="$llama_cmake" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "{{py}}" -m pip install \
            --progress-bar off --no-cache-dir --force-reinstall --no-deps --no-binary llama-cpp-python "$llama"
        echo "$llama $llama_cmake" > "$llama_stamp"
    fi
    echo "setup: installing stepsmith and its dependencies into {{venv}}"
    "{{py}}" -m pip install --progress-bar off -e '.[dev]'
    # The browser test drives Debian's headless Chromium; without it that one test skips.
    if ! command -v chromedriver >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "setup: installing chromium and chromium-driver (apt) for the browser test"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
        else
            echo "setup: chromium/chromedriver not found; the browser test will be skipped (apt-get install chromium chromium-driver)"
        fi
    fi
    echo "$want" > "$stamp"
    echo "setup: done"

# The main job on the embedded default: data -> train -> export -> eval -> serve (~25 min on 2 cores); reruns skip unchanged stages.
demo *args: setup
    {{py}} -m run.pipeline {{args}}

# Run the whole test suite (fast and model tiers; GPU tests skip without CUDA).
test *args: setup
    {{py}} -m pytest {{args}}

# Only the fast tier: pure logic, seconds.
test-fast *args: setup
    {{py}} -m pytest -m "not model and not gpu" {{args}}

# ruff check and ruff format --check.
lint: setup
    {{venv}}/bin/ruff check .
    {{venv}}/bin/ruff format --check .

# Format the code with ruff.
fmt: setup
    {{venv}}/bin/ruff check --fix .
    {{venv}}/bin/ruff format .

# Prepare the dataset: validate, normalize, redact, dedup, format, split; prints the card.
data *args: setup
    {{py}} -m data --config configs/data.yaml {{args}}

# Fine-tune with Unsloth: LoRA on CPU (default config), QLoRA on CUDA (--config configs/llama3.1-8b-qlora.yaml).
train *args: setup
    {{py}} -m train --config configs/smollm2-135m-cpu.yaml {{args}}

# Benchmark the trainer against plain TRL + PEFT (fp32); updates docs/benchmarks.md.
bench-train *args: setup
    {{py}} -m train.bench {{args}}

# GPU tier: Unsloth QLoRA vs plain HF + PEFT (bitsandbytes) on a random Llama-3.1-8B-shaped model; needs CUDA.
bench-train-gpu *args: setup
    {{py}} -m train.bench_gpu {{args}}

# The wheels the GPU tier needs on a machine with no network (.gpu/wheels, Python 3.12, manylinux
# x86_64, --no-deps, every package named in train/gpu_bundle.py at this .venv's versions), plus
# SmolLM2's tokenizer (outputs/base/smollm2-tokenizer). Fails over 60 MiB: the 64 MiB that travels
# less the repository. Unsloth's wheel (28 MiB, nearly all its studio/ web app) and bitsandbytes'
# (41 MiB, a library per CUDA 11.8-13.2) are repacked without what training never loads; it keeps
# bitsandbytes' CUDA 13 and CPU builds, which torch 2.11 on CUDA 13 uses. About 33 MiB in all.
gpu-bundle *args: setup
    {{py}} -m train.gpu_bundle {{args}}

# The GPU tier in one run (< 8 min): install the bundle, imports, pytest -m gpu, bench_gpu; results in
# $OUT (else outputs/gpu-check). On the GPU machine, with .gpu/wheels and outputs/base/smollm2-tokenizer
# copied along with the repository: python3 -m train.gpu_check. Here, without CUDA: just gpu-check --dry-run.
gpu-check *args: setup
    {{py}} -m train.gpu_check {{args}}

# Merge, convert to GGUF, quantize and verify, offline (default: outputs/smollm2-135m-cpu).
export *args: setup
    {{py}} -m export {{args}}

# Generate one procedure from the command line, e.g. just run "reset my password" --app Shopify --platform ios
run *args: setup
    {{py}} -m run {{args}}

# Serve the HTTP API and the Gradio demo on one app.
serve *args: setup
    {{py}} -m run.serve {{args}}

# Evaluate the default run on the test split against base zero-shot, the template and gold.
eval *args: setup
    {{py}} -m eval {{args}}

# Training runs side by side on the validation split, or one run's learning curve; docs/benchmarks.md.
# e.g. just bench-sweep --runs sweep-a,sweep-b   or   just bench-sweep --curve smollm2-135m-cpu
bench-sweep *args: setup
    {{py}} -m eval.sweep {{args}}

# Forgetting: do the base and the default run still answer plain questions? docs/benchmarks.md.
bench-forgetting *args: setup
    {{py}} -m eval.forgetting {{args}}

# Hostile input: 1,000+ generated requests of 14 kinds through the real server and engine, 16 clients; docs/benchmarks.md.
bench-adversarial *args: setup
    {{py}} -m run.bench_adversarial {{args}}

# Every benchmark in turn (trainer, export, serving, eval table); each writes its figures to docs/benchmarks.md.
bench: bench-train bench-export bench-serve bench-eval

# GGUF conversion and quantization times, sizes, and llama.cpp vs transformers decoding (needs `just export` first).
bench-export *args: setup
    {{py}} -m export.bench --run outputs/smollm2-135m-cpu {{args}}

# Serving: grammar overhead, end-to-end latency, API throughput under a bounded load on 127.0.0.1.
bench-serve *args: setup
    {{py}} -m run.bench {{args}}

# The headline eval table of the last `just demo` (outputs/eval/smollm2-135m-cpu) into docs/benchmarks.md.
bench-eval *args: setup
    {{py}} -m eval.bench {{args}}
