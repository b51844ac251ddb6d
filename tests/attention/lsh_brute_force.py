"""LSH attention from first principles, one query at a time (the oracle of test_lsh.py).

Written independently of `reformer_cli.attention.lsh`: plain Python loops and numpy fp64. It states
the semantics of the module docstring directly:

* buckets: argmax([x R ; -x R]) per factor, combined b_1 + f_1 b_2 + ...; padding (positions beyond
  the length, and masked keys) in bucket n_buckets;
* per round, the order sorted by (bucket, position), cut into chunks of `chunk_length`;
* the window of a query: its chunk and the `n_chunks_before` chunks before it, in its own round
  (no wrap), or in the list of all rounds' chunks, cyclically (wrap); a *list* of key positions,
  so a key reached twice counts twice;
* the paper's same-bucket rule (eq. 3-4, 16: P_i = {j : h(q_i) = h(k_j)}, `across=False`): a slot
  is attended only if it belongs to the query's own round and its key hashed, in that round, to
  the query's bucket; `across=True` (trax v2, HF) attends every slot of the window;
* each attended slot's logit: q_i . k_j / |k_j|, -1e5 for the query itself, excluded (no weight) if
  the key is padding, later than the query (causal) or the slot lies before the first chunk;
  dedup subtracts log N_ij, N_ij = the number of attended slots holding j over all rounds (every
  window slot across buckets; same-round, same-bucket slots under the paper's rule);
* per round a softmax (o_r, z_r); rounds merged with weights softmax_r(z_r).
"""

from __future__ import annotations

import math

import numpy as np

SELF = -1e5


def unit(x: np.ndarray) -> np.ndarray:
    """x / |x|, and the zero vector for x = 0 (the convention of a zero key: every logit 0)."""
    norm = np.linalg.norm(x)
    return x / norm if norm > 0 else np.zeros_like(x)


def brute_buckets(x: np.ndarray, rotations: list[np.ndarray], round_: int) -> int:
    """Bucket of one vector x [d] in one round; rotations: per factor [d, rounds, f/2]."""
    bucket, stride = 0, 1
    for rot in rotations:
        half = rot.shape[-1]
        proj = [float(np.dot(x, rot[:, round_, k])) for k in range(half)]
        scores = proj + [-p for p in proj]
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # first index of the max
        bucket += stride * best
        stride *= 2 * half
    return bucket


def brute_lsh(qk, v, rotations, *, chunk_length, causal, n_chunks_before, wrap, dedup, across=False,
              key_padding_mask=None):
    """qk, v: numpy [b, h, L, d]; rotations: list of numpy [h, d, rounds, f/2].

    Returns (out [b, h, L, d], attended) with attended[b][h][i] the set of keys query i attends to
    in at least one round (the union P_i of the paper)."""
    b_size, heads, length, d = qk.shape
    rounds = rotations[0].shape[2]
    n_buckets = math.prod(2 * r.shape[-1] for r in rotations)
    c = chunk_length
    padded = -(-length // c) * c
    n_chunks = padded // c
    out = np.zeros_like(v)
    attended = [[[set() for _ in range(length)] for _ in range(heads)] for _ in range(b_size)]
    for b in range(b_size):
        real = [p < length and (key_padding_mask is None or bool(key_padding_mask[b, p])) for p in range(padded)]
        for h in range(heads):
            rots = [r[h] for r in rotations]
            x = np.zeros((padded, d))
            x[:length] = qk[b, h]
            vals = np.zeros((padded, d))
            vals[:length] = v[b, h]
            # per round: the sorted order and its chunks (lists of original positions)
            chunks = []  # chunks[r][n]
            buckets = []  # buckets[r][p]
            for r in range(rounds):
                bucket = [brute_buckets(x[p], rots, r) if real[p] else n_buckets for p in range(padded)]
                order = sorted(range(padded), key=lambda p: (bucket[p], p))
                chunks.append([order[n * c:(n + 1) * c] for n in range(n_chunks)])
                buckets.append(bucket)
            all_chunks = [(r, ch) for r in range(rounds) for ch in chunks[r]]

            def window(r, p):
                """Slots (key position, attended) of position p's window in round r: attended = the
                slot exists and, under the same-bucket rule, holds a key of p's round and bucket."""
                n = next(i for i, ch in enumerate(chunks[r]) if p in ch)
                slots = []
                for t in range(n_chunks_before, -1, -1):
                    if wrap:
                        r2, chunk = all_chunks[(r * n_chunks + n - t) % len(all_chunks)]
                    elif n - t >= 0:
                        r2, chunk = r, chunks[r][n - t]
                    else:
                        slots += [(None, False)] * c
                        continue
                    slots += [(j, across or (r2 == r and buckets[r][j] == buckets[r][p])) for j in chunk]
                return slots

            for i in range(length):
                if not real[i]:
                    continue  # a masked query's output is unspecified (left zero here)
                windows = [window(r, i) for r in range(rounds)]
                count = {}
                for slots in windows:
                    for j, in_set in slots:
                        if in_set:
                            count[j] = count.get(j, 0) + 1
                outs, lses = [], []
                for slots in windows:
                    keys, logits = [], []
                    for j, in_set in slots:
                        if not in_set or not real[j] or (causal and j > i):
                            continue  # excluded: exactly zero weight
                        logit = SELF if j == i else float(np.dot(x[i], unit(x[j])))
                        if dedup:
                            logit -= math.log(count[j])
                        keys.append(j)
                        logits.append(logit)
                        attended[b][h][i].add(j)
                    logits = np.array(logits)
                    top = logits.max()
                    lse = top + math.log(np.exp(logits - top).sum())
                    probs = np.exp(logits - lse)
                    outs.append(sum(p * vals[j] for p, j in zip(probs, keys)))
                    lses.append(lse)
                lses = np.array(lses)
                weights = np.exp(lses - lses.max())
                weights /= weights.sum()
                out[b, h, i] = sum(w * o for w, o in zip(weights, outs))
    return out, attended


def union_softmax(qk, v, attended):
    """Softmax over an explicit set of keys per query (paper eq. 11): attended[b][h][i] = set of j."""
    b_size, heads, length, d = qk.shape
    out = np.zeros_like(v)
    for b in range(b_size):
        for h in range(heads):
            for i in range(length):
                keys = sorted(attended[b][h][i])
                if not keys:
                    continue  # a masked query
                logits = np.array([
                    SELF if j == i else float(np.dot(qk[b, h, i], unit(qk[b, h, j])))
                    for j in keys
                ])
                probs = np.exp(logits - logits.max())
                probs /= probs.sum()
                out[b, h, i] = sum(p * v[b, h, j] for p, j in zip(probs, keys))
    return out
