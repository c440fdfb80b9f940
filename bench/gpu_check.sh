#!/usr/bin/env bash
# GPU check: on a CUDA machine, within 8 minutes, one table of what the GPU gives us:
#   pretraining frames/s at 224 px (resnet18, window 5): fp32 NCHW (the official trainer's form),
#   channels_last, compiled, bf16 autocast; data-parallel on every GPU of the machine (torchrun);
#   the encoder's forward latency on the GPU (EncoderArtifact.encode, one 640x480 frame);
#   encoder_node end to end with the forward on the GPU (bench/encoder_latency.py --device cuda).
# Each step has its own time limit; a step that fails or runs over says so and the rest go on.
# Without CUDA it says so and exits 0: nothing is measured, nothing is pretended.
#
#   bash bench/gpu_check.sh            (from anywhere; the repository's venv is used)
set -u
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source scripts/env.sh

if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: torch $(python -c 'import torch; print(torch.__version__)' 2>/dev/null) sees no CUDA device:" \
       'nothing measured (run it on a machine with an NVIDIA GPU)'
  exit 0
fi

GPUS=$(python -c 'import torch; print(torch.cuda.device_count())')
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT
BATCH=64

step() {   # step NAME SECONDS COMMAND...: run with a time limit, output to the screen and $LOG/NAME
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$LOG/$name"
  local status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then
    echo "gpu_check: $name failed or ran over its limit (exit $status)" | tee -a "$LOG/$name"
  fi
}

step pretrain 240 python bench/pretrain_throughput.py --device cuda --size 224 --batch $BATCH --window 5 \
  --steps 10 --warmup 3 --forms baseline channels_last compiled bf16
step ddp 100 torchrun --standalone --nproc-per-node "$GPUS" bench/pretrain_throughput.py --device cuda \
  --size 224 --batch $((BATCH * GPUS)) --window 5 --steps 10 --warmup 3 --forms channels_last bf16
step forward 40 python - <<'EOF'
import statistics, time
import numpy as np
from dynamo_encoder.artifact import EncoderArtifact
encoder = EncoderArtifact.random_init('resnet18', ['front'], (224, 224), seed=0)
encoder = EncoderArtifact(encoder.module.cuda(), encoder.camera_names, encoder.name)
images = {'front': np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)}
times = []
for repeat in range(60):
    start = time.perf_counter()
    encoder.encode(images)   # returns numpy: the GPU work is done when it returns
    if repeat >= 10:
        times.append(time.perf_counter() - start)
print(f'forward resnet18 224 px, 640x480 uint8 frame in, embedding out, on {encoder.device}: '
      f'p50 {statistics.median(times) * 1e3:.2f} ms, max {max(times) * 1e3:.2f} ms')
EOF
# bench/encoder_latency.py selects the node's device with --device; its reference forward pass
# (the ratio it prints) runs in its own process on the CPU unless that script says otherwise.
step node 150 python bench/encoder_latency.py --device cuda --seconds 20 --floor-seconds 10 --plot "$LOG/node.png"

echo
echo "== gpu_check summary: $(python -c 'import torch; print(torch.cuda.get_device_name())') x $GPUS, torch" \
     "$(python -c 'import torch; print(torch.__version__)')"
printf '%-34s %s\n' 'what' 'result'
awk '/^(baseline|channels_last|compiled|bf16) / {printf "%-34s %s frames/s (%s vs baseline)\n", "pretrain 224 px, 1 GPU, " $1, $2, $3}' \
  "$LOG/pretrain"
awk -v gpus="$GPUS" '/^(channels_last|bf16) / {printf "%-34s %s frames/s\n", "pretrain 224 px, DDP " gpus " GPUs, " $1, $2}' "$LOG/ddp"
grep -h '^forward' "$LOG/forward" | sed 's/^/encoder /'
grep -h -i 'p50' "$LOG/node" | sed 's/^/encoder_node end to end: /'
grep -h '^gpu_check:' "$LOG"/* || true
exit 0
