#!/usr/bin/env bash
# Train SVMV on a lent GPU (docs/TRAINING.md): the shipping run and the four loss ablations side by
# side, each stopped by SIGINT (a checkpoint) before the device call's limit; every run directory
# comes back as $OUT/<run>.tar.
#   usage: tools/gpu_train_svmv.sh SECONDS PACK [--resume]
set -u
budget=$1 pack=$2 resume=${3:-}
out=${OUT:-out/gpu}
mkdir -p "$out" runs
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
train() {  # name config workers
    PYTHONUNBUFFERED=1 timeout -s INT "$budget" python3 -m vfi_core train svmv --config "$2" \
        --data "$pack" --data synthetic --run-dir "runs/$1" --workers "$3" --device cuda --quiet $resume \
        > "runs/$1.log" 2>&1
    echo "$1: exit $? $(tail -n 1 "runs/$1.log")"
}
train svmv-gpu configs/svmv.json 7 &
if [ -z "$resume" ]; then
    for row in recon sv tv joint; do
        train "svmv-ablation-$row" "configs/ablation/svmv_$row.json" 2 &
    done
fi
wait
for dir in runs/svmv-gpu runs/svmv-ablation-*; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    cp "runs/$name.log" "$dir/train.log"
    tar -cf "$out/$name.tar" -C runs --exclude=tb "$name"
    echo "$name: $(tail -n 1 "$dir/log.csv" | cut -c1-120)"
done
