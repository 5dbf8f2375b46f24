"""The window/overlap frontier: the grid, the vectors and costs of each setting, the choice."""

import numpy as np
import pandas as pd
import pytest

import lc_utils as lc
from lc_utils.studies.frontier import (
    WindowSetting,
    choose_setting,
    encode_settings,
    frontier_table,
    window_settings,
)

TEXT = " ".join(
    f"Paragraph {i} explains how item {i % 7} relates to the value {i * 13 % 97}."
    for i in range(60)
)


def test_the_default_grid_is_trained_length_and_limit_times_four_overlaps(minilm, tiny_model):
    grid = window_settings(minilm)
    assert [s.label for s in grid] == [
        "256/0", "256/15", "256/31", "256/63", "512/0", "512/31", "512/63", "512/127",
    ]  # fmt: skip
    # The library's own default plan is one of the grid's settings: the trained length, 1/16.
    window, content = minilm.window().positions, minilm.window().content_tokens
    assert f"{window}/{lc.plan_windows(2000, content).overlap}" == grid[1].label == "256/15"
    # A model that declares no trained length gets its limit only.
    assert [s.window for s in window_settings(tiny_model)] == [512] * 4
    assert [
        s.label for s in window_settings(tiny_model, windows=[64], overlap_fractions=[0, 0.5])
    ] == [
        "64/0",
        "64/31",
    ]
    with pytest.raises(ValueError, match=r"overlap_fractions=\[1.0\]"):
        window_settings(tiny_model, overlap_fractions=[1.0])
    with pytest.raises(ValueError, match="exceeds"):
        window_settings(tiny_model, windows=[4096])


@pytest.fixture(scope="module")
def run(tiny_model):
    documents = {"long": TEXT, "short": "A short note about item 3. It fits one window."}
    records = [
        {"doc_id": doc_id, "chunk_index": i, "start": c.start, "end": c.end, "text": c.text}
        for doc_id, text in documents.items()
        for i, c in enumerate(lc.chunk_text(text, "sentences"))
    ]
    settings = window_settings(tiny_model, windows=[48, 96], overlap_fractions=[0, 0.25])
    return documents, records, settings, encode_settings(tiny_model, documents, records, settings)


def test_each_setting_gives_what_late_chunking_gives_with_that_window(tiny_model, run):
    documents, records, settings, frontier = run
    for setting in settings:
        for doc_id, text in documents.items():
            rows = [i for i, r in enumerate(records) if r["doc_id"] == doc_id]
            spans = [(records[i]["start"], records[i]["end"]) for i in rows]
            direct = lc.late_chunking(
                tiny_model, text, spans, window=setting.window, overlap=setting.overlap
            )
            np.testing.assert_allclose(frontier.vectors[setting.label][rows], direct, atol=1e-5)


def test_costs_count_the_tokens_of_every_window_plan(tiny_model, run):
    documents, _, settings, frontier = run
    costs = frontier.costs
    n_tokens = {d: len(lc.tokenize_document(tiny_model.tokenizer, t)) for d, t in documents.items()}
    assert (costs["n_tokens"] == sum(n_tokens.values())).all()
    for setting in settings:
        content = tiny_model.window(setting.window).content_tokens
        plans = [lc.plan_windows(n, content, setting.overlap) for n in n_tokens.values()]
        row = costs.loc[setting.label]
        assert row["tokens_computed"] == sum(p.tokens_computed for p in plans)
        assert row["passes"] == sum(len(p.windows) for p in plans)
        assert row["attention"] == sum((b - a) ** 2 for p in plans for a, b in p.windows)
        assert row["seconds"] > 0
    # More overlap computes more tokens; a longer window does more attention work per token.
    assert costs.loc["48/11", "tokens_computed"] > costs.loc["48/0", "tokens_computed"]
    assert costs.loc["96/0", "attention"] > costs.loc["48/0", "attention"]
    assert (costs["token_ratio"] >= 1).all()


def comparison_of(per_setting_scores, n_queries=60, seed=0):
    """Evaluate fake vectors: one relevant chunk per query, found when its score is highest."""
    rng = np.random.default_rng(seed)
    records = [
        {"doc_id": f"d{i}", "chunk_index": 0, "start": 0, "end": 5} for i in range(n_queries)
    ]
    queries = np.eye(n_queries, dtype=np.float32)
    qrels = {f"q{i}": [(f"d{i}", 0, 5)] for i in range(n_queries)}
    vectors = {}
    for label, noise in per_setting_scores.items():
        vectors[label] = np.eye(n_queries, dtype=np.float32) + noise * rng.random(
            (n_queries, n_queries), dtype=np.float32
        )
    return lc.eval.evaluate_methods(queries, list(qrels), records, vectors, qrels_spans=qrels)


def costs_of(labels_tokens):
    return pd.DataFrame(
        [
            {"window": 512, "overlap": o, "fraction": 0.0, "n_tokens": 100, "tokens_computed": t,
             "attention": t * 10, "passes": 1, "token_ratio": t / 100, "seconds": 1.0}
            for o, t in labels_tokens.values()
        ],
        index=pd.Index(list(labels_tokens), name="setting"),
    )  # fmt: skip


def test_the_cheapest_setting_that_matches_the_best_is_chosen():
    # "cheap" and "best" give identical rankings; "broken" ranks the relevant chunk low.
    comparison = comparison_of({"best": 0.0, "cheap": 0.0, "broken": 10.0})
    costs = costs_of({"best": (127, 170), "cheap": (0, 120), "broken": (0, 100)})
    table = frontier_table(comparison, costs, n_resamples=500)
    assert table.attrs["chunk_best"] == "cheap"  # a tie in quality goes to the cheaper
    assert table.loc["broken", "chunk_high"] < 0 and not table.loc["broken", "chunk_not_worse"]
    assert table.loc["best", "chunk_vs_best"] == 0 and table.loc["best", "document_not_worse"]
    assert table.loc["broken", "chunk"] < table.loc["best", "chunk"] == pytest.approx(1.0)
    choice = choose_setting({"corpus": table, "tasks": table})
    assert choice["setting"] == "cheap" and choice["holds_everywhere"]
    assert choice["acceptable"] == ["best", "cheap"]
    assert choice["tokens_computed"] == 240 and choice["token_ratio"] == pytest.approx(1.2)


def test_when_no_setting_holds_everywhere_the_one_missing_least_is_chosen():
    good = comparison_of({"a": 0.0, "b": 10.0})
    bad = comparison_of({"a": 10.0, "b": 0.0})
    costs = costs_of({"a": (0, 200), "b": (0, 100)})
    tables = {"one": frontier_table(good, costs, n_resamples=200)}
    assert choose_setting(tables)["setting"] == "a"
    tables["two"] = frontier_table(bad, costs, n_resamples=200)
    choice = choose_setting(tables)
    assert not choice["holds_everywhere"] and choice["acceptable"] == []
    assert choice["setting"] == "b"  # both miss two of four; b is cheaper
    with pytest.raises(KeyError, match="no results for setting"):
        frontier_table(good, costs_of({"c": (0, 1)}))
    with pytest.raises(ValueError, match="tables is empty"):
        choose_setting({})


def test_bad_grids_are_refused(tiny_model):
    with pytest.raises(ValueError, match="settings is empty"):
        encode_settings(tiny_model, {"d": "x"}, [], [])
    twice = [WindowSetting(64, 0, 0.0), WindowSetting(64, 0, 0.0)]
    with pytest.raises(ValueError, match="repeat"):
        encode_settings(tiny_model, {"d": "x"}, [], twice)
    with pytest.raises(KeyError, match="not in documents"):
        encode_settings(
            tiny_model, {}, [{"doc_id": "d", "start": 0, "end": 1}], [WindowSetting(64, 0, 0.0)]
        )


def test_measure_frontier_scores_every_setting_on_the_naive_chunks(tiny_model):
    """The whole frontier in one call, checked piece by piece against direct computations."""
    from lc_utils.studies.frontier import measure_frontier

    other = " ".join(f"Note {i} says colour {i % 5} pairs with shape {i % 3}." for i in range(40))
    documents = {"long": TEXT, "other": other, "short": "A short note about item 3."}
    sentences = {  # each query asks for one sentence of a long document
        "q1": ("long", "Paragraph 5 explains how item 5 relates to the value 65."),
        "q2": ("long", "Paragraph 41 explains how item 6 relates to the value 48."),
        "q3": ("other", "Note 17 says colour 2 pairs with shape 2."),
        "q4": ("short", "A short note about item 3."),
    }
    queries, qrels = {}, {}
    for query_id, (doc_id, sentence) in sentences.items():
        start = documents[doc_id].index(sentence)
        queries[query_id] = sentence.lower().rstrip(".")
        qrels[query_id] = [(doc_id, start, start + len(sentence))]
    task = lc.datasets.RetrievalTask(documents, queries, qrels)
    settings = window_settings(tiny_model, windows=[48, 96], overlap_fractions=[0, 0.25])
    labels = [s.label for s in settings]
    table, comparison = measure_frontier(
        tiny_model, task, settings, chunk_options={"chunk_size": 16}, baseline="96/0",
        n_resamples=200, progress=False,
    )  # fmt: skip

    # One row per setting, in grid order; the comparison holds naive and every setting.
    assert list(table.index) == labels == ["48/0", "48/11", "96/0", "96/23"]
    assert comparison.methods == ["naive", *labels]
    # The chunks are fixed 16-token chunks; naive embeds each alone.
    naive = lc.embed_corpus(
        tiny_model, documents, method="naive", strategy="fixed",
        chunk_options={"chunk_size": 16}, progress=False,
    )  # fmt: skip
    assert [(r["doc_id"], r["start"], r["end"]) for r in comparison.records] == [
        (r["doc_id"], r["start"], r["end"]) for r in naive.records
    ]
    np.testing.assert_allclose(comparison.vectors["naive"], naive.vectors, atol=1e-5)
    # Every setting's vectors are late chunking with that window plan on those chunks.
    for setting in settings:
        for doc_id, text in documents.items():
            rows = [i for i, r in enumerate(comparison.records) if r["doc_id"] == doc_id]
            spans = [(comparison.records[i]["start"], comparison.records[i]["end"]) for i in rows]
            direct = lc.late_chunking(
                tiny_model, text, spans, window=setting.window, overlap=setting.overlap
            )
            np.testing.assert_allclose(comparison.vectors[setting.label][rows], direct, atol=1e-5)
    # Costs are those of encode_settings on the same records; the long documents need several
    # windows of 48, so overlap there computes more tokens.
    run = encode_settings(tiny_model, documents, comparison.records, settings, progress=False)
    for column in ("n_tokens", "tokens_computed", "attention", "passes"):
        assert table[column].tolist() == run.costs[column].tolist(), column
    assert table.loc["48/11", "tokens_computed"] > table.loc["48/0", "tokens_computed"]
    assert table.loc["96/0", "time_ratio"] == 1.0 and (table["time_ratio"] > 0).all()
    # Quality is the comparison's nDCG@10 at both levels, measured from the best setting.
    for level in ("chunk", "document"):
        means = {label: comparison.results[label][level]["ndcg@10"] for label in labels}
        assert table[level].to_dict() == means
        best = table.attrs[f"{level}_best"]
        assert means[best] == max(means.values())
        assert table.loc[best, f"{level}_vs_best"] == 0
        for label in labels:
            assert table.loc[label, f"{level}_vs_best"] == pytest.approx(
                means[label] - means[best], abs=1e-12
            )
            row = table.loc[label]
            assert row[f"{level}_low"] <= row[f"{level}_vs_best"] <= row[f"{level}_high"]
            assert row[f"{level}_not_worse"] == (row[f"{level}_high"] >= 0)
    with pytest.raises(KeyError, match="baseline='64/0' is not a setting"):
        measure_frontier(tiny_model, task, settings[:1], baseline="64/0", progress=False)
