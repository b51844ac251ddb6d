"""Our LSH rows against the peers' at the same length and rounds (`reformer bench speed --peers`).

Each ratio is our median forward + backward time over the peer's (below 1: ours is faster):

* `paper / rp-dedup`: ours with the paper's semantics (`lsh-R`) over reformer-pytorch in the same
  semantics (`reformer-pytorch-dedup-R`: same bucket, duplicate correction);
* `across / rp`, `across / hf`: ours across buckets without the correction (`lsh-across-R`) over
  reformer-pytorch's default mode and transformers' `LSHSelfAttention` (which compute that);
* `across / best peer`: the same over the faster of those two.

A ratio is absent where either row is (not asked for, not installed, failed).
"""

from __future__ import annotations

COLUMNS = {
    "paper / rp-dedup": ("lsh-{r}", ["reformer-pytorch-dedup-{r}"]),
    "across / rp": ("lsh-across-{r}", ["reformer-pytorch-{r}"]),
    "across / hf": ("lsh-across-{r}", ["hf-lsh-{r}"]),
    "across / best peer": ("lsh-across-{r}", ["reformer-pytorch-{r}", "hf-lsh-{r}"]),
}


def peer_ratios(rows: list[dict]) -> list[dict]:
    """One entry per (length, rounds) where some ratio exists: {'length', 'rounds', column: ratio or None}."""
    ms = {(r["length"], r["method"]): r["ms"] for r in rows if r.get("ms")}
    keys = sorted({(r["length"], r["rounds"]) for r in rows if r.get("rounds") is not None})
    out = []
    for length, rounds in keys:
        entry: dict = {"length": length, "rounds": rounds}
        for column, (ours, theirs) in COLUMNS.items():
            mine = ms.get((length, ours.format(r=rounds)))
            peers = [ms[(length, t.format(r=rounds))] for t in theirs if (length, t.format(r=rounds)) in ms]
            entry[column] = mine / min(peers) if mine is not None and peers else None
        if any(entry[c] is not None for c in COLUMNS):
            out.append(entry)
    return out


def ratio_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(head, body) of `peer_ratios`, '-' where a ratio is absent."""
    head = ["length", "rounds", *COLUMNS]
    body = [[str(e["length"]), str(e["rounds"]),
             *("-" if e[c] is None else f"{e[c]:.2f}" for c in COLUMNS)] for e in peer_ratios(rows)]
    return head, body
