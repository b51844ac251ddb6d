"""The arguments of `reformer eval` (its command line, or one line of the batch evaluator), read once.

They are Hydra overrides, composed by Hydra; what the program itself needs from them before or
beside composing is read here: the checkpoint, the output, whether an attention option is chosen
(`attention=<name>`) and which attention keys are set explicitly (`attention.n_rounds=8` ->
n_rounds: evaluation.merge_attention changes only those keys of the trained attention).
Nothing here imports hydra, omegaconf or torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from .errors import UserError

_ATTENTION_KEY = re.compile(r"^[+~]*attention\.([A-Za-z_][A-Za-z0-9_]*)")
_ATTENTION_CHOICE = re.compile(r"^[+~]*attention=")


def _value(args: Iterable[str], key: str) -> str | None:
    """The value of the first `key=value` among `args`, or None."""
    return next((a.split("=", 1)[1] for a in args if a.startswith(f"{key}=")), None)


@dataclass(frozen=True)
class EvalArguments:
    args: tuple[str, ...]

    @classmethod
    def parse(cls, args: Iterable[str]) -> EvalArguments:
        return cls(tuple(args))

    @property
    def checkpoint(self) -> str | None:
        return _value(self.args, "checkpoint")

    @property
    def output(self) -> str | None:
        return _value(self.args, "output")

    @property
    def explicit(self) -> set[str]:
        """The attention keys set on the command line (`attention.n_rounds=8` -> n_rounds)."""
        return {m.group(1) for m in map(_ATTENTION_KEY.match, self.args) if m}

    @property
    def chooses_attention(self) -> bool:
        return any(_ATTENTION_CHOICE.match(a) for a in self.args)

    def with_trained_attention(self) -> EvalArguments:
        """`attention.<key>=...` without `attention=<name>`: the trained attention's option
        selected, so that its keys exist when Hydra composes the overrides (read from the
        checkpoint; a sweep over checkpoints must name its attention itself)."""
        if self.chooses_attention or not self.explicit:
            return self
        checkpoint = self.checkpoint
        if checkpoint is None:
            raise UserError("checkpoint=PATH is required (a checkpoint file or a run folder)")
        if "," in checkpoint:
            return self
        from .evaluation import load_trained

        _, saved = load_trained(checkpoint)
        # beside the user's first attention key, so Hydra's overrides stay one contiguous list
        at = next(i for i, a in enumerate(self.args) if _ATTENTION_KEY.match(a))
        chosen = f"attention={saved['config']['attention']['name']}"
        return EvalArguments((*self.args[:at], chosen, *self.args[at:]))
