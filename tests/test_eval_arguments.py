"""`reformer eval`'s arguments, read once (eval_arguments.py)."""

from __future__ import annotations

import pytest

from reformer_cli.errors import UserError
from reformer_cli.eval_arguments import EvalArguments


def test_what_the_arguments_say():
    parsed = EvalArguments.parse(["checkpoint=run", "attention.n_rounds=1,2", "+attention.eval_seed=3",
                                  "~attention.chunk_length", "output=x.json", "split=test", "attention_x=1"])
    assert parsed.checkpoint == "run" and parsed.output == "x.json"
    assert parsed.explicit == {"n_rounds", "eval_seed", "chunk_length"}
    assert not parsed.chooses_attention
    assert EvalArguments.parse(["attention=full"]).chooses_attention
    assert EvalArguments.parse(["checkpoint=a", "checkpoint=b"]).checkpoint == "a"  # the first, as Hydra reads it


def test_the_trained_attention_is_chosen_only_where_keys_need_it():
    alone = EvalArguments.parse(["checkpoint=run"])
    assert alone.with_trained_attention() is alone  # no attention key: nothing to read
    chosen = EvalArguments.parse(["checkpoint=run", "attention=full", "attention.causal=false"])
    assert chosen.with_trained_attention() is chosen
    swept = EvalArguments.parse(["checkpoint=a,b", "attention.n_rounds=2"])
    assert swept.with_trained_attention() is swept  # each checkpoint of a sweep must name its attention
    with pytest.raises(UserError, match="checkpoint=PATH is required"):
        EvalArguments.parse(["attention.n_rounds=2"]).with_trained_attention()
