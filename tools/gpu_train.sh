#!/usr/bin/env bash
# Several `vfi train` runs side by side on one GPU (docs/TRAINING.md), for models too small to keep a
# GPU busy alone: each run gets its own batch-making worker processes on the machine's CPU cores.
# Each run is stopped by SIGINT after SECONDS (the trainer finishes its step and saves a resumable
# checkpoint), then its run directory (less tb/) is tarred and split into 15 MiB pieces
# $OUT/NAME.tar.part-aa, -ab, ... ($OUT defaults to out/gpu), so that it can be copied back from a
# remote machine with a per-file size limit. Each run logs to runs/NAME.log, copied into runs/NAME/train.log.
#   usage: tools/gpu_train.sh SECONDS 'NAME MODEL CONFIG WORKERS [vfi train options...]' ...
#   e.g.   tools/gpu_train.sh 500 'svmv-gpu svmv configs/svmv.json 7 --data runs/packs/dev_9x128.npz --data synthetic'
# Needs: this checkout with torch installed, and whatever the runs read that git does not track
# (crop packs under runs/packs/, runs/perceptual/ for PerVFI and MiVID; --resume needs runs/NAME).
# Environment: PYTHON (default python3), DEVICE (default cuda), OUT (default out/gpu).
# Rejoin the pieces: cat NAME.tar.part-* | tar -xf - -C runs
set -u
budget=$1; shift
python=${PYTHON:-python3} device=${DEVICE:-cuda}  # PYTHON=.venv/bin/python DEVICE=cpu: a dry run on the CPU
out=${OUT:-out/gpu}
mkdir -p "$out" runs
[ "$device" = cpu ] || nvidia-smi -L
"$python" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
names=()
for spec in "$@"; do
    read -r name model config workers options <<<"$spec"
    names+=("$name")
    (
        # shellcheck disable=SC2086  # options are words on purpose
        PYTHONUNBUFFERED=1 timeout -s INT "$budget" "$python" -m vfi_core train "$model" --config "$config" \
            --run-dir "runs/$name" --workers "$workers" --device "$device" --quiet $options > "runs/$name.log" 2>&1
        echo "$name: exit $? $(tail -n 1 "runs/$name.log")"
    ) &
done
wait
for name in "${names[@]}"; do
    [ -d "runs/$name" ] || continue
    cp "runs/$name.log" "runs/$name/train.log"
    tar -cf - -C runs --exclude=tb "$name" | split -b 15m - "$out/$name.tar.part-"
    echo "$name: $(tail -n 1 "runs/$name/log.csv" | cut -c1-100)"
done
