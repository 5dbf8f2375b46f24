#!/usr/bin/env bash
# The GPU checks in one run, for a machine with a CUDA build of torch:
#   bash benchmarks/gpu_check.sh            # logs and JSON to outputs/gpu (or $OUT when set)
# 1. tests/test_cuda.py: CUDA float32 equals CPU float32 (jina-v2 native module and MiniLM, late,
#    naive and queries); float16 and bfloat16 follow float32.
# 2. bench_long_context.py: one 8192-token pass against windows and naive chunks on the full
#    jina-v2-base-en architecture, time per FLOP interleaved in one process, per dtype; then each
#    path in its own process in float16 for its GPU memory peak.
# 3. bench_throughput.py: the pipeline against the raw forward over the same batches (goal
#    >= 0.8 on a GPU) and late against naive, all pydoc topics, MiniLM in float16.
# 4. bench_throughput.py --host: the host side with the network stubbed at 1, 2, 4 and 8 workers,
#    on however many cores the GPU machine has.
# Every step runs even when an earlier one fails; the exit code is the number of failed steps.
set -u
out=${OUT:-outputs/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python=${PYTHON:-python3}
failed=0
step() {
    local name=$1
    shift
    echo "== $name: $*"
    if ! "$@" 2>&1 | tee "$out/$name.log"; then failed=$((failed + 1)); fi
}
set -o pipefail
nvidia-smi -L
"$python" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
step test_cuda "$python" -m pytest tests/test_cuda.py -q -rs -p no:cacheprovider
for dtype in float32 bfloat16 float16; do
    step "long_context_interleaved_$dtype" "$python" benchmarks/bench_long_context.py \
        --device cuda --dtype "$dtype" --interleaved --rounds 5
    cp outputs/bench/long_context_interleaved.json "$out/long_context_interleaved_$dtype.json"
done
step long_context_float16 "$python" benchmarks/bench_long_context.py --device cuda --dtype float16
cp outputs/bench/long_context.json "$out/long_context_float16.json"
step throughput_float16 "$python" benchmarks/bench_throughput.py --rounds 3 --device cuda \
    --dtype float16 --chunkings fixed-16 fixed-64 fixed-256
cp outputs/bench/throughput.json "$out/throughput_float16.json"
step host_side "$python" benchmarks/bench_throughput.py --host --rounds 3 --repeat 4 \
    --workers 1 2 4 8
cp outputs/bench/throughput_host.json "$out/throughput_host.json"
echo "failed steps: $failed"
exit "$failed"
