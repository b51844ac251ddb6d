"""Drawing tokens from a trained model: temperature, top-k, top-p (nucleus), a seeded generator, and
`generate`, which feeds a prompt to a `CachedDecoder` and yields each sampled token as it comes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from .incremental import CachedDecoder


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0  # 0: the most likely token (greedy)
    top_k: int = 0  # keep the k most likely tokens (0: all)
    top_p: float = 1.0  # keep the fewest most likely tokens whose probability reaches p (1: all)


def next_tokens(logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator,
                forbidden: tuple[int, ...] = ()) -> torch.Tensor:
    """One token per row of `logits` `[batch, vocab]`; `forbidden` tokens are never drawn."""
    logits = logits.double().clone()
    if forbidden:
        logits[:, list(forbidden)] = -torch.inf
    if settings.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / settings.temperature
    if 0 < settings.top_k < logits.shape[-1]:
        kth = logits.topk(settings.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if settings.top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        before = ordered.softmax(dim=-1).cumsum(dim=-1) - ordered.softmax(dim=-1)  # mass of the likelier ones
        drop = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, before >= settings.top_p)
        logits = logits.masked_fill(drop, -torch.inf)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)


def generate(decoder: CachedDecoder, prompt: torch.Tensor, length: int, settings: SamplingSettings,
             generator: torch.Generator, forbidden: tuple[int, ...] = ()) -> Iterator[torch.Tensor]:
    """Feed `prompt` `[batch, m]` (m >= 1: at least the start token), then draw `length` tokens one
    at a time, each fed back; yields each `[batch]` token as soon as it is drawn."""
    logits = decoder.feed(prompt)[:, -1]
    for i in range(length):
        token = next_tokens(logits, settings, generator, forbidden)
        yield token
        if i + 1 < length:
            logits = decoder.feed(token[:, None])[:, -1]
