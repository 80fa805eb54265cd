#!/bin/bash
# Train an 18-member family as a SLURM array job: 3 tasks of 6 members each, then one merge.
#
#   sbatch examples/slurm_train_family.sh                  # the array (tasks 0-2)
#   sbatch --dependency=afterok:<array job id> --wrap \
#     "python -m training.shards merge models/fam models/fam.shard0 models/fam.shard1 models/fam.shard2"
#
# Every task writes its own folder, so no two tasks touch one file. A task that is killed
# (preempted, out of time) resumes where it stopped when SLURM requeues it: the members it
# finished are kept and the ones in progress restart after their last finished epoch.
#SBATCH --job-name=stm-family
#SBATCH --array=0-2
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --output=logs/%x-%A_%a.out
set -euo pipefail

DATA=${DATA:-../shared/data/hsi/hsi128_dev.h5}
NAME=${NAME:-fam}
PER_TASK=6
FIRST=$((SLURM_ARRAY_TASK_ID * PER_TASK))
LAST=$((FIRST + PER_TASK - 1))

python main_training.py --data "$DATA" --name "$NAME.shard$SLURM_ARRAY_TASK_ID" \
    --width 0.25 --epochs 8 --quiet --train-members "$FIRST-$LAST"
