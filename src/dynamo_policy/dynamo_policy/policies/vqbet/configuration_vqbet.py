"""Configuration of the VQ-BeT policy (Lee et al., ICML 2024) on frozen-encoder embeddings.

Defaults follow the official DynaMo code's policy configuration for the simulated kitchen
(jeffacce/dynamo_ssl, eval_configs/train_sim_kitchen.yaml and the BehaviorTransformer it builds,
models/vq_behavior_transformer/bet.py), the environment the xArm kitchen bring-up mirrors:

* residual VQ action tokenizer (VQ-VAE over action chunks): latent 512, 2 residual layers of
  16 codes, encoder/decoder MLPs with hidden width 128, EMA codebook updates (decay 0.8),
  loss = L1 reconstruction + 5 x commitment, Adam lr 1e-3 / weight decay 1e-4, 300 epochs over
  the unique training chunks in batches of 2048; trained first, then frozen;
* causal GPT: 6 layers, 6 heads, width 120, output width 256, dropout 0.0 (BehaviorTransformer's
  default; the configs set none), over the window of `context_length` (10) embeddings;
* heads: the primary code (MLP 512-512-16), then the secondary code conditioned on the primary
  one as a one-hot (MLP 512-16): vq_bet_official's `sequentially_select`; DynaMo's
  BehaviorTransformer predicts both codes at once from one MLP (1024-1024-32), which
  `sequentially_select: false` gives; and a continuous offset for every (layer, code) (MLP
  1024-1024-2*16*horizon*action_dim);
* chunk: `horizon` (8, the interface's default chunk) actions per VQ token; DynaMo's kitchen
  config uses 1-action chunks (action_window_size 1), Push-T 5;
* losses: focal loss (gamma 2) on the codes weighted 5 (primary) and 0.5 (secondary), L1 offset
  loss weighted 100 (`offset_loss_multiplier` of every DynaMo config but Push-T's), taken on the
  chunk of *sampled* codes as the references do (`offset_loss_codes`: 'true' takes it on the
  ground-truth codes instead, which keeps modes apart where one observation has several; see
  modeling_vqbet);
* AdamW lr 5.5e-5, weight decay 2e-4 on the GPT's Linear weights and the offset head, 0.01
  (AdamW's default, which the references' extra parameter group inherits) on the code heads,
  betas (0.9, 0.999), batch 2048, 1000 epochs, no schedule.

These are GPU-sized training settings: on a CPU, train with a smaller `batch_size` and fewer
`epochs` (the network sizes are what the references use and stay cheap at inference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dynamo_policy.policies.base import PolicyConfig, PolicyConfigError


@dataclass
class VQBeTConfig(PolicyConfig):
    context_length: int = 10            # observations per window (DynaMo sim-kitchen window_size)
    horizon: int = 8                    # actions per chunk = the VQ-VAE's chunk (act_window_size)
    # residual VQ action tokenizer
    vq_latent_dim: int = 512            # vqvae_latent_dim
    vq_codes: int = 16                  # vqvae_n_embed: codes per residual layer
    vq_layers: int = 2                  # vqvae_groups: residual layers (primary, secondary)
    vq_hidden_dim: int = 128            # encoder/decoder MLP width
    vq_decay: float = 0.8               # EMA decay of the codebook update
    vq_commitment_weight: float = 5.0   # weight of the commitment loss against the L1 reconstruction
    vq_epochs: int = 300                # vqvae_iters: epochs over the unique training chunks
    vq_batch_size: int = 2048           # vqvae_batch_size
    vq_learning_rate: float = 1e-3
    vq_weight_decay: float = 1e-4
    # causal GPT over the observation window
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 120
    gpt_output_dim: int = 256           # GPTConfig.output_dim default, the heads' input
    dropout: float = 0.0
    sequentially_select: bool = True    # secondary code conditioned on the primary one
    # losses
    focal_gamma: float = 2.0
    primary_code_weight: float = 5.0
    secondary_code_weight: float = 0.5  # secondary_code_multiplier
    offset_loss_weight: float = 100.0   # offset_loss_multiplier
    offset_loss_codes: str = 'sampled'  # codes of the offset loss: 'sampled' (the references) or 'true'
    # inference: codes are sampled from softmax(logits / temperature) (the references sample at
    # 1.0; LeRobot's port uses 0.1); the sampler is seeded with `seed` and re-seeded by reset().
    temperature: float = 1.0
    # optimisation of the GPT and heads
    learning_rate: float = 5.5e-5
    weight_decay: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    batch_size: int = 2048
    epochs: int = 1000
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        positive = ['vq_latent_dim', 'vq_codes', 'vq_hidden_dim', 'vq_epochs', 'vq_batch_size', 'n_layer',
                    'n_head', 'n_embd', 'gpt_output_dim', 'batch_size', 'epochs']
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise PolicyConfigError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.vq_layers != 2:
            raise PolicyConfigError(f'vq_layers must be 2 (a primary and a secondary code), got {self.vq_layers}')
        if self.vq_codes < 2:
            raise PolicyConfigError(f'vq_codes must be >= 2, got {self.vq_codes}')
        if self.n_embd % self.n_head:
            raise PolicyConfigError(f'n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})')
        if not 0.0 < self.vq_decay < 1.0:
            raise PolicyConfigError(f'vq_decay must be in (0, 1), got {self.vq_decay}')
        if not 0.0 <= self.dropout < 1.0:
            raise PolicyConfigError(f'dropout must be in [0, 1), got {self.dropout}')
        if not self.temperature > 0:
            raise PolicyConfigError(f'temperature must be > 0, got {self.temperature}')
        for name in ('learning_rate', 'vq_learning_rate'):
            if not getattr(self, name) > 0:
                raise PolicyConfigError(f'{name} must be > 0, got {getattr(self, name)}')
        for name in ('weight_decay', 'vq_weight_decay', 'vq_commitment_weight', 'focal_gamma',
                     'primary_code_weight', 'secondary_code_weight', 'offset_loss_weight'):
            if getattr(self, name) < 0:
                raise PolicyConfigError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.offset_loss_codes not in ('sampled', 'true'):
            raise PolicyConfigError(f"offset_loss_codes must be 'sampled' or 'true', got {self.offset_loss_codes!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise PolicyConfigError(f'betas must be two values in [0, 1), got {self.betas}')
