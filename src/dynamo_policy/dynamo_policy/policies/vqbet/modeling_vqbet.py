"""VQ-BeT policy: a residual-VQ action tokenizer, then a causal GPT predicting codes and offsets.

After VQ-BeT (Lee et al., "Behavior Generation with Latent Actions", ICML 2024) as the official
DynaMo code trains it on frozen embeddings (jeffacce/dynamo_ssl, models/vq_behavior_transformer;
the residual VQ follows jayLEE0301/vq_bet_official's vector_quantize_pytorch settings):

1. Action tokenizer. Every training action chunk (horizon x action_dim, normalised) is encoded
   by an MLP to a 512-d latent, quantised by a 2-layer residual VQ (16 codes per layer, nearest
   code by Euclidean distance, straight-through gradient) and decoded by an MLP; loss = L1
   reconstruction + 5 x the commitment MSE of each layer. Codebooks are not learned by gradient
   but by the reference's EMA rule: per code, cluster_size <- decay * cluster_size + (1 - decay)
   * count and embed_sum <- decay * embed_sum + (1 - decay) * sum of its inputs, code =
   embed_sum / Laplace-smoothed cluster_size (eps 1e-5), with decay 0.8 and codes initialised
   Kaiming-uniform. Trained on the unique chunks first, then frozen.
2. Policy. A causal GPT (pre-LayerNorm nanoGPT) reads the window of standardised embeddings
   (plus normalised joint state when proprioception is used); at every window position its
   output feeds a head for the primary code, a head for the secondary code given the primary
   one (one-hot), and a head giving a continuous offset for every (layer, code). A chunk is the
   VQ-VAE decoding of the two codes plus the two codes' offsets. Training targets every window
   position with the chunk that starts at its frame; losses: focal loss (gamma 2) on the true
   codes (secondary head teacher-forced with the true primary code) weighted 5 and 0.5, plus
   100 x the L1 error of the chunk built from codes sampled at temperature 1, as the references
   compute it (`offset_loss_codes='sampled'`, the default). Trade-off measured on the toy sets of
   test_policy_vqbet.py when this module was written: with sampled codes the offsets also learn to
   correct code-prediction errors (held-out chunk MAE 0.05 vs 0.12 with true codes on the smooth
   task; 0.04 vs 0.05 when sampling at temperature 0.1), but where one observation has two modes
   (actions +1 or -1) the code head rightly stays at 50/50 and each code's offset is pulled towards
   the other mode, so the actions collapse between the modes (12-60 % of samples with |a| < 0.5
   over 4 seeds); with `offset_loss_codes='true'` (the original BeT's offset loss on the
   ground-truth code) the modes stay apart (< 2 %).
3. Inference. The newest position's codes are sampled from softmax(logits / temperature) with
   a torch.Generator seeded by `seed`; reset() re-seeds it, so an episode rerun from the same
   observations repeats its actions exactly, while successive calls within an episode sample
   afresh (multimodal behaviour stays multimodal).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dynamo_encoder.model.encoder import seeded_initialisation
from dynamo_policy.policies.base import Episode, Policy, TrainingHistory, fit_embedding_normalization
from dynamo_policy.policies.vqbet.configuration_vqbet import VQBeTConfig

CODEBOOK_EPS = 1e-5       # Laplace smoothing of the EMA cluster sizes (vector_quantize_pytorch default)
HEAD_WIDTH_SEQUENTIAL = 512   # VQ-BeT's sequentially_select code heads: [512, 512, C] and [512, C]
HEAD_WIDTH = 1024         # offset head [1024, 1024, G*C*W*A]; joint code head [1024, 1024, G*C]


def window_action_chunks(episodes: list[Episode], context_length: int, length: int) -> np.ndarray:
    """(N, context_length, length, action_dim): per frame and per position of its observation window.

    Frames come in make_training_windows' order; position j of frame f shows frame o = f - context_length + 1 + j
    (clipped to the episode, as the padded windows are) and gets the `length` actions from o on,
    clipped at the episode's end (the robot holds still). The newest position's chunk is the one
    make_training_windows pairs with the frame.
    """
    chunks = []
    for episode in episodes:
        count = len(episode)
        frame = np.arange(count)
        shown = np.clip(frame[:, None] + np.arange(-context_length + 1, 1)[None, :], 0, count - 1)
        index = np.clip(shown[:, :, None] + np.arange(length)[None, None, :], 0, count - 1)
        chunks.append(episode.actions[index])
    return np.concatenate(chunks).astype(np.float32)


# --- residual VQ action tokenizer ---------------------------------------------------------------
def _orthogonal_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Build the VQ-VAE's encoder/decoder: two hidden ReLU layers, orthogonal weights, zero biases."""
    network = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                            nn.Linear(hidden, out_dim))
    for module in network:
        if isinstance(module, nn.Linear):
            nn.init.orthogonal_(module.weight)
            nn.init.zeros_(module.bias)
    return network


class EMACodebook(nn.Module):
    """One VQ layer's codes, updated by exponential moving averages of their assigned inputs."""

    def __init__(self, dim: int, size: int, decay: float):
        super().__init__()
        self.decay = decay
        embed = torch.empty(1, size, dim)
        nn.init.kaiming_uniform_(embed)      # as the reference's uniform_init of a (1, codes, dim) tensor
        self.register_buffer('embed', embed[0].clone())
        self.register_buffer('embed_avg', embed[0].clone())
        self.register_buffer('cluster_size', torch.zeros(size))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (Euclidean) for each row of x (N, dim)."""
        squared = (x.pow(2).sum(-1, keepdim=True) - 2.0 * x @ self.embed.t()
                   + self.embed.pow(2).sum(-1)[None, :])
        return squared.argmin(-1)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, index: torch.Tensor) -> None:
        size = self.embed.shape[0]
        onehot = F.one_hot(index, size).to(x.dtype)
        self.cluster_size.lerp_(onehot.sum(0), 1.0 - self.decay)
        self.embed_avg.lerp_(onehot.t() @ x, 1.0 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + CODEBOOK_EPS) / (total + size * CODEBOOK_EPS) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])


class ResidualVQ(nn.Module):
    """Residual vector quantisation: each layer quantises what the previous layers left over."""

    def __init__(self, dim: int, layers: int, codes: int, decay: float):
        super().__init__()
        self.codebooks = nn.ModuleList(EMACodebook(dim, codes, decay) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quantised x, codes (N, layers), commitment loss per layer) for latents x (N, dim)."""
        residual, quantised, indices, losses = x, torch.zeros_like(x), [], []
        for codebook in self.codebooks:
            index = codebook.nearest(residual.detach())
            code = codebook.embed[index]         # the codes before this batch's update
            if self.training:
                losses.append(F.mse_loss(code, residual))
                codebook.ema_update(residual.detach(), index)
                code = residual + (code - residual).detach()   # straight-through
            residual = residual - code.detach()
            quantised = quantised + code
            indices.append(index)
        loss = torch.stack(losses) if losses else x.new_zeros(len(self.codebooks))
        return quantised, torch.stack(indices, dim=-1), loss

    def latent(self, indices: torch.Tensor) -> torch.Tensor:
        """Sum of the layers' codes for codes (..., layers)."""
        return sum(codebook.embed[indices[..., layer]] for layer, codebook in enumerate(self.codebooks))


class ActionVQVAE(nn.Module):
    """Flattened action chunk -> residual-VQ codes -> action chunk."""

    def __init__(self, chunk_values: int, config: VQBeTConfig):
        super().__init__()
        self.encoder = _orthogonal_mlp(chunk_values, config.vq_hidden_dim, config.vq_latent_dim)
        self.decoder = _orthogonal_mlp(config.vq_latent_dim, config.vq_hidden_dim, chunk_values)
        self.quantizer = ResidualVQ(config.vq_latent_dim, config.vq_layers, config.vq_codes, config.vq_decay)
        self.commitment_weight = config.vq_commitment_weight

    def loss(self, chunks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss, L1 reconstruction error) for flattened chunks (N, chunk_values)."""
        quantised, _, commitment = self.quantizer(self.encoder(chunks))
        reconstruction = (chunks - self.decoder(quantised)).abs().mean()
        return reconstruction + self.commitment_weight * commitment.sum(), reconstruction.detach()

    @torch.no_grad()
    def codes(self, chunks: torch.Tensor) -> torch.Tensor:
        """Codes (N, layers) of flattened chunks, without touching the codebooks."""
        training = self.quantizer.training
        self.quantizer.eval()
        _, indices, _ = self.quantizer(self.encoder(chunks))
        self.quantizer.train(training)
        return indices

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.latent(indices))


# --- causal GPT (nanoGPT, as the references adapt it) ----------------------------------------------
class _CausalSelfAttention(nn.Module):
    def __init__(self, config: VQBeTConfig):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, width = x.shape
        q, k, v = (t.view(batch, time, self.n_head, width // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(width, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(batch, time, width)))


class _Block(nn.Module):
    def __init__(self, config: VQBeTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = _CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.mlp_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_dropout(self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh')))


class CausalGPT(nn.Module):
    """Input projection + learned positions + pre-LN causal blocks + final LN + linear output."""

    def __init__(self, input_dim: int, block_size: int, config: VQBeTConfig):
        super().__init__()
        self.wte = nn.Linear(input_dim, config.n_embd)
        self.wpe = nn.Embedding(block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.gpt_output_dim, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, parameter in self.named_parameters():   # GPT-2's scaled init of residual projections
            if name.endswith('c_proj.weight'):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(x.shape[1], device=x.device)
        x = self.drop(self.wte(x) + self.wpe(positions)[None])
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(decayed, not decayed): Linear weights decay; biases, LayerNorm and Embedding weights do not."""
        decay, no_decay = [], []
        for module in self.modules():
            for name, parameter in module.named_parameters(recurse=False):
                (decay if name == 'weight' and isinstance(module, nn.Linear) else no_decay).append(parameter)
        return decay, no_decay


def _mlp(in_dim: int, widths: list[int]) -> nn.Sequential:
    layers = []
    for width in widths[:-1]:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, widths[-1]))
    return nn.Sequential(*layers)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean of -(1 - p_t)^gamma log p_t (Lin et al. 2017), p_t the probability of the target class."""
    log_p = F.log_softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]
    return (-(1.0 - log_p.exp()) ** gamma * log_p).mean()


def _sample(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    probabilities = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator)[:, 0]


class VQBeTNetwork(nn.Module):
    def __init__(self, embedding_dim: int, state_dim: int, action_dim: int, config: VQBeTConfig):
        super().__init__()
        self.config = config
        self.horizon, self.action_dim = config.horizon, action_dim
        self.register_buffer('embedding_mean', torch.zeros(embedding_dim))
        self.register_buffer('embedding_std', torch.ones(embedding_dim))
        self.vqvae = ActionVQVAE(config.horizon * action_dim, config)
        self.gpt = CausalGPT(embedding_dim + state_dim, config.context_length, config)
        layers, codes, features = config.vq_layers, config.vq_codes, config.gpt_output_dim
        if config.sequentially_select:
            self.primary_head = _mlp(features, [HEAD_WIDTH_SEQUENTIAL, HEAD_WIDTH_SEQUENTIAL, codes])
            self.secondary_head = _mlp(features + codes, [HEAD_WIDTH_SEQUENTIAL, codes])
        else:
            self.code_head = _mlp(features, [HEAD_WIDTH, HEAD_WIDTH, layers * codes])
        self.offset_head = _mlp(features, [HEAD_WIDTH, HEAD_WIDTH, layers * codes * config.horizon * action_dim])

    def code_heads(self) -> list[nn.Module]:
        return [self.primary_head, self.secondary_head] if self.config.sequentially_select else [self.code_head]

    def features(self, embeddings: torch.Tensor, states: torch.Tensor | None) -> torch.Tensor:
        """GPT output (B, T, gpt_output_dim) for windows (B, T, E) and (B, T, S) or None."""
        inputs = (embeddings - self.embedding_mean) / self.embedding_std
        if states is not None:
            inputs = torch.cat([inputs, states], dim=-1)
        return self.gpt(inputs)

    def _secondary_logits(self, features: torch.Tensor, primary: torch.Tensor) -> torch.Tensor:
        return self.secondary_head(torch.cat([features, F.one_hot(primary, self.config.vq_codes).to(features.dtype)],
                                             dim=-1))

    def _sample_codes(self, features: torch.Tensor, temperature: float, generator: torch.Generator
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return sampled codes (N, 2) and the joint head's logits (N, 2, C) (None for the sequential heads)."""
        if self.config.sequentially_select:
            primary = _sample(self.primary_head(features), temperature, generator)
            secondary = _sample(self._secondary_logits(features, primary), temperature, generator)
            return torch.stack([primary, secondary], dim=-1), None
        logits = self.code_head(features).view(len(features), self.config.vq_layers, self.config.vq_codes)
        codes = _sample(logits.flatten(0, 1), temperature, generator).view(len(features), self.config.vq_layers)
        return codes, logits

    def _chunks(self, features: torch.Tensor, codes: torch.Tensor, all_offsets: bool = True) -> torch.Tensor:
        """Return the decoded codes plus their offsets, (N, horizon, action_dim).

        The offset head's last layer gives an offset for every (layer, code); with all_offsets=False
        only the rows of the given codes are computed (the same values; at inference the other rows
        are most of the head's cost).
        """
        count, layers, codes_per_layer = len(features), self.config.vq_layers, self.config.vq_codes
        rows = torch.arange(count, device=features.device)
        if all_offsets:
            offsets = self.offset_head(features).view(count, layers, codes_per_layer, -1)
            offset = sum(offsets[rows, layer, codes[:, layer]] for layer in range(layers))
        else:
            hidden, last = self.offset_head[:-1](features), self.offset_head[-1]
            weight = last.weight.view(layers, codes_per_layer, -1, last.in_features)
            bias = last.bias.view(layers, codes_per_layer, -1)
            offset = sum(torch.einsum('nh,nvh->nv', hidden, weight[layer, codes[:, layer]])
                         + bias[layer, codes[:, layer]] for layer in range(layers))
        with torch.no_grad():
            decoded = self.vqvae.decode(codes)
        return (decoded + offset).view(count, self.horizon, self.action_dim)

    def loss(self, embeddings, states, chunks, generator) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the training loss for windows and per-position target chunks (B, T, horizon, action_dim)."""
        config = self.config
        features = self.features(embeddings, states).flatten(0, 1)
        target = chunks.flatten(0, 1)
        true_codes = self.vqvae.codes(target.flatten(1))
        sample_codes = config.offset_loss_codes == 'sampled'   # the references: codes sampled at temperature 1
        if config.sequentially_select:
            primary_logits = self.primary_head(features)
            secondary_logits = self._secondary_logits(features, true_codes[:, 0])   # teacher forcing
            if sample_codes:
                with torch.no_grad():
                    primary = _sample(primary_logits, 1.0, generator)
                    secondary = _sample(self._secondary_logits(features, primary), 1.0, generator)
                sampled = torch.stack([primary, secondary], dim=-1)
        else:
            logits = self.code_head(features).view(len(features), config.vq_layers, config.vq_codes)
            primary_logits, secondary_logits = logits[:, 0], logits[:, 1]
            if sample_codes:
                sampled = _sample(logits.detach().flatten(0, 1), 1.0, generator).view(len(features), -1)
        offset_loss = F.l1_loss(self._chunks(features, sampled if sample_codes else true_codes), target)
        code_loss = (config.primary_code_weight * focal_loss(primary_logits, true_codes[:, 0], config.focal_gamma)
                     + config.secondary_code_weight * focal_loss(secondary_logits, true_codes[:, 1],
                                                                 config.focal_gamma))
        return code_loss + config.offset_loss_weight * offset_loss, {
            'code': float(code_loss.detach()), 'offset': float(offset_loss.detach())}

    @torch.no_grad()
    def sample(self, embeddings, states, temperature: float, generator: torch.Generator) -> torch.Tensor:
        """Sample chunks (B, horizon, action_dim) for the newest position of each window."""
        features = self.features(embeddings, states)[:, -1]
        codes, _ = self._sample_codes(features, temperature, generator)
        return self._chunks(features, codes, all_offsets=False)


class VQBeTPolicy(Policy):
    name = 'vqbet'
    config_class = VQBeTConfig
    config: VQBeTConfig

    def __init__(self, config: VQBeTConfig, metadata):
        super().__init__(config, metadata)
        with seeded_initialisation(config.seed):      # the same seed builds the same initial weights
            self.network = VQBeTNetwork(metadata.embedding_dim, len(metadata.state_names), metadata.action_dim,
                                        config)
        self.network.eval()
        self._generator = torch.Generator()
        self.reset()

    def reset(self) -> None:
        """Re-seed the code sampler: an episode rerun from the same observations repeats its actions."""
        self._generator.manual_seed(self.config.seed)

    def _normalized_windows(self, episodes: list[Episode]):
        # Every window position is trained on the chunk starting at its own frame (the references'
        # sequence-to-sequence targets), not only the newest one.
        embeddings, states, _ = super()._normalized_windows(episodes)
        chunks = window_action_chunks(episodes, self.config.context_length, self.config.horizon)
        return embeddings, states, self.metadata.action_normalization.normalize(chunks)

    @torch.no_grad()
    def _predict_normalized(self, embeddings, states):
        chunks = self.network.sample(torch.from_numpy(np.ascontiguousarray(embeddings)),
                                     None if states is None else torch.from_numpy(np.ascontiguousarray(states)),
                                     self.config.temperature, self._generator)
        return chunks.numpy()

    def _fit_normalized(self, train, validation, progress) -> TrainingHistory:
        if train[2].ndim != 4:
            raise RuntimeError('VQ-BeT needs a chunk per window position (VQBeTPolicy._normalized_windows '
                               'was not used by Policy.fit)')
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)    # dropout, when configured
            generator = torch.Generator().manual_seed(self.config.seed)
            return self._fit(train, validation, progress, generator)

    def _fit(self, train, validation, progress, generator) -> TrainingHistory:
        config, network = self.config, self.network
        embeddings, states, chunks = (None if a is None else torch.from_numpy(a) for a in train)
        flat = embeddings.flatten(0, 1)
        fit_embedding_normalization(network, flat)
        total = config.vq_epochs + config.epochs

        # 1. the action tokenizer, on the unique chunks (one per frame: the newest positions')
        unique_chunks = torch.unique(chunks[:, -1].flatten(1), dim=0)
        vqvae = network.vqvae
        vqvae.requires_grad_(True)
        vqvae.train()
        optimizer = torch.optim.Adam(vqvae.parameters(), lr=config.vq_learning_rate,
                                     weight_decay=config.vq_weight_decay)
        for epoch in range(1, config.vq_epochs + 1):
            order = torch.randperm(len(unique_chunks), generator=generator)
            for start in range(0, len(order), config.vq_batch_size):
                loss, _ = vqvae.loss(unique_chunks[order[start:start + config.vq_batch_size]])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if progress:
                progress(epoch, total)
        vqvae.eval()
        vqvae.requires_grad_(False)

        # 2. GPT and heads, the tokenizer frozen. As the references' configure_optimizers: the GPT's
        # Linear weights decay, its other parameters do not; the code heads join that optimizer without
        # a weight_decay of their own, i.e. with AdamW's default 0.01; the offset head has its own AdamW.
        decay, no_decay = network.gpt.parameter_groups()
        heads = [p for head in network.code_heads() for p in head.parameters()]
        optimizer = torch.optim.AdamW([
            {'params': decay, 'weight_decay': config.weight_decay},
            {'params': no_decay, 'weight_decay': 0.0},
            {'params': heads, 'weight_decay': 0.01},
            {'params': list(network.offset_head.parameters()), 'weight_decay': config.weight_decay},
        ], lr=config.learning_rate, betas=tuple(config.betas))
        if validation is not None:
            validation = tuple(None if a is None else torch.from_numpy(a) for a in validation)
        history = TrainingHistory(x_label='epoch')
        every = max(1, config.epochs // 50)
        losses = []
        for epoch in range(1, config.epochs + 1):
            network.train()
            vqvae.eval()
            order = torch.randperm(len(embeddings), generator=generator)
            for start in range(0, len(order), config.batch_size):
                batch = order[start:start + config.batch_size]
                loss, _ = network.loss(embeddings[batch], None if states is None else states[batch], chunks[batch],
                                       generator)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            network.eval()
            if epoch % every == 0 or epoch == config.epochs:
                history.x.append(epoch)
                history.series.setdefault('train loss', []).append(float(np.mean(losses)))
                losses = []
                if validation is not None:
                    history.series.setdefault('validation MSE (normalised)', []).append(
                        self._validation_mse(validation))
            if progress:
                progress(config.vq_epochs + epoch, total)
        self.reset()
        return history

    @torch.no_grad()
    def _validation_mse(self, validation) -> float:
        """MSE of sampled chunks against the newest positions' chunks (a fixed sampler seed per call)."""
        embeddings, states, chunks = validation
        generator = torch.Generator().manual_seed(self.config.seed + 1)
        predicted = self.network.sample(embeddings, states, self.config.temperature, generator)
        return float(F.mse_loss(predicted, chunks[:, -1]))

    def state_dict(self):
        return self.network.state_dict()

    def load_state_dict(self, state):
        self.network.load_state_dict(state)
        self.network.eval()
        self.reset()
