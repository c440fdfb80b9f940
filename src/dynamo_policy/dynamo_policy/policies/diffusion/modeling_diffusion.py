"""Diffusion Policy: a conditional 1-D temporal U-Net denoising action sequences (epsilon prediction).

After Diffusion Policy (Chi et al., RSS 2023), its U-Net low-dim variant with the observations
as global conditioning (real-stanford/diffusion_policy: model/diffusion/conditional_unet1d.py,
conv1d_components.py, positional_embedding.py, ema_model.py, policy/diffusion_unet_lowdim_policy.py):

* The sample is the `prediction_horizon` (16) actions from the oldest observation of the window
  on; the chunk returned is its rows context_length - 1 ... context_length - 2 + horizon, i.e. the
  `horizon` (8) actions from the newest observation on (the reference's oa_step_convention).
  Training sequences are padded at episode edges by repeating the first / last action, as the
  reference's sequence sampler pads.
* Actions (already normalised by the metadata) are scaled to [-1, 1] by their training limits
  (the reference's 'limits' normaliser; constant dimensions map to 0), which clip_sample's [-1, 1]
  assumes. Embeddings are standardised by training statistics (mean/std, as the MLP and VQ-BeT
  heads do; the reference scales its low-dimensional observations by their limits instead, which
  a single outlier frame would distort for a 512-d embedding) and joint state comes normalised by
  the metadata; the global condition is the flattened window of [embedding, state] rows.
* U-Net: a sinusoidal diffusion-step embedding -> Linear(d, 4d) -> Mish -> Linear(4d, d), joined to
  the global condition; per resolution two conditional residual blocks (Conv1d-GroupNorm-Mish
  twice, FiLM scale and bias from the condition in between, 1x1 residual projection) and a
  stride-2 conv down-sampling (none at the coarsest); two middle blocks; the mirror up path with
  skip connections and transposed-conv up-sampling; a final Conv1d block and 1x1 conv. The
  global condition's share of every FiLM layer is computed once per prediction, not once per
  denoising step (exact: see ConditionalResidualBlock1D).
* Training: DDPM noise (100 steps, squaredcos_cap_v2), timesteps uniform, MSE on the noise;
  AdamW with a cosine schedule after a linear warm-up (diffusers' get_cosine_schedule_with_warmup);
  after every optimiser step an EMA of the weights is updated with decay
  1 - (1 + step / inv_gamma) ** -power clipped to [min, max] (0 on the first steps). The EMA
  copy is the policy: it is what predict_action uses, what is saved and what is loaded.
* Data-parallel under torchrun (train_policy started by `torchrun --nproc-per-node N`): every rank
  draws the same global batch, noise and timesteps, trains on its share (every N-th window) in
  DistributedDataParallel, and weights its loss by that share, so the averaged gradient is the
  global batch's and N processes train as one with batch_size as the global batch.
* Inference: x_T ~ N(0, I) from a torch.Generator seeded by `seed` (reset() re-seeds it, so an
  episode rerun from the same observations repeats its actions), then `num_inference_steps`
  DDIM steps (schedulers.py).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dynamo_encoder.model.encoder import seeded_initialisation
from dynamo_encoder.pretraining.distributed import current_ranks
from dynamo_policy.policies.base import Episode, Policy, TrainingHistory, fit_embedding_normalization
from dynamo_policy.policies.diffusion.configuration_diffusion import DiffusionConfig
from dynamo_policy.policies.diffusion.schedulers import NoiseSchedule

LIMITS_RANGE_EPS = 1e-4     # the reference's LinearNormalizer: narrower dimensions are not scaled
VALIDATION_WINDOWS = 256    # at most this many held-out windows are sampled for the validation curve
CURVE_POINTS = 20           # points of the training curve


def action_sequences(episodes: list[Episode], start: int, length: int) -> np.ndarray:
    """Return (N, length, action_dim): per frame, `length` actions from `start` steps after it.

    Frames come in make_training_windows' order; indices outside the episode are clipped to it
    (the first / last action repeats), as the reference's sequence sampler pads.
    """
    sequences = []
    for episode in episodes:
        count = len(episode)
        index = np.clip(np.arange(count)[:, None] + start + np.arange(length)[None, :], 0, count - 1)
        sequences.append(episode.actions[index])
    return np.concatenate(sequences).astype(np.float32)


# --- the conditional 1-D U-Net -----------------------------------------------------------------
class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        frequencies = torch.exp(torch.arange(half, device=x.device) * -(math.log(10000) / (half - 1)))
        angles = x.float()[:, None] * frequencies[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int = 8):
        super().__init__(nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                         nn.GroupNorm(n_groups, out_channels), nn.Mish())


class ConditionalResidualBlock1D(nn.Module):
    """Two Conv1d blocks with FiLM (per-channel scale and bias from the condition) in between.

    The FiLM encoder is the reference's Mish -> Linear(step_dim + global_dim, 2 * channels) on the
    concatenated [step embedding, global condition]. As Mish acts elementwise, its output splits
    exactly into a step part and a global part; the global part is the same at every denoising
    step of one prediction, so ConditionalUnet1D computes it once per prediction (`condition`).
    """

    def __init__(self, in_channels: int, out_channels: int, step_dim: int, global_dim: int, kernel_size: int,
                 n_groups: int):
        super().__init__()
        self.blocks = nn.ModuleList([Conv1dBlock(in_channels, out_channels, kernel_size, n_groups),
                                     Conv1dBlock(out_channels, out_channels, kernel_size, n_groups)])
        self.out_channels, self.step_dim = out_channels, step_dim
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(step_dim + global_dim, 2 * out_channels))
        self.residual_conv = (nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels
                              else nn.Identity())

    def global_film(self, global_mish: torch.Tensor) -> torch.Tensor:
        """Return the global condition's share of the FiLM parameters (bias included), (B, 2 * channels)."""
        linear = self.cond_encoder[1]
        return F.linear(global_mish, linear.weight[:, self.step_dim:], linear.bias)

    def forward(self, x: torch.Tensor, step_mish: torch.Tensor, global_film: torch.Tensor) -> torch.Tensor:
        out = self.blocks[0](x)
        film = F.linear(step_mish, self.cond_encoder[1].weight[:, :self.step_dim]) + global_film
        film = film.view(len(film), 2, self.out_channels, 1)
        out = film[:, 0] * out + film[:, 1]
        return self.blocks[1](out) + self.residual_conv(x)


class ConditionalUnet1D(nn.Module):
    def __init__(self, input_dim: int, global_cond_dim: int, config: DiffusionConfig):
        super().__init__()
        dims = [input_dim] + [int(d) for d in config.down_dims]
        step_dim, kernel, groups = config.diffusion_step_embed_dim, config.kernel_size, config.n_groups
        self.diffusion_step_encoder = nn.Sequential(SinusoidalPosEmb(step_dim), nn.Linear(step_dim, step_dim * 4),
                                                    nn.Mish(), nn.Linear(step_dim * 4, step_dim))
        in_out = list(zip(dims[:-1], dims[1:]))

        def block(dim_in, dim_out):
            return ConditionalResidualBlock1D(dim_in, dim_out, step_dim, global_cond_dim, kernel, groups)

        self.down_modules = nn.ModuleList(
            nn.ModuleList([block(dim_in, dim_out), block(dim_out, dim_out),
                           nn.Conv1d(dim_out, dim_out, 3, 2, 1) if index < len(in_out) - 1 else nn.Identity()])
            for index, (dim_in, dim_out) in enumerate(in_out))
        self.mid_modules = nn.ModuleList([block(dims[-1], dims[-1]), block(dims[-1], dims[-1])])
        self.up_modules = nn.ModuleList(
            nn.ModuleList([block(dim_out * 2, dim_in), block(dim_in, dim_in),
                           nn.ConvTranspose1d(dim_in, dim_in, 4, 2, 1)])
            for dim_in, dim_out in reversed(in_out[1:]))
        self.final_conv = nn.Sequential(Conv1dBlock(dims[1], dims[1], kernel, groups), nn.Conv1d(dims[1], input_dim, 1))

    def _blocks(self) -> list[ConditionalResidualBlock1D]:
        return [module for module in self.modules() if isinstance(module, ConditionalResidualBlock1D)]

    def condition(self, global_cond: torch.Tensor) -> list[torch.Tensor]:
        """Return every block's global FiLM share for global conditions (B, global_dim)."""
        global_mish = F.mish(global_cond)
        return [block.global_film(global_mish) for block in self._blocks()]

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor, global_cond: torch.Tensor | None = None,
                global_films: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Predict the noise (B, T, input_dim) in `sample` (B, T, input_dim) at diffusion steps (B,).

        The condition is `global_cond` (B, global_dim) or its precomputed `condition(global_cond)`.
        """
        x = sample.transpose(1, 2)
        step_mish = F.mish(self.diffusion_step_encoder(timesteps.expand(len(sample))))
        films = iter(global_films if global_films is not None else self.condition(global_cond))
        skips = []
        for first, second, downsample in self.down_modules:
            x = first(x, step_mish, next(films))
            x = second(x, step_mish, next(films))
            skips.append(x)
            x = downsample(x)
        for module in self.mid_modules:
            x = module(x, step_mish, next(films))
        for first, second, upsample in self.up_modules:
            x = first(torch.cat([x, skips.pop()], dim=1), step_mish, next(films))
            x = upsample(second(x, step_mish, next(films)))
        return self.final_conv(x).transpose(1, 2)


class DiffusionNetwork(nn.Module):
    """The U-Net plus the observation and action scalings it was trained with (buffers)."""

    def __init__(self, embedding_dim: int, state_dim: int, action_dim: int, config: DiffusionConfig):
        super().__init__()
        self.register_buffer('embedding_mean', torch.zeros(embedding_dim))
        self.register_buffer('embedding_std', torch.ones(embedding_dim))
        self.register_buffer('action_scale', torch.ones(action_dim))    # to [-1, 1]: x * scale + offset
        self.register_buffer('action_offset', torch.zeros(action_dim))
        self.unet = ConditionalUnet1D(action_dim, config.context_length * (embedding_dim + state_dim), config)

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, embeddings: torch.Tensor,
                states: torch.Tensor | None) -> torch.Tensor:
        """Return the noise predicted in `noisy` (B, prediction_horizon, A) at `timesteps` (B,)."""
        return self.unet(noisy, timesteps, self.global_cond(embeddings, states))

    def global_cond(self, embeddings: torch.Tensor, states: torch.Tensor | None) -> torch.Tensor:
        rows = (embeddings - self.embedding_mean) / self.embedding_std
        if states is not None:
            rows = torch.cat([rows, states], dim=-1)
        return rows.flatten(1)

    def fit_action_limits(self, actions: torch.Tensor) -> None:
        """Set the scaling that maps each action dimension's training range onto [-1, 1]."""
        low, high = actions.amin(0), actions.amax(0)
        span = high - low
        narrow = span < LIMITS_RANGE_EPS
        scale = torch.where(narrow, torch.ones_like(span), 2.0 / span.clamp_min(LIMITS_RANGE_EPS))
        self.action_scale.copy_(scale)
        self.action_offset.copy_(torch.where(narrow, -low, -1.0 - scale * low))

    def to_unit(self, actions: torch.Tensor) -> torch.Tensor:
        return actions * self.action_scale + self.action_offset

    def from_unit(self, actions: torch.Tensor) -> torch.Tensor:
        return (actions - self.action_offset) / self.action_scale


class EMA:
    """Exponential moving average of a module's parameters, with Diffusion Policy's warm-up schedule."""

    def __init__(self, averaged: nn.Module, config: DiffusionConfig):
        self.averaged = averaged
        self.config = config
        self.optimization_step = 0

    def decay(self, optimization_step: int) -> float:
        step = max(0, optimization_step - 1)
        if step <= 0:
            return 0.0
        value = 1.0 - (1.0 + step / self.config.ema_inv_gamma) ** -self.config.ema_power
        return max(self.config.ema_min_decay, min(value, self.config.ema_max_decay))

    @torch.no_grad()
    def step(self, model: nn.Module) -> None:
        decay = self.decay(self.optimization_step)
        for parameter, averaged in zip(model.parameters(), self.averaged.parameters()):
            if parameter.requires_grad:
                averaged.mul_(decay).add_(parameter.detach(), alpha=1.0 - decay)
            else:
                averaged.copy_(parameter.detach())
        self.optimization_step += 1


def cosine_with_warmup(step: int, warmup_steps: int, total_steps: int) -> float:
    """Return the learning-rate factor: linear warm-up, then half a cosine from 1 to 0."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


class DiffusionPolicy(Policy):
    name = 'diffusion'
    config_class = DiffusionConfig
    data_parallel = True
    config: DiffusionConfig

    def __init__(self, config: DiffusionConfig, metadata):
        super().__init__(config, metadata)
        with seeded_initialisation(config.seed):      # the same seed builds the same initial weights
            self.network = DiffusionNetwork(metadata.embedding_dim, len(metadata.state_names), metadata.action_dim,
                                            config)
        self.network.eval()
        self.schedule = NoiseSchedule(config.num_train_timesteps, clip_sample=config.clip_sample)
        self._timesteps = self.schedule.inference_timesteps(config.num_inference_steps, config.timestep_spacing)
        self._generator = torch.Generator()
        self.reset()

    def reset(self) -> None:
        """Re-seed the sampler: an episode rerun from the same observations repeats its actions."""
        self._generator.manual_seed(self.config.seed)

    def _normalized_windows(self, episodes: list[Episode]):
        # The denoised sample is the prediction_horizon actions from the oldest observation on.
        embeddings, states, _ = super()._normalized_windows(episodes)
        sequences = action_sequences(episodes, -(self.config.context_length - 1), self.config.prediction_horizon)
        return embeddings, states, self.metadata.action_normalization.normalize(sequences)

    @torch.no_grad()
    def sample(self, embeddings: torch.Tensor, states: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        """Denoise action sequences (B, prediction_horizon, A), metadata-normalised, by DDIM."""
        network = self.network
        films = network.unet.condition(network.global_cond(embeddings, states))   # once for all steps
        x = torch.randn((len(embeddings), self.config.prediction_horizon, self.metadata.action_dim),
                        generator=generator)
        for timestep in self._timesteps:
            noise = network.unet(x, torch.tensor([timestep]), global_films=films)
            x, _ = self.schedule.ddim_step(noise, timestep, x, self.config.num_inference_steps)
        return network.from_unit(x)

    def _predict_normalized(self, embeddings, states):
        sequences = self.sample(torch.from_numpy(np.ascontiguousarray(embeddings)),
                                None if states is None else torch.from_numpy(np.ascontiguousarray(states)),
                                self._generator)
        start = self.config.context_length - 1
        return sequences[:, start:start + self.config.horizon].numpy()

    def _fit_normalized(self, train, validation, progress) -> TrainingHistory:
        if train[2].shape[1] != self.config.prediction_horizon:
            raise RuntimeError('Diffusion Policy needs prediction_horizon-long sequences '
                               '(DiffusionPolicy._normalized_windows was not used by Policy.fit)')
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            return self._fit(train, validation, progress, torch.Generator().manual_seed(self.config.seed))

    def _noise(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the noise (count, prediction_horizon, A) and the DDPM timesteps (count,) of `count` windows."""
        noise = torch.randn((count, self.config.prediction_horizon, self.metadata.action_dim), generator=generator)
        return noise, torch.randint(0, self.config.num_train_timesteps, (count,), generator=generator)

    def _noise_loss(self, model: nn.Module, embeddings, states, sequences, noise, timesteps,
                    batch_windows: int | None = None) -> torch.Tensor:
        """Return the noise MSE of these windows, as their share of a batch of `batch_windows` (default: them)."""
        x0 = self.network.to_unit(sequences)    # the scalings are buffers, the same in every copy
        predicted = model(self.schedule.add_noise(x0, noise, timesteps), timesteps, embeddings, states)
        return F.mse_loss(predicted, noise, reduction='sum') / ((batch_windows or len(noise)) * noise[0].numel())

    def _fit(self, train, validation, progress, generator) -> TrainingHistory:
        config = self.config
        ranks = current_ranks()
        embeddings, states, sequences = (None if a is None else torch.from_numpy(a) for a in train)
        flat = embeddings.flatten(0, 1)
        ema_network = self.network
        fit_embedding_normalization(ema_network, flat)
        ema_network.fit_action_limits(sequences.flatten(0, 1))
        model = copy.deepcopy(ema_network)      # trained; ema_network follows it by EMA
        model.train()
        # DDP averages the ranks' gradients: a rank's loss is its share's sum over the global
        # batch, times the number of ranks, so that average is the global batch's gradient.
        trained = DistributedDataParallel(model) if ranks.world_size > 1 else model
        ema = EMA(ema_network, config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=tuple(config.betas),
                                      eps=config.adam_eps, weight_decay=config.weight_decay)
        steps_per_epoch = math.ceil(len(embeddings) / config.batch_size)
        total_steps = config.epochs * steps_per_epoch
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_with_warmup(step, config.warmup_steps, total_steps))
        if validation is not None:
            validation = tuple(None if a is None else torch.from_numpy(a[:VALIDATION_WINDOWS]) for a in validation)
        history = TrainingHistory(x_label='epoch')
        every = max(1, config.epochs // CURVE_POINTS)
        losses = []
        for epoch in range(1, config.epochs + 1):
            order = torch.randperm(len(embeddings), generator=generator)
            for start in range(0, len(order), config.batch_size):
                batch = order[start:start + config.batch_size]
                noise, timesteps = self._noise(len(batch), generator)
                share = ranks.shard(torch.arange(len(batch)))
                windows = batch[share]
                loss = self._noise_loss(trained, embeddings[windows], None if states is None else states[windows],
                                        sequences[windows], noise[share], timesteps[share], len(batch))
                optimizer.zero_grad()
                (loss * ranks.world_size).backward()
                optimizer.step()
                scheduler.step()
                ema.step(model)
                losses.append(ranks.sum(loss.detach()).item())   # the global batch's loss
            if epoch % every == 0 or epoch == config.epochs:
                history.x.append(epoch)
                history.series.setdefault('train noise MSE', []).append(float(np.mean(losses)))
                losses = []
                if validation is not None:
                    noise_mse, action_mse = self._validation_errors(validation)
                    history.series.setdefault('validation noise MSE (EMA)', []).append(noise_mse)
                    history.series.setdefault('validation MSE (normalised)', []).append(action_mse)
            if progress:
                progress(epoch, config.epochs)
        self.network.eval()
        self.reset()
        return history

    @torch.no_grad()
    def _validation_errors(self, validation) -> tuple[float, float]:
        """Return the EMA network's noise MSE and executed-chunk MSE on held-out windows (fixed seeds)."""
        embeddings, states, sequences = validation
        noise, timesteps = self._noise(len(sequences), torch.Generator().manual_seed(self.config.seed + 1))
        noise_mse = float(self._noise_loss(self.network, embeddings, states, sequences, noise, timesteps))
        predicted = self.sample(embeddings, states, torch.Generator().manual_seed(self.config.seed + 2))
        start = self.config.context_length - 1
        executed = slice(start, start + self.config.horizon)
        return noise_mse, float(F.mse_loss(predicted[:, executed], sequences[:, executed]))

    def state_dict(self):
        return self.network.state_dict()

    def load_state_dict(self, state):
        self.network.load_state_dict(state)
        self.network.eval()
        self.reset()
