"""ReformerLM: token embedding + positions -> blocks -> LayerNorm -> output layer.

With `layer=reversible` the blocks run on two streams X1 = X2 = embedding and the output layer
reads LN([Y1; Y2]) (width 2 * d_model), as in trax and HF. The loss is computed in
`model.loss_chunks` slices along the sequence (paper section 3: "the output log-probabilities and
the loss are chunked").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..attention.cores import AttentionConfig
from ..attention.per_layer import layer_attentions
from ..config import LayerConfig, ModelConfig, RunConfig
from ..primitives.context import ForwardContext
from .axial import AxialPositions
from .blocks import Block, StandardStack, layer_norm_eps_of
from .chunking import split, sum_chunks
from .positions import LearnedPositions, NoPositions
from .reversible import ReversibleStack


@dataclass
class LossTotals:
    """Sums over the weighted target positions of a batch (divide by `weight_sum` for means)."""

    loss_sum: torch.Tensor  # nats
    weight_sum: torch.Tensor
    correct_sum: torch.Tensor


def build_positions(model: ModelConfig, seq_len: int) -> nn.Module:
    if model.positions == "learned":
        # read with getattr: checkpoints saved before the key existed lack it
        return LearnedPositions(seq_len, model.d_model, float(getattr(model, "position_init_std", 0.02)))
    if model.positions == "axial":
        return AxialPositions.from_config(model, seq_len)
    return NoPositions()


def build_stack(layer: LayerConfig, blocks: list[Block], d_model: int) -> nn.Module:
    if layer.name == "reversible":
        return ReversibleStack(blocks, d_model, layer)
    return StandardStack(blocks, d_model)


class ReformerLM(nn.Module):
    def __init__(self, model: ModelConfig, attention: AttentionConfig, layer: LayerConfig, vocab_size: int,
                 seq_len: int):
        super().__init__()
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.embed = nn.Embedding(vocab_size, model.d_model)
        self.positions = build_positions(model, seq_len)
        self.dropout = float(model.dropout)
        attentions = layer_attentions(model, attention)  # model.attn_layers: one attention per layer
        # the layers that run `attention` itself: those `set_attention` changes
        self.swappable = [a is attention for a in attentions]
        blocks = [Block(model, layer_attention, i) for i, layer_attention in enumerate(attentions)]
        self.stack = build_stack(layer, blocks, model.d_model)
        self.norm = nn.LayerNorm(self.stack.out_width, eps=layer_norm_eps_of(model))
        self.head = nn.Linear(self.stack.out_width, vocab_size)
        if model.tie_embeddings and self.stack.out_width == model.d_model:
            self.head.weight = self.embed.weight
        self.loss_chunks = int(model.loss_chunks)

    def set_attention(self, attention: AttentionConfig) -> None:
        """Evaluate under another attention (full, or LSH with other rounds); weights untouched. With
        `model.attn_layers`, the layers that ran the model's `attention` change; the others keep theirs."""
        for block, swappable in zip(self.stack.blocks, self.swappable):
            if swappable:
                block.attention.attention.set_core(attention)

    def features(self, tokens: torch.Tensor, ctx: ForwardContext, key_padding_mask: torch.Tensor | None = None):
        """The stack's output before the final LayerNorm, [batch, length, width]."""
        x = self.positions(self.embed(tokens))
        x = ctx.dropout(x, self.dropout, "embedding")
        return self.stack(x, ctx, key_padding_mask)

    def hidden(self, tokens: torch.Tensor, ctx: ForwardContext, key_padding_mask: torch.Tensor | None = None):
        """Normalised final hidden states, [batch, length, width]."""
        return self.norm(self.features(tokens, ctx, key_padding_mask))

    def forward(
        self,
        tokens: torch.Tensor,
        targets: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
        *,
        seed: int = 0,
        key_padding_mask: torch.Tensor | None = None,
    ):
        """Logits [batch, length, vocab]; with `targets` and `weights`, the `LossTotals` of `loss()`
        instead (so DistributedDataParallel and torch.compile see the training call as `forward`).
        `seed` drives dropout and LSH rotations."""
        if targets is not None:
            return self.loss(tokens, targets, weights, seed=seed, key_padding_mask=key_padding_mask)
        ctx = ForwardContext(seed=seed, training=self.training)
        return self.head(self.hidden(tokens, ctx, key_padding_mask))

    def _chunk_loss(self, features: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """[loss_sum, weight_sum, correct_sum] of one sequence chunk: LN -> output layer -> loss."""
        logits = self.head(self.norm(features))
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> fp32, fp64 stays
        weights = weights.to(logits.dtype)
        nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)
        correct = (logits.argmax(dim=-1) == targets).to(weights.dtype)
        return torch.stack([(nll * weights).sum(), weights.sum(), (correct * weights).sum()])

    def loss(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor,
        *,
        seed: int = 0,
        key_padding_mask: torch.Tensor | None = None,
        diagnostics: dict | None = None,
    ) -> LossTotals:
        """Summed cross-entropy (nats), weight and correct predictions over weighted targets.

        The final LayerNorm, output layer and loss are computed in `model.loss_chunks` slices of the
        sequence (paper section 3); with more than one, only one slice's logits are alive at a time,
        in the forward and in the backward (chunking.py). `diagnostics`: statistics the layers
        fill in (ForwardContext.diagnostics).
        """
        ctx = ForwardContext(seed=seed, training=self.training, diagnostics=diagnostics)
        features = self.features(inputs, ctx, key_padding_mask)
        chunks = self.loss_chunks
        target_chunks, weight_chunks = split(targets, chunks), split(weights, chunks)

        def chunk_loss(piece: torch.Tensor, i: int) -> torch.Tensor:
            return self._chunk_loss(piece, target_chunks[i], weight_chunks[i])

        params = [*self.norm.parameters(), *self.head.parameters()]
        loss_sum, weight_sum, correct_sum = sum_chunks(chunk_loss, features, chunks, params).unbind(0)
        return LossTotals(loss_sum, weight_sum.detach(), correct_sum.detach())


def build_model(cfg: RunConfig, vocab_size: int, seq_len: int) -> ReformerLM:
    """The model of a composed `reformer run` config for a task's vocabulary and sequence length
    (the task's `vocab_size` and `seq_len`: the model reads the length the batches have)."""
    return ReformerLM(cfg.model, cfg.attention, cfg.layer, vocab_size, seq_len)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
