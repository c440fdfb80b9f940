"""Configuration of Diffusion Policy (Chi et al., RSS 2023) with low-dimensional conditioning.

Defaults follow the reference's U-Net low-dim configuration (real-stanford/diffusion_policy,
config/train_diffusion_unet_lowdim_workspace.yaml with obs_as_global_cond: True):

* observation horizon 2 (`context_length`), prediction horizon 16, 8 actions executed per chunk
  (`horizon`, what predict_action returns: the predicted rows from the newest observation on);
* conditional 1-D temporal U-Net: down_dims (256, 512, 1024), kernel 5, GroupNorm groups 8,
  diffusion-step embedding 256, FiLM with per-channel scale and bias (cond_predict_scale), global
  conditioning on the flattened observation window;
* epsilon prediction, DDPM training noise with 100 steps and the squaredcos_cap_v2 beta schedule,
  predicted x0 clipped to [-1, 1] (actions are scaled to [-1, 1] by their training limits);
* inference with DDIM (eta 0), `num_inference_steps` (10) out of the 100, 'leading' spacing;
* EMA of the weights (power 0.75, inv_gamma 1, max decay 0.9999), the EMA copy is saved and deployed;
* AdamW lr 1e-4, betas (0.95, 0.999), weight decay 1e-6; cosine schedule with 500 warm-up steps;
  batch 256, 5000 epochs (GPU-sized, as in the reference).

CPU_SMALL_PRESET is a documented smaller U-Net (a quarter of the channels) for CPU training and
inference: `train_policy --policy diffusion --set down_dims=[64,128,256] --set
diffusion_step_embed_dim=64`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dynamo_policy.policies.base import PolicyConfig, PolicyConfigError
from dynamo_policy.policies.diffusion.schedulers import TIMESTEP_SPACINGS

# A smaller U-Net for CPUs: about 1/16 of the full one's multiply-adds per denoising step.
CPU_SMALL_PRESET = {'down_dims': [64, 128, 256], 'diffusion_step_embed_dim': 64}


@dataclass
class DiffusionConfig(PolicyConfig):
    context_length: int = 2              # n_obs_steps
    horizon: int = 8                     # n_action_steps: the chunk predict_action returns
    prediction_horizon: int = 16         # the reference's `horizon`: actions denoised per sample
    # conditional U-Net
    down_dims: list[int] = field(default_factory=lambda: [256, 512, 1024])
    kernel_size: int = 5
    n_groups: int = 8
    diffusion_step_embed_dim: int = 256
    # diffusion
    num_train_timesteps: int = 100
    num_inference_steps: int = 10        # DDIM steps at inference
    timestep_spacing: str = 'leading'    # 'leading' (diffusers' default) or 'trailing'
    clip_sample: bool = True
    # EMA of the weights (the saved and deployed copy)
    ema_power: float = 0.75
    ema_inv_gamma: float = 1.0
    ema_min_decay: float = 0.0
    ema_max_decay: float = 0.9999
    # optimisation
    learning_rate: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.95, 0.999])
    adam_eps: float = 1e-8
    weight_decay: float = 1e-6
    warmup_steps: int = 500
    batch_size: int = 256
    epochs: int = 5000
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        for name in ('prediction_horizon', 'kernel_size', 'n_groups', 'diffusion_step_embed_dim',
                     'num_train_timesteps', 'num_inference_steps', 'batch_size', 'epochs'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PolicyConfigError(f'{name} must be a positive integer, got {value!r}')
        if self.context_length - 1 + self.horizon > self.prediction_horizon:
            raise PolicyConfigError(
                f'prediction_horizon ({self.prediction_horizon}) must cover context_length - 1 + horizon '
                f'({self.context_length - 1 + self.horizon}): the executed actions start at the newest observation')
        if not self.down_dims or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 or d % self.n_groups
                                     for d in self.down_dims):
            raise PolicyConfigError(f'down_dims must be positive multiples of n_groups ({self.n_groups}), '
                                    f'got {self.down_dims}')
        levels = 2 ** (len(self.down_dims) - 1)
        if self.prediction_horizon % levels:
            raise PolicyConfigError(f'prediction_horizon ({self.prediction_horizon}) must be a multiple of '
                                    f'{levels} (the U-Net halves it {len(self.down_dims) - 1} times)')
        if self.kernel_size % 2 == 0:
            raise PolicyConfigError(f'kernel_size must be odd, got {self.kernel_size}')
        if self.diffusion_step_embed_dim % 2:
            raise PolicyConfigError(f'diffusion_step_embed_dim must be even, got {self.diffusion_step_embed_dim}')
        if self.num_inference_steps > self.num_train_timesteps:
            raise PolicyConfigError(f'num_inference_steps ({self.num_inference_steps}) must be <= '
                                    f'num_train_timesteps ({self.num_train_timesteps})')
        if self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise PolicyConfigError(f'timestep_spacing must be one of {list(TIMESTEP_SPACINGS)}, '
                                    f'got {self.timestep_spacing!r}')
        if not 0.0 <= self.ema_min_decay <= self.ema_max_decay < 1.0:
            raise PolicyConfigError(f'need 0 <= ema_min_decay <= ema_max_decay < 1, got '
                                    f'{self.ema_min_decay}, {self.ema_max_decay}')
        if not self.ema_power > 0 or not self.ema_inv_gamma > 0:
            raise PolicyConfigError(f'ema_power and ema_inv_gamma must be > 0, got {self.ema_power}, '
                                    f'{self.ema_inv_gamma}')
        if not self.learning_rate > 0 or not self.adam_eps > 0:
            raise PolicyConfigError(f'learning_rate and adam_eps must be > 0, got {self.learning_rate}, '
                                    f'{self.adam_eps}')
        if self.weight_decay < 0 or self.warmup_steps < 0:
            raise PolicyConfigError(f'weight_decay and warmup_steps must be >= 0, got {self.weight_decay}, '
                                    f'{self.warmup_steps}')
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise PolicyConfigError(f'betas must be two values in [0, 1), got {self.betas}')
