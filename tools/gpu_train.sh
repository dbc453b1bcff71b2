#!/usr/bin/env bash
# Several training runs side by side on one lent GPU (docs/TRAINING.md), each stopped by SIGINT
# (the trainer saves a checkpoint) after SECONDS; each run directory comes back under $OUT as
# NAME.tar.part-aa, -ab... (15 MiB pieces: the device returns files of at most 16 MiB).
#   usage: tools/gpu_train.sh SECONDS 'NAME MODEL CONFIG WORKERS [vfi train options...]' ...
#   e.g.   tools/gpu_train.sh 500 'svmv-gpu svmv configs/svmv.json 7 --data runs/packs/dev_9x128.npz --data synthetic'
# Rejoin here: cat NAME.tar.part-* | tar -xf - -C runs
set -u
budget=$1; shift
python=${PYTHON:-python3} device=${DEVICE:-cuda}  # PYTHON=.venv/bin/python DEVICE=cpu: a local dry run
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
