"""The speed page's crossover lengths and the memory page's verdicts, against hand-computed cases:
where each LSH setting overtakes full attention, each added layer's saved bytes (standard vs
reversible), Table 3's growth with length, and a memory page built from several records."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from reformer_cli.table import memory, speed

MIB = 2**20


def test_crossover_is_where_lsh_stays_faster_up_to_the_longest_length():
    times = {
        1024: {"full": 1.0, "lsh-1": 0.5, "lsh-4": 3.0, "lsh-8": 9.0},
        2048: {"full": 2.0, "lsh-1": 0.6, "lsh-4": 1.0, "lsh-8": 9.0},
        4096: {"full": 4.0, "lsh-1": 0.7, "lsh-4": 5.0, "lsh-8": 9.0},
        8192: {"full": 8.0, "lsh-1": 0.8, "lsh-4": 3.0, "lsh-8": 9.0},
    }
    assert speed.crossover(times, "lsh-1") == 1024  # faster everywhere: from the shortest length
    assert speed.crossover(times, "lsh-4") == 8192  # faster at 2,048 but slower again at 4,096
    assert speed.crossover(times, "lsh-8") is None  # slower at the longest length
    times[8192]["lsh-1"] = None  # no time at the longest length: no claim
    assert speed.crossover(times, "lsh-1") is None


def test_crossover_table_beside_the_papers():
    ours = {1024: (2, {"full": {"ms": 1.0}, "lsh-2": {"ms": 2.0}}),
            2048: (1, {"full": {"ms": 2.0}, "lsh-2": {"ms": 1.5}})}
    theirs = {1024: (32, {"full": 0.17, "lsh-2": 0.15}), 2048: (16, {"full": 0.30, "lsh-2": 0.12})}
    lines = speed.crossovers(["full", "lsh-2"], ours, theirs)
    assert "| lsh-2 | 2,048 | 1,024 |" in lines
    ours[2048][1]["full"]["error"] = "OOM"  # full attention out of memory where LSH ran: LSH is faster
    assert "| lsh-2 | 2,048 | 1,024 |" in speed.crossovers(["full", "lsh-2"], ours, theirs)
    ours[2048][1]["lsh-2"]["error"] = "OOM"  # a failed LSH row is no time
    assert "| lsh-2 | not by 2,048 | 1,024 |" in speed.crossovers(["full", "lsh-2"], ours, theirs)


def rows(layer: str, saved: dict[int, float], status: str = "ok") -> list[dict]:
    return [{"layer": layer, "depth": d, "status": status, "saved_bytes": int(b * MIB)} for d, b in saved.items()]


def test_per_layer_slope_and_the_depth_verdict():
    standard = rows("standard", {1: 13.0, 2: 16.0, 4: 22.0, 12: 46.0})  # 10 MiB + 3 MiB per layer
    reversible = rows("reversible", {1: 13.0, 2: 13.0, 4: 13.0, 12: 13.0})
    assert memory.per_layer(standard, "standard") == pytest.approx(3 * MIB)
    assert memory.per_layer(reversible, "reversible") == pytest.approx(0.0)
    assert memory.per_layer(rows("standard", {4: 1.0}), "standard") is None  # one depth: no slope
    # an OOM row is no point
    assert memory.per_layer(standard + [{"layer": "standard", "depth": 24, "status": "OOM"}], "standard") == \
        pytest.approx(3 * MIB)
    assert "**holds**" in " ".join(memory.depth_verdict(standard + reversible))
    growing = rows("reversible", {1: 13.0, 12: 24.0})  # 1 MiB per layer: a third of the standard's
    assert "**does not hold**" in " ".join(memory.depth_verdict(standard + growing))


def test_table3_growth_with_length():
    full = {"attention": "full", "heads": 4, "d_ff": 1024}
    assert memory.table3_memory(full, 2048) / memory.table3_memory(full, 1024) == 4.0  # n_h l^2 > l d_ff
    assert memory.table3_memory(full, 128) / memory.table3_memory(full, 64) == 2.0  # l d_ff the larger term
    lsh = {"attention": "lsh", "heads": 4, "d_ff": 1024, "rounds": 1, "chunk_length": 64}
    assert memory.table3_memory(lsh, 8192) / memory.table3_memory(lsh, 2048) == 4.0  # linear in l


def bench(length: int, attention: str, saved: dict[str, dict[int, float]]) -> dict:
    setting = {"d_model": 64, "d_ff": 256, "heads": 2, "length": length, "batch": 1, "attention": attention,
               "rounds": 1, "chunk_length": 32}
    results = [r for layer, by_depth in saved.items() for r in rows(layer, by_depth)]
    return {"kind": "bench", "result": {"setting": setting, "precision": "fp32", "results": results}}


def test_a_memory_page_of_several_records_has_a_section_each_and_a_length_table():
    experiment = SimpleNamespace(name="memory_claims", title="Memory", paper={
        "source": "the paper", "claim": "reversible: constant", "growth": {"standard": "depth", "reversible": "constant"}})
    spec = SimpleNamespace(label="a label", comparable=False, about="about", steps=[], recipe=None)
    experiment.profile = lambda name: spec
    records = {
        "short": bench(1024, "full", {"standard": {1: 2.0, 2: 3.0}, "reversible": {1: 2.0, 2: 2.0}}),
        "long": bench(2048, "full", {"standard": {1: 6.0, 2: 10.0}, "reversible": {1: 6.0, 2: 6.0}}),
    }
    ctx = SimpleNamespace(experiment=experiment, profile="cpu", records=records, runs_shown="results/runs", spec=spec,
                          comparable=False)
    page = memory.build(ctx).markdown
    assert "## Attention full, length 1,024" in page and "## Attention full, length 2,048" in page
    assert page.count("**holds**") == 2
    # depth 2 at length 2,048 vs 1,024: standard 10 / 3 MiB; Table 3: (2 * 2048^2) / (2 * 1024^2) = 4
    assert "| full | 2,048 | standard | 2 | 10.0 | 3.33 / 4.00 / -0.67 |" in page
    assert "| full | 2,048 | reversible | 2 | 6.0 | 3.00 / 4.00 / -1.00 |" in page


def test_our_times_show_their_spread_when_the_record_has_one():
    assert speed.shown_ms({"ms": 3.0, "ms_min": 2.5, "ms_max": 4.25, "repeats": 3}) == "3.00 (2.50-4.25)"
    assert speed.shown_ms({"ms": 3.0}) == "3.00"  # a record without a spread
    assert speed.shown_ms({"ms": 3.0, "ms_min": 3.0, "ms_max": 3.0, "repeats": 1}) == "3.00"  # one call: none
    assert speed.shown_ms({"ms": None, "error": "OOM"}) == "OOM"


def speed_rows(times: dict[int, dict[str, float]]) -> dict:
    return {length: (1, {m: {"ms": t} for m, t in row.items()}) for length, row in times.items()}


def test_the_speed_claim_is_decided_by_how_each_time_grows():
    flat = {1024: {"full": 1.0, "lsh-2": 3.0}, 4096: {"full": 4.5, "lsh-2": 3.3}}
    measured, verdict = speed.flatness(speed_rows(flat))
    assert verdict == "holds" and "full x4.5" in measured and "lsh-2 x1.10" in measured
    grows = {1024: {"full": 1.0, "lsh-2": 3.0}, 4096: {"full": 4.5, "lsh-2": 7.5}}  # LSH x2.5
    assert speed.flatness(speed_rows(grows))[1] == "does not hold"
    full_flat = {1024: {"full": 1.0, "lsh-2": 3.0}, 4096: {"full": 1.5, "lsh-2": 3.0}}  # full barely grows
    assert speed.flatness(speed_rows(full_flat))[1] == "does not hold"
    short = {1024: {"full": 1.0, "lsh-2": 3.0}, 2048: {"full": 2.0, "lsh-2": 3.0}}  # lengths 2x apart
    assert speed.flatness(speed_rows(short))[1] == "inconclusive at this scale"
    assert speed.flatness(speed_rows({1024: {"full": 1.0, "lsh-2": 3.0}})) is None


def test_the_memory_claim_holds_only_where_every_record_holds():
    def record(reversible_per_layer: float) -> dict:
        rows = [{"layer": layer, "depth": d, "status": "ok",
                 "saved_bytes": int((10 + d * (20 if layer == "standard" else reversible_per_layer)) * MIB)}
                for layer in ("standard", "reversible") for d in (1, 2, 4)]
        return {"kind": "bench", "result": {"results": rows}}

    ctx = SimpleNamespace(records={"a": record(0.0), "b": record(0.5)})
    [(claim, measured, _, verdict)] = memory.claim_rows(ctx)
    assert verdict == "holds" and "at most 2.5% of the standard's" in measured and "2 settings" in measured
    ctx.records["c"] = record(2.0)  # 10% of the standard's growth per layer
    assert memory.claim_rows(ctx)[0][3] == "does not hold"
    assert memory.claim_rows(SimpleNamespace(records={})) == []
