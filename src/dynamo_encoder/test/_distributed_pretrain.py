"""Run by test_pretrain_distributed under torchrun (or alone): train, then save this rank's objective weights.

  python _distributed_pretrain.py DATASET CONFIG_YAML RUN_DIR

The weights go to RUN_DIR/replica<rank>.pt, so the test can compare the replicas of every rank.
"""

import sys
from pathlib import Path

import torch

from dynamo_encoder.pretraining.config import load_config
from dynamo_encoder.pretraining.distributed import init_from_environment, leave_group
from dynamo_encoder.pretraining.trainer import Pretrainer


def main(dataset: str, config_path: str, output: str) -> None:
    torch.set_num_threads(1)
    config = load_config(config_path)
    ranks = init_from_environment(config.train.device)
    torch.manual_seed(config.train.seed)
    trainer = Pretrainer(config, dataset, output, progress=False)
    trainer.run()
    torch.save(trainer.objective.state_dict(), Path(output) / f'replica{ranks.rank}.pt')
    leave_group()


if __name__ == '__main__':
    main(*sys.argv[1:])
