"""DDPM training noise and DDIM sampling, as Diffusion Policy configures diffusers' schedulers.

Written from the published formulas (diffusers is not a dependency):

* Beta schedule `squaredcos_cap_v2` (Nichol & Dhariwal 2021, "improved DDPM"): with
  alpha_bar(s) = cos((s + 0.008) / 1.008 * pi / 2) ** 2, beta_i = min(1 - alpha_bar((i + 1) / T) /
  alpha_bar(i / T), 0.999) for i = 0..T-1, so alphas_cumprod[i] = prod_{j <= i} (1 - beta_j) =
  alpha_bar((i + 1) / T) / alpha_bar(0) wherever the cap is not reached (only the last step's beta is
  capped for T = 100).
* Forward process (DDPM, Ho et al. 2020): x_t = sqrt(alphas_cumprod[t]) x_0 + sqrt(1 - alphas_cumprod[t]) eps.
* DDIM step with eta = 0 (Song et al. 2021, eq. 12), for an epsilon-predicting model:
  x0_hat = (x_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t), optionally clipped to [-1, 1] (Diffusion
  Policy's clip_sample: True); x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev) eps_hat, with
  a = alphas_cumprod, prev = t - T // n, and a_prev = 1 past the first step (set_alpha_to_one).
  The direction term uses the model's epsilon, not one re-derived from the clipped x0_hat
  (diffusers' use_clipped_model_output=False).
* Inference timesteps for n steps out of T: 'leading' (diffusers' default, the one Diffusion Policy
  and LeRobot get): t = (0, 1, ..., n-1) * (T // n) in decreasing order, e.g. 90, 80, ..., 0;
  'trailing': t = round(T, T - T/n, ..., T/n) - 1, e.g. 99, 89, ..., 9.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MAX_BETA = 0.999
TIMESTEP_SPACINGS = ('leading', 'trailing')


def alpha_bar(s: float) -> float:
    """Return the squaredcos_cap_v2 cumulative signal level at normalised time s in [0, 1]."""
    return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2


def squaredcos_cap_v2_betas(num_train_timesteps: int) -> np.ndarray:
    """Return the betas (float64, T) of the squaredcos_cap_v2 schedule, capped at 0.999."""
    steps = num_train_timesteps
    return np.array([min(1.0 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), MAX_BETA) for i in range(steps)])


class NoiseSchedule:
    """The DDPM forward process (training noise) and DDIM sampling steps over one beta schedule."""

    def __init__(self, num_train_timesteps: int = 100, clip_sample: bool = True, clip_sample_range: float = 1.0):
        self.num_train_timesteps = int(num_train_timesteps)
        self.betas = squaredcos_cap_v2_betas(self.num_train_timesteps)
        alphas_cumprod = np.cumprod(1.0 - self.betas)
        self.alphas_cumprod = torch.from_numpy(alphas_cumprod).to(torch.float32)
        self._sqrt_signal = torch.from_numpy(np.sqrt(alphas_cumprod)).to(torch.float32)
        self._sqrt_noise = torch.from_numpy(np.sqrt(1.0 - alphas_cumprod)).to(torch.float32)
        self.clip_sample = bool(clip_sample)
        self.clip_sample_range = float(clip_sample_range)
        self.final_alpha_cumprod = 1.0    # set_alpha_to_one: the last DDIM step lands on x0_hat

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Sample x_t of the forward process for clean x0 (B, ...), noise like x0 and timesteps (B,)."""
        shape = (-1,) + (1,) * (x0.dim() - 1)
        return self._sqrt_signal[timesteps].view(shape) * x0 + self._sqrt_noise[timesteps].view(shape) * noise

    def inference_timesteps(self, num_inference_steps: int, spacing: str = 'leading') -> list[int]:
        """Return the DDIM timesteps, in the order they are visited (decreasing)."""
        steps, total = int(num_inference_steps), self.num_train_timesteps
        if not 1 <= steps <= total:
            raise ValueError(f'num_inference_steps must be in [1, {total}], got {steps}')
        if spacing == 'leading':
            timesteps = (np.arange(steps) * (total // steps)).round()[::-1]
        elif spacing == 'trailing':
            timesteps = np.round(np.arange(total, 0, -total / steps)) - 1
        else:
            raise ValueError(f'timestep spacing must be one of {TIMESTEP_SPACINGS}, got {spacing!r}')
        return [int(t) for t in timesteps]

    def ddim_step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor,
                  num_inference_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x_prev, x0_hat) of one deterministic (eta = 0) DDIM step from x_t = `sample`."""
        previous = timestep - self.num_train_timesteps // num_inference_steps
        alpha = float(self.alphas_cumprod[timestep])
        alpha_previous = float(self.alphas_cumprod[previous]) if previous >= 0 else self.final_alpha_cumprod
        x0 = (sample - math.sqrt(1.0 - alpha) * model_output) / math.sqrt(alpha)
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_sample_range, self.clip_sample_range)
        return math.sqrt(alpha_previous) * x0 + math.sqrt(1.0 - alpha_previous) * model_output, x0
