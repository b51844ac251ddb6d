"""`reformer bench speed --peers`: reformer-pytorch in both of its modes, the ratios of our rows to
the peers', per-length repeats and `--no-forward`, on CPU at tiny sizes."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from reformer_cli.bench import speed
from reformer_cli.bench.peer_ratios import peer_ratios, ratio_table

TINY = ["--device", "cpu", "--tokens", "128", "--lengths", "32", "--heads", "1", "--d-head", "16",
        "--chunk", "16", "--rounds", "1", "--warmup", "0", "--reps", "1"]


def fake_reformer_pytorch(made: list[dict]) -> types.ModuleType:
    """A stand-in `reformer_pytorch` whose LSHAttention records its keywords and attends to nothing."""

    class LSHAttention(torch.nn.Module):
        def __init__(self, **keywords):
            super().__init__()
            made.append(keywords)

        def forward(self, qk, v):
            return qk * v, None, None

    return types.SimpleNamespace(LSHAttention=LSHAttention, __version__="fake")


def test_peers_time_reformer_pytorch_in_its_paper_mode_and_its_default(monkeypatch, tmp_path, capsys):
    made: list[dict] = []
    monkeypatch.setitem(sys.modules, "reformer_pytorch", fake_reformer_pytorch(made))
    monkeypatch.setitem(sys.modules, "transformers", None)  # a peer not installed: a note, not an error
    js = tmp_path / "s.json"
    assert speed.main([*TINY, "--semantics", "paper,across", "--peers", "--peer-rounds", "1", "--json", str(js)]) == 0
    record = json.loads(js.read_text())
    rows = {r["method"]: r for r in record["rows"]}
    assert set(rows) == {"full", "lsh-1", "lsh-across-1", "reformer-pytorch-dedup-1", "reformer-pytorch-1"}
    assert all(r["error"] is None for r in rows.values())
    dedup, default = made  # the paper mode first, each configured to our problem
    assert dedup == dict(bucket_size=16, n_hashes=1, causal=True, attend_across_buckets=False,
                         allow_duplicate_attention=False)
    assert default == dict(bucket_size=16, n_hashes=1, causal=True)
    assert "same bucket, duplicate correction" in rows["reformer-pytorch-dedup-1"]["note"]
    assert [m["method"] for m in record["missing"]] == ["hf-lsh-1"]
    (ratios,) = peer_ratios(record["rows"])
    assert ratios["paper / rp-dedup"] == pytest.approx(rows["lsh-1"]["ms"] / rows["reformer-pytorch-dedup-1"]["ms"])
    assert ratios["across / rp"] == pytest.approx(rows["lsh-across-1"]["ms"] / rows["reformer-pytorch-1"]["ms"])
    assert ratios["across / hf"] is None and ratios["across / best peer"] == ratios["across / rp"]
    text = speed.markdown(record)
    assert "| length | rounds | paper / rp-dedup |" in text and "- hf-lsh-1: not installed" in text
    assert "paper / rp-dedup" in capsys.readouterr().out


def test_ratios_take_the_faster_peer_and_skip_what_is_absent():
    def row(method, ms, length=1024, rounds=4):
        return dict(method=method, ms=ms, length=length, rounds=rounds)

    rows = [dict(method="full", ms=9.0, length=1024, rounds=None), row("lsh-4", 6.0), row("lsh-across-4", 4.0),
            row("reformer-pytorch-dedup-4", 3.0), row("reformer-pytorch-4", 8.0), row("hf-lsh-4", 5.0),
            row("lsh-2", 1.0, rounds=2), row("reformer-pytorch-dedup-2", None, rounds=2)]  # a failed peer
    (entry,) = peer_ratios(rows)  # rounds 2 has no ratio at all
    assert (entry["length"], entry["rounds"]) == (1024, 4)
    assert entry["paper / rp-dedup"] == pytest.approx(2.0) and entry["across / rp"] == pytest.approx(0.5)
    assert entry["across / hf"] == pytest.approx(0.8) and entry["across / best peer"] == pytest.approx(0.8)
    head, body = ratio_table(rows)
    assert head[:2] == ["length", "rounds"] and body == [["1024", "4", "2.00", "0.50", "0.80", "0.80"]]


def test_hf_peer_hashes_into_our_factorised_buckets():
    pytest.importorskip("transformers")
    problem = speed.Problem(tokens=1024, heads=1, d_head=8, chunk=4, dtype="fp32", causal=True,
                            device=torch.device("cpu"), buckets="auto")
    made = speed.hf_row(problem, 1024, 1)
    assert problem.factors(1024) == [32, 16]  # 512 buckets, factorised as trax does
    assert "buckets 32x16" in made.row.note
    assert made.forward().shape == (1, 1024, 8)


def test_repeats_per_length_and_forward_alone_off(monkeypatch):
    from reformer_cli.bench import common

    seen: list[tuple[list[str], int]] = []

    def spy(fns, device, **kw):
        seen.append((list(fns), kw["reps"]))
        return common.time_interleaved(fns, device, **kw)

    monkeypatch.setattr(speed, "time_interleaved", spy)
    args = speed.parser().parse_args([*TINY, "--lengths", "32,64,128", "--repeats", "3,2", "--no-forward"])
    record = speed.run(args, [])
    assert seen == [(["0 fwd+bwd", "1 fwd+bwd"], 3), (["0 fwd+bwd", "1 fwd+bwd"], 2),
                    (["0 fwd+bwd", "1 fwd+bwd"], 2)]  # the last count for the lengths beyond
    assert [r["repeats"] for r in record["rows"]] == [3, 3, 2, 2, 2, 2]
    assert all(r["fwd_ms"] is None and r["ms"] > 0 for r in record["rows"])
    assert record["repeats"] == [3, 2] and "3/2 (per length)" in record["timing"]
    assert "| 64 | 2 | lsh-1 | reference |" in speed.markdown(record)
