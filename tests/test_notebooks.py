"""Every numbered notebook runs headlessly (papermill) with small parameters, once per test run,
and every check below reads that one execution.

**Pinned metrics.** Each value in ``metrics.json`` must match ``tests/expected/<notebook>.json``
within a tolerance chosen for its kind (below). So a change that moves a result, such as a pooling
change that shifts chunk-level nDCG@10 by 0.02, fails here, and so does a notebook that stops
recording a value.

**Checked cells.** The cells tagged ``nbval-check-output`` (tables of tokens, spans and window
plans in 01–03) must show what ``tests/expected/cells/<notebook>.json`` holds. The comparison is
nbval's own (``IPyNbCell.compare_outputs`` after ``coalesce_streams``, with nbval's default
``skip_compare``: metadata, execution counts, widget ids and images are not compared; the project
has no sanitize file). This replaces a second execution of every notebook under
``pytest --nbval-lax``, which compared the tagged cells of a fresh run with the papermill copy:
comparing this run with a committed earlier run proves the same reproducibility, and also catches
an output that changes from one commit to the next.

The notebooks run on the real all-MiniLM-L6-v2 (from PyPI), offline. On CPU the runs are
deterministic; the tolerances leave room for another machine's float rounding (a near-tie between
two chunks may rank the other way), not for a changed result.

**Refreshing the expected values on purpose** (after a change that is meant to move results)::

    LC_UPDATE_EXPECTED=1 HF_HUB_OFFLINE=1 pytest tests/test_notebooks.py -s -k "pinned or checked"

rewrites ``tests/expected/<notebook>.json`` and ``tests/expected/cells/<notebook>.json`` from this
run and prints every value that changed; review the diff (``git diff tests/expected``) before
committing it. ``LC_NOTEBOOKS=07_chunk_size`` (comma-separated names) runs only those notebooks and
skips the others' tests.

docs/findings.md, "What the default run found", quotes the default (full-parameter) run. Those
metrics are committed under ``tests/expected/full/`` (too slow to re-run in the suite), and
``test_findings_match_the_full_run`` checks every number the section quotes against them. Refresh
them from a default run (``make run``) with::

    python tests/test_notebooks.py --refresh-full outputs/latest

and re-run the full runs and compare them with every committed value (``make verify-findings``)
with::

    python tests/test_notebooks.py --verify-full [--only NOTEBOOK,...]
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = Path(__file__).resolve().parent / "expected"
FULL_RUN = EXPECTED / "full"
UPDATE = os.environ.get("LC_UPDATE_EXPECTED", "") not in ("", "0")
# LC_NOTEBOOKS=06_chunking_strategies,07_chunk_size runs only those (to refresh or debug a few).
ONLY = [name for name in os.environ.get("LC_NOTEBOOKS", "").split(",") if name]

# Small parameters that keep the whole suite to a few minutes on 2 CPU cores. MODEL_NAME stays
# "auto": offline it resolves to the packaged MiniLM, which is what the pinned values are about.
SMALL = {
    "01_chunking": {},
    "02_token_embeddings": {"DOCUMENT_ID": "typesmapping"},
    "03_late_pooling": {},
    "04_naive_vs_late": {"N_DOCUMENTS": 12, "MAX_QUERIES": 80},
    "05_milvus_validation": {"N_DOCUMENTS": 10},
    "06_chunking_strategies": {"N_DOCUMENTS": 10, "MAX_QUERIES": 60},
    "07_chunk_size": {"N_DOCUMENTS": 10, "MAX_QUERIES": 60, "CHUNK_SIZES": [32, 128]},
    "08_windows": {
        "N_DOCUMENTS": 10,
        "MAX_QUERIES": 60,
        "STRATEGIES": ["sentences", "fixed"],
        "CHUNK_SIZES": [64],
    },
    "09_scaling_out": {"N_DOCUMENTS": 6},
}
# Notebooks with a test file of their own (their own small parameters, data and pins); the
# fixture below does not run them a second time.
TESTED_ELSEWHERE = {
    "10_long_documents": "tests/test_paper_notebooks.py",
    "11_paper_benchmarks": "tests/test_paper_notebooks.py",
}

# Tolerances, by the last part of a value's path in metrics.json. Ranking metrics and their
# bootstrap intervals move when a near-tie flips on another machine: 0.005 is a quarter of the
# 0.02 shift that must fail. Counts of queries won or tied move by a flip or two. Everything else
# (cosines, coverages, ratios) is float arithmetic on the same vectors: 1e-4.
RANKING = re.compile(r"^(ndcg|recall|precision|mrr|map)(@\d+)?$|^(mean|low|high|difference)$")
RANKING_ABS = 0.005
WINS = re.compile(r"(better|^ties)$")
WINS_ABS = 2
FLOAT_ABS = 1e-4
# Values that measure the machine, not the method (or name a temporary path or port): checked
# for presence only. Notebook 10's time ratios are timings too (its choice is made on tokens).
VOLATILE = re.compile(r"per_second|seconds$|time_ratio$|time_vs_baseline$|ray_address$|(^|/)uri$")

pytestmark = pytest.mark.slow


def notebook_names() -> list[str]:
    from lc_utils.run import runner

    return [p.stem for p in runner.find_notebooks(NOTEBOOKS)]


class Executions:
    """Each notebook executed once, when a test first asks for it, into one folder, so that
    ``-k 04_naive`` runs only notebook 04. A failure is kept and reported by each test that reads
    the notebook. (``make test`` spreads the suite over processes, each taking every test of one
    notebook at a time: ``xdist_scope`` in tests/conftest.py.)"""

    def __init__(self, out: Path) -> None:
        from lc_utils.run import runner

        self.out = out
        self.paths = {path.stem: path for path in runner.find_notebooks(NOTEBOOKS)}
        self.results: dict[str, object] = {}

    def result(self, name: str):
        """The papermill result of ``name`` (or the exception it raised), run on first use."""
        from lc_utils.run import runner

        if name not in self.results:
            path = self.paths[name]
            declared = runner.notebook_parameters(path)
            params = {k: v for k, v in SMALL.get(name, {}).items() if k in declared}
            try:
                self.results[name] = runner.execute_notebook(
                    path, self.out, params, progress_bar=False
                )
            except Exception as error:  # noqa: BLE001 - reported by the notebook's own tests
                self.results[name] = error
        return self.results[name]


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Executions:
    os.environ["HF_HUB_OFFLINE"] = "1"
    return Executions(tmp_path_factory.mktemp("notebooks"))


def metrics_of(executed: Executions, name: str) -> dict:
    if ONLY and name not in ONLY:
        pytest.skip(f"LC_NOTEBOOKS={','.join(ONLY)} leaves {name} out")
    if name not in executed.paths or name in TESTED_ELSEWHERE:
        pytest.fail(f"notebook {name} does not exist")
    result = executed.result(name)
    if isinstance(result, Exception):
        pytest.fail(f"notebook {name} failed: {result}")
    return json.loads((executed.out / name / "metrics.json").read_text())


# ---------------------------------------------------------------------------------------------
# Comparing a run with the pinned values
# ---------------------------------------------------------------------------------------------


def flatten(value, path: str = "") -> dict[str, object]:
    """``{"a/b/0": leaf}`` for every leaf of nested dicts and lists."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {path: value}
    flat: dict[str, object] = {}
    for key, item in items:
        flat.update(flatten(item, f"{path}/{key}" if path else str(key)))
    return flat


def tolerance(path: str, expected) -> float | None:
    """Absolute tolerance for a number at ``path``; None means "must be equal"."""
    last = path.rsplit("/", 1)[-1]
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        return None
    if RANKING.search(last):
        return RANKING_ABS
    if isinstance(expected, int):
        return WINS_ABS if WINS.search(last) else None
    return FLOAT_ABS


def differences(expected: dict, actual: dict) -> list[str]:
    """One line per value that is missing, new, or outside its tolerance."""
    want, got = flatten(expected), flatten(actual)
    lines = [f"missing {path} (expected {want[path]!r})" for path in want if path not in got]
    lines += [f"new     {path} = {got[path]!r}" for path in got if path not in want]
    for path in want.keys() & got.keys():
        a, b = want[path], got[path]
        if VOLATILE.search(path):
            continue
        allowed = tolerance(path, a)
        numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
        if allowed is None or not numbers:
            same = a == b
        else:
            same = math.isclose(a, b, abs_tol=allowed, rel_tol=0)
        if not same:
            within = f" (tolerance {allowed})" if allowed is not None else ""
            lines.append(f"changed {path}: expected {a!r}, got {b!r}{within}")
    return sorted(lines, key=lambda line: line.split(" ", 2)[-1])


def refresh(name: str, actual: dict, expected_file: Path) -> None:
    old = json.loads(expected_file.read_text()) if expected_file.exists() else {}
    changes = differences(old, actual)
    expected_file.parent.mkdir(parents=True, exist_ok=True)
    expected_file.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    print(f"\n{expected_file.relative_to(ROOT)}: {len(changes)} change(s)")
    for line in changes:
        print(f"  {line}")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_pinned_metrics(executed, name):
    actual = metrics_of(executed, name)
    expected_file = EXPECTED / f"{name}.json"
    if UPDATE:
        refresh(name, actual, expected_file)
        return
    if not expected_file.exists():
        pytest.fail(
            f"{expected_file.relative_to(ROOT)} does not exist; pin this notebook's metrics with "
            "LC_UPDATE_EXPECTED=1 pytest tests/test_notebooks.py -s -k pinned"
        )
    changes = differences(json.loads(expected_file.read_text()), actual)
    assert not changes, (
        f"{name}: {len(changes)} recorded value(s) differ from {expected_file.name}; if the change "
        "is intended, refresh with LC_UPDATE_EXPECTED=1 (see this file's docstring)\n  "
        + "\n  ".join(changes[:60])
    )


def test_every_notebook_has_small_parameters_and_pinned_metrics():
    from lc_utils.run import runner

    names = [name for name in notebook_names() if name not in TESTED_ELSEWHERE]
    assert sorted(SMALL) == sorted(names), (
        f"SMALL lists {sorted(SMALL)} but the notebooks are {names}; give every notebook small "
        "parameters here (and pin its metrics)"
    )
    for path in runner.find_notebooks(NOTEBOOKS):
        if path.stem in TESTED_ELSEWHERE:
            continue
        unknown = set(SMALL[path.stem]) - set(runner.notebook_parameters(path))
        assert not unknown, f"{path.name} does not declare {unknown}"
        assert (EXPECTED / f"{path.stem}.json").exists(), f"no pinned metrics for {path.stem}"


def test_the_pins_catch_a_shift_of_two_hundredths():
    """The comparison itself: a 0.02 move in a chunk-level nDCG@10 is a failure."""
    expected = {"retrieval": {"late": {"chunk": {"ndcg@10": 0.5, "num_queries": 26}}}}
    moved = {"retrieval": {"late": {"chunk": {"ndcg@10": 0.52, "num_queries": 26}}}}
    assert differences(expected, moved) == [
        "changed retrieval/late/chunk/ndcg@10: expected 0.5, got 0.52 (tolerance 0.005)"
    ]
    noise = {"retrieval": {"late": {"chunk": {"ndcg@10": 0.5004, "num_queries": 26}}}}
    assert differences(expected, noise) == []
    assert differences(expected, {"retrieval": {}})[0].startswith("missing")
    assert differences({"a": 1.0}, {"a": 1.0, "b": True}) == ["new     b = True"]
    assert differences({"ingest_chunks_per_second": 10.0}, {"ingest_chunks_per_second": 99.0}) == []


# ---------------------------------------------------------------------------------------------
# What each notebook claims, checked on the values behind it
# ---------------------------------------------------------------------------------------------


def check_summary(m: dict) -> None:
    summary = m["summary"]
    assert set(summary) == {"claim", "held", "headline", "figure"}
    # Whether the claim held is a finding, pinned with the other metrics; here only its type.
    assert isinstance(summary["held"], bool) and summary["claim"].endswith(".")
    assert isinstance(summary["headline"]["value"], int | float)
    assert summary["headline"]["label"]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_summary_follows_the_report_convention(executed, name):
    m = metrics_of(executed, name)
    check_summary(m)
    figure = m["summary"]["figure"]
    assert figure is None or (executed.out / name / figure).is_file(), f"{name}: no figure {figure}"


def test_01_chunking(executed):
    m = metrics_of(executed, "01_chunking")
    assert m["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert set(m["chunks"]) == {"sentences", "fixed", "paragraphs"}
    # Every token is counted in exactly one chunk, for every strategy.
    assert m["tokens_assigned"] == {s: m["n_tokens"] for s in m["chunks"]}
    # Fixed chunks hold exactly 64 tokens, except a shorter last one.
    assert m["max_tokens_per_chunk"]["fixed"] == 64
    assert m["chunks"]["fixed"] == -(-m["n_tokens"] // 64)
    # The blog's word-index spans wander away from the model tokens and pool the wrong ones.
    assert m["word_index_drift_max"] - m["word_index_drift_min"] > 20
    assert m["word_index_mean_hit_rate"] < 0.7
    assert m["word_index_share_mostly_wrong"] > 0.25


def test_02_token_embeddings(executed):
    m = metrics_of(executed, "02_token_embeddings")
    # The default plan: MiniLM's trained length (256 positions, 254 for text), overlap 254 // 16.
    assert m["window"] == 256 and m["overlap"] == 15
    assert m["truncation_coverage"] < 0.2
    assert m["overlap_passes"] > m["blind_passes"] > 1
    assert 1.03 < m["overlap_cost_ratio"] < 1.1
    assert m["cosine_blind_vs_overlap_near_boundary"] < m["cosine_blind_vs_overlap_far"]
    assert m["preface_change_near"] > m["preface_change_far"] > 0


def test_03_late_pooling(executed):
    m = metrics_of(executed, "03_late_pooling")
    assert m["max_abs_difference_vs_manual"] < 1e-5
    assert m["special_tokens_cosine_first_chunk"] < 0.9999
    assert m["mean_inter_chunk_cosine_late"] > m["mean_inter_chunk_cosine_naive"] + 0.3


def test_04_naive_vs_late(executed):
    m = metrics_of(executed, "04_naive_vs_late")
    # The blog's claim, done right: every chunk after the one naming the release scores higher
    # against the release query with late chunking.
    late, naive = m["release_late_cosine"], m["release_naive_cosine"]
    assert all(a > b for a, b in zip(late[1:], naive[1:], strict=True))
    gains = [a - b for a, b in zip(late[1:], naive[1:], strict=True)]
    assert m["release_mean_gain_after_first"] == pytest.approx(sum(gains) / len(gains), abs=1e-5)
    assert m["n_queries"] >= 20
    for method in ("naive", "late"):
        for level in ("chunk", "document"):
            scores = m["retrieval"][method][level]
            assert 0 < scores["ndcg@10"] <= 1 and scores["num_queries"] >= 20
    chunk = m["late_minus_naive_ndcg10"]["chunk"]
    expected_mean = (
        m["retrieval"]["late"]["chunk"]["ndcg@10"] - m["retrieval"]["naive"]["chunk"]["ndcg@10"]
    )
    assert chunk["mean"] == pytest.approx(expected_mean, abs=1e-5)
    assert chunk["low"] <= chunk["mean"] <= chunk["high"]


def test_05_milvus_validation(executed):
    m = metrics_of(executed, "05_milvus_validation")
    assert m["milvus_uri_kind"] == "lite" and m["index"] == "FLAT"
    # The exact index returns the brute-force top-k for every query, with the same scores.
    assert m["agreement_at_k"]["FLAT"] == {"late": 1.0, "naive": 1.0}
    assert max(m["max_abs_score_diff"]["FLAT"].values()) < 1e-4
    # HNSW is measured, not assumed; on a corpus this small it must still be nearly exact.
    assert min(m["agreement_at_k"]["HNSW"].values()) >= 0.9
    # The headline measures the claim: the FLAT index's agreement, the lower of the two methods.
    assert m["summary"]["headline"]["value"] == min(m["agreement_at_k"]["FLAT"].values())
    assert m["summary"]["headline"]["label"].startswith("FLAT agreement@10")
    assert m["rows"] > 100
    assert m["filtered_agreement_at_k"] == 1.0


def test_09_scaling_out(executed):
    m = metrics_of(executed, "09_scaling_out")
    assert m["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert m["documents"] == 6
    # Ray's rows and vectors equal single-process embed_corpus's, and a re-run writes nothing.
    assert m["max_abs_difference"] <= 1e-5
    assert m["rows_equal"] is True
    assert m["rerun"]["embedded"] == 0 and m["rerun"]["chunks"] == 0
    assert m["rerun"]["already_stored"] == m["run"]["embedded"] == 6
    assert m["stored_chunks"] == m["run"]["chunks"] > 0
    assert m["summary"]["headline"]["value"] == pytest.approx(m["max_abs_difference"])


def test_06_chunking_strategies(executed):
    m = metrics_of(executed, "06_chunking_strategies")
    assert m["chunkings"] == ["sentences", "fixed-64", "paragraphs", "semantic"]
    assert (
        m["chunks"]["fixed-64"]["longest_tokens"] <= 66
    )  # 64 tokens, give or take a re-tokenization
    # One truncated vector per document cannot see most of a long document, and the best chunk
    # finds a document more often than that one vector does.
    assert 0 < m["document_vector_token_coverage"] < 0.9
    document_vector = m["document_vector"]["ndcg@10"]
    for label in m["chunkings"]:
        for method in ("naive", "late"):
            assert m["retrieval"][label][method]["document"]["ndcg@10"] > document_vector
        gain = m["late_minus_naive_ndcg10_by_kind"]["chunk"][label]
        beats = gain["title"] > 0 and gain["title"] > gain["all"]
        assert m["title_gain_beats_average"][label] == beats
        if label != "semantic":  # held for these chunkings in every run; semantic is measured
            assert beats, label
        within = m["within_document_cosine"][label]
        assert within["late"] > within["naive"]
    assert m["n_queries"] >= 20
    # The headline is the claim's narrowest case: the smallest margin of a best chunk over the
    # document vector, over chunkings and methods, with its paired interval.
    margins = {
        (label, method): m["retrieval"][label][method]["document"]["ndcg@10"] - document_vector
        for label in m["chunkings"]
        for method in ("naive", "late")
    }
    label, method = min(margins, key=margins.get)
    headline = m["summary"]["headline"]
    assert headline["value"] == pytest.approx(margins[label, method], abs=1e-5)
    assert headline["label"].endswith(f"({method}, {label})")
    assert headline["low"] <= headline["value"] <= headline["high"]
    if method == "late":  # the same bootstrap as the recorded late margins
        late = m["best_chunk_minus_document_vector_ndcg10"][label]
        assert (headline["low"], headline["high"]) == (late["low"], late["high"])


def test_07_chunk_size(executed):
    m = metrics_of(executed, "07_chunk_size")
    assert m["chunk_sizes"] == [32, 128]
    chunk = m["late_minus_naive_ndcg10"]["chunk"]
    assert set(chunk) == {"32", "128"}
    assert chunk["32"]["mean"] > chunk["128"]["mean"]
    for size in ("32", "128"):
        results = m["retrieval"][f"fixed-{size}"]
        difference = results["late"]["chunk"]["ndcg@10"] - results["naive"]["chunk"]["ndcg@10"]
        assert chunk[size]["mean"] == pytest.approx(difference, abs=1e-5)


def test_08_windows(executed):
    m = metrics_of(executed, "08_windows")
    assert m["n_long_documents"] >= 1 and m["window"] == 256 and m["overlap"] == 15
    tokens = m["tokens_computed"]
    assert m["cost_ratio"] == pytest.approx(tokens["overlap"] / tokens["compared"], rel=1e-5)
    assert m["cost_ratio"] > 1
    # Window placement changes the late vectors of long documents.
    assert max(m["cosine_between_plans"].values()) < 0.99
    for label, by_level in m["overlap_minus_compared_ndcg10"].items():
        for level, d in by_level.items():
            assert d["low"] <= d["mean"] <= d["high"], (label, level)


@pytest.mark.server
def test_05_against_a_real_milvus_server(tmp_path):
    """The same notebook, unchanged, against a Milvus server (scripts/test_server.sh runs it)."""
    from lc_utils.run import runner

    uri = os.environ.get("LC_MILVUS_SERVER_URI")
    if not uri:
        pytest.skip("LC_MILVUS_SERVER_URI is not set; run `bash scripts/test_server.sh`")
    os.environ["HF_HUB_OFFLINE"] = "1"
    path = NOTEBOOKS / "05_milvus_validation.ipynb"
    params = {**SMALL["05_milvus_validation"], "MILVUS_URI": uri, "COLLECTION": "nb05_server"}
    runner.execute_notebook(path, tmp_path, params, progress_bar=False)
    m = json.loads((tmp_path / path.stem / "metrics.json").read_text())
    assert m["milvus_uri_kind"] == "server"
    assert m["agreement_at_k"]["FLAT"] == {"late": 1.0, "naive": 1.0}
    assert m["filtered_agreement_at_k"] == 1.0
    check_summary(m)


# ---------------------------------------------------------------------------------------------
# The cells tagged nbval-check-output, against their committed outputs
# ---------------------------------------------------------------------------------------------

CELLS = EXPECTED / "cells"
CHECK_TAG = "nbval-check-output"
# nbval 0.11's skip_compare without --nbdime (IPyNbFile.__init__): what nbval leaves out.
SKIP_COMPARE = (
    "metadata",
    "traceback",
    "prompt_number",
    "output_type",
    "name",
    "execution_count",
    "application/vnd.jupyter.widget-view+json",
    "image/png",
    "image/jpeg",
)


def notebooks_with_checked_cells() -> list[str]:
    import nbformat

    return [
        path.stem
        for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
        if any(CHECK_TAG in c.metadata.get("tags", []) for c in nbformat.read(path, 4).cells)
    ]


def checked_cells(executed_notebook: Path) -> list[dict]:
    """The tagged cells of an executed notebook: their first source line (to name them) and their
    outputs, without what nbval does not compare, so that the committed file stays small."""
    import nbformat

    cells = []
    for cell in nbformat.read(executed_notebook, 4).cells:
        if CHECK_TAG not in cell.metadata.get("tags", []):
            continue
        outputs = []
        for output in cell.outputs:
            kept = {k: v for k, v in output.items() if k not in ("metadata", "execution_count")}
            if "data" in kept:
                kept["data"] = {k: v for k, v in kept["data"].items() if k not in SKIP_COMPARE}
            outputs.append(kept)
        first_line = next((line for line in cell.source.splitlines() if line.strip()), "")
        cells.append({"first_line": first_line, "outputs": outputs})
    return cells


class NbvalComparison:
    """nbval's comparison of one cell's outputs, without a kernel or a pytest item: the methods
    are nbval's own (``IPyNbCell``), given the few attributes they read."""

    def __init__(self) -> None:
        from nbval import plugin

        self.parent = SimpleNamespace(skip_compare=SKIP_COMPARE, sanitize_patterns={})
        self.colors = plugin.nocolors
        self._plugin = plugin

    def differences(self, expected: list[dict], actual: list[dict]) -> list[str]:
        """nbval's account of how ``actual`` differs from ``expected`` (empty: they agree)."""
        import nbformat

        plugin = self._plugin
        reference = plugin.coalesce_streams([nbformat.from_dict(o) for o in expected])
        test = plugin.coalesce_streams([nbformat.from_dict(o) for o in actual])
        if plugin.IPyNbCell.compare_outputs(self, test, reference):
            return []
        return self.comparison_traceback

    def format_output_compare(self, key, left, right) -> None:
        # nbval's own method asks pytest for an assertion diff; a plain one is enough here.
        self.comparison_traceback += [f" mismatch {key!r}", f"  expected: {left!r}"]
        self.comparison_traceback += [f"  got:      {right!r}"]

    def sanitize(self, text):
        return self._plugin.IPyNbCell.sanitize(self, text)


def test_the_cell_comparison_follows_nbval():
    """Streams are joined before comparing, and what nbval skips (images, execution counts,
    metadata) may differ; a changed character in a table may not."""
    comparison = NbvalComparison()
    table = {"output_type": "execute_result", "execution_count": 3, "metadata": {},
             "data": {"text/plain": "   n\n0  52", "image/png": "AAAA"}}  # fmt: skip
    expected = [{"output_type": "stream", "name": "stdout", "text": "tokens [52, 70)\n"}, table]
    split = [
        {"output_type": "stream", "name": "stdout", "text": "tokens [52, "},
        {"output_type": "stream", "name": "stdout", "text": "70)\n"},
        {**table, "execution_count": 9, "data": {**table["data"], "image/png": "BBBB"}},
    ]
    assert comparison.differences(expected, split) == []
    moved = [expected[0], {**table, "data": {"text/plain": "   n\n0  53"}}]
    assert any("text/plain" in line for line in comparison.differences(expected, moved))
    assert comparison.differences(expected, expected[:1])  # an output went missing


@pytest.mark.parametrize("name", notebooks_with_checked_cells())
def test_checked_cells_match_their_expected_outputs(executed, name):
    """What ``pytest --nbval-lax`` checked, on the one papermill run (this file's docstring)."""
    metrics_of(executed, name)  # skips or fails as the pins do when the notebook did not run
    actual = checked_cells(executed.out / f"{name}.ipynb")
    expected_file = CELLS / f"{name}.json"
    if UPDATE:
        old = json.loads(expected_file.read_text()) if expected_file.exists() else None
        expected_file.parent.mkdir(parents=True, exist_ok=True)
        expected_file.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
        print(
            f"\n{expected_file.relative_to(ROOT)}: {'unchanged' if old == actual else 'rewritten'}"
        )
        return
    if not expected_file.exists():
        pytest.fail(
            f"{expected_file.relative_to(ROOT)} does not exist; record the tagged cells' outputs "
            "with LC_UPDATE_EXPECTED=1 pytest tests/test_notebooks.py -s -k checked"
        )
    expected = json.loads(expected_file.read_text())
    assert [c["first_line"] for c in actual] == [c["first_line"] for c in expected], (
        f"{name}: the cells tagged {CHECK_TAG} are not those in {expected_file.name}; refresh "
        "it with LC_UPDATE_EXPECTED=1 (see this file's docstring)"
    )
    comparison = NbvalComparison()
    for position, (want, got) in enumerate(zip(expected, actual, strict=True)):
        problems = comparison.differences(want["outputs"], got["outputs"])
        assert not problems, (
            f"{name}: tagged cell {position} ({want['first_line']!r}) shows other outputs than "
            f"{expected_file.name}:\n" + "\n".join(problems)
        )


# ---------------------------------------------------------------------------------------------
# docs/findings.md, against the committed metrics of the default run
# ---------------------------------------------------------------------------------------------

FINDINGS_PAGE = ROOT / "docs" / "findings.md"

# Every number that docs/findings.md's "What the default run found" quotes: (text on the page,
# notebook, path in that notebook's full-run metrics.json, how it is written). Formats: "+.3f" a
# signed difference, ".3f" / ".4f" a value, "interval" the "[low, high]" of a difference at 3
# decimals.
S = "06_chunking_strategies"
FINDINGS: list[tuple[str, str, str, str]] = [
    ("+0.373", "04_naive_vs_late", "release_mean_gain_after_first", "+.3f"),
    *[
        (mean, "07_chunk_size", f"late_minus_naive_ndcg10/chunk/{size}/mean", "+.3f")
        for mean, size in [("+0.102", 16), ("+0.058", 64), ("+0.014", 128), ("+0.007", 256)]
    ],
    ("+0.102", "07_chunk_size", "late_minus_naive_ndcg10/chunk/32/mean", "+.3f"),
    ("[0.078, 0.126]", "07_chunk_size", "late_minus_naive_ndcg10/chunk/16", "interval"),
    ("[0.077, 0.126]", "07_chunk_size", "late_minus_naive_ndcg10/chunk/32", "interval"),
    ("[0.033, 0.084]", "07_chunk_size", "late_minus_naive_ndcg10/chunk/64", "interval"),
    ("[−0.010, 0.038]", "07_chunk_size", "late_minus_naive_ndcg10/chunk/128", "interval"),
    ("[−0.013, 0.026]", "07_chunk_size", "late_minus_naive_ndcg10/chunk/256", "interval"),
    ("+0.003", "07_chunk_size", "late_minus_naive_ndcg10/document/32/mean", "+.3f"),
    ("+0.015", "07_chunk_size", "late_minus_naive_ndcg10/document/64/mean", "+.3f"),
    *[
        (mean, S, f"late_minus_naive_ndcg10/{label}/chunk/mean", "+.3f")
        for mean, label in [
            ("+0.042", "sentences"),
            ("+0.058", "fixed-64"),
            ("+0.110", "paragraphs"),
            ("+0.051", "semantic"),
        ]
    ],
    ("[−0.055, −0.014]", S, "late_minus_naive_ndcg10/paragraphs/document", "interval"),
    ("−0.033", S, "late_minus_naive_ndcg10/paragraphs/document/mean", "+.3f"),
    ("+0.029", S, "late_minus_naive_ndcg10/semantic/document/mean", "+.3f"),
    ("[0.008, 0.051]", S, "late_minus_naive_ndcg10/semantic/document", "interval"),
    ("146", S, "chunks/semantic/mean_tokens", ".0f"),
    ("141", S, "chunks/semantic/truncated_by_naive", "d"),
    ("880", S, "chunks/semantic/n_chunks", "d"),
    ("0.650", S, "document_vector/ndcg@10", ".3f"),
    ("14%", S, "document_vector_token_coverage", ".0%"),
    ("+0.173", S, "late_minus_naive_ndcg10_by_kind/chunk/sentences/title", "+.3f"),
    ("−0.012", S, "late_minus_naive_ndcg10_by_kind/chunk/sentences/section", "+.3f"),
    ("+0.005", S, "late_minus_naive_ndcg10_by_kind/chunk/sentences/entry", "+.3f"),
    ("+0.042", S, "late_minus_naive_ndcg10_by_kind/chunk/sentences/all", "+.3f"),
    # The committed run before the window default changed (512 positions, overlap 127).
    ("−0.005", "former_window/07_chunk_size", "late_minus_naive_ndcg10/chunk/64/mean", "+.3f"),
    ("−0.051", "former_window/07_chunk_size", "late_minus_naive_ndcg10/chunk/256/mean", "+.3f"),
    ("−0.027", "former_window/07_chunk_size", "late_minus_naive_ndcg10/document/256/mean", "+.3f"),
    ("1.06", "08_windows", "cost_ratio", ".2f"),
    ("+0.021", "08_windows", "overlap_minus_compared_ndcg10/fixed-64/document/mean", "+.3f"),
    ("1.0000", "05_milvus_validation", "agreement_at_k/HNSW/late", ".4f"),
]


def full_run_value(notebook: str, path: str):
    metrics = json.loads((FULL_RUN / f"{notebook}.json").read_text())
    return flatten(metrics)[path]


def written(value, style: str, digits: int = 3) -> str:
    """How docs/findings.md writes a value. ``"interval"``: ``[0.034, −0.021]``;
    ``"signed interval"``: ``[+0.012, −0.049]``; ``"abs .3f"``: the magnitude ("drops by
    0.047"); ``"points ..."``: a fraction in percent points with two decimals (nDCG as the paper
    prints it); any other style is a format spec (``"+.3f"``, ``".0%"``)."""
    if style.startswith("abs "):
        return written(abs(value), style.removeprefix("abs "), digits)
    if style.startswith("points "):
        scaled = tuple(100 * v for v in value) if isinstance(value, tuple) else 100 * value
        return written(scaled, style.removeprefix("points "), digits=2)
    if style in ("interval", "signed interval"):
        low, high = value
        text = f"[{low:+.{digits}f}, {high:+.{digits}f}]".replace("-", "−")
        return text if style == "signed interval" else text.replace("+", "")
    return f"{value:{style}}".replace("-", "−")


def findings_section(heading: str) -> str:
    """The text of docs/findings.md under ``## heading``, up to the next ``## `` heading."""
    text = FINDINGS_PAGE.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/findings.md has no '## {heading}' section"
    return match.group(0)


def check_quotes(section: str, findings, allowed: str = "") -> None:
    """Each ``(quoted, run, path, style)`` equals the committed run's value written in ``style``
    and appears in ``section``; and ``section`` quotes no number (two or more decimals) that
    neither ``findings`` nor ``allowed`` (cited figures) holds."""
    for quoted, notebook, path, style in findings:
        if style.endswith("interval"):
            value = (
                full_run_value(notebook, f"{path}/low"),
                full_run_value(notebook, f"{path}/high"),
            )
        else:
            value = full_run_value(notebook, path)
        assert written(value, style) == quoted, (
            f"{notebook} {path} is {value}, docs/findings.md says {quoted}"
        )
        assert quoted in section, f"docs/findings.md no longer quotes {quoted} ({notebook} {path})"
    pinned = " ".join(quoted for quoted, *_ in findings) + " " + allowed
    for number in re.findall(r"[+−-]?\d+\.\d{2,}", section):
        assert number.lstrip("+−-") in pinned, (
            f"docs/findings.md quotes {number}, which no test pins"
        )


@pytest.mark.skipif(not FINDINGS, reason="docs/findings.md quotes no number yet")
def test_findings_match_the_full_run():
    check_quotes(findings_section("What the default run found"), FINDINGS)


# ---------------------------------------------------------------------------------------------
# make verify-findings: re-run the full runs and compare them with tests/expected/full/
# ---------------------------------------------------------------------------------------------

# The runs behind tests/expected/full/ (docs/findings.md gives each command): the runner's
# arguments, and the committed file each notebook's metrics.json is compared with.
DEFAULT_RUN_PINS = ["04_naive_vs_late", "05_milvus_validation", "06_chunking_strategies"]
DEFAULT_RUN_PINS += ["07_chunk_size", "08_windows", "11_paper_benchmarks"]
FULL_RUNS: dict[str, tuple[list[str], dict[str, str]]] = {
    "default": ([], {name: f"{name}.json" for name in DEFAULT_RUN_PINS}),
    "needles": (
        ["--only", "10", "-p", "DOCUMENTS_PER_DEPTH", "2"],
        {"10_long_documents": "10_long_documents.json"},
    ),
    "frontier": (
        ["--only", "10", "-p", "PYDOC_DOCUMENTS", "24", "-p", "LENGTHS", "[1024]",
         "-p", "FRONTIER_LENGTHS", "[1024]", "-p", "DOCUMENTS_PER_DEPTH", "2"],
        {"10_long_documents": "10_frontier_evidence.json"},
    ),
}  # fmt: skip
# Committed runs that no command makes again, with the reason.
NOT_RERUN = {
    "former_window/07_chunk_size.json": "the default run before the window default changed "
    "(512 positions, overlap 127); kept for the comparison docs/findings.md quotes",
}


def test_verify_findings_covers_every_committed_full_run():
    committed = {p.relative_to(FULL_RUN).as_posix() for p in FULL_RUN.rglob("*.json")}
    covered = {file for _, pins in FULL_RUNS.values() for file in pins.values()}
    assert committed == covered | set(NOT_RERUN), (
        f"tests/expected/full/ holds {sorted(committed)}, but FULL_RUNS and NOT_RERUN name "
        f"{sorted(covered | set(NOT_RERUN))}; say which run makes each committed file"
    )
    assert all((NOTEBOOKS / f"{stem}.ipynb").is_file() for _, p in FULL_RUNS.values() for stem in p)


def verify_full(only: list[str], output_root: Path) -> int:
    """Run each full run (``FULL_RUNS``) into ``output_root/<run>/`` and print, for every
    committed file, the values outside their tolerance. ``only``: committed file stems
    (``07_chunk_size``, ``10_frontier_evidence``) to limit it to. Returns 0 when all agree."""
    wanted = {f: stem for _, pins in FULL_RUNS.values() for stem, f in pins.items()}
    unknown = [name for name in only if f"{name}.json" not in wanted]
    if unknown:
        print(f"--only {','.join(unknown)}: no such full run; choose from "
              f"{', '.join(sorted(f.removesuffix('.json') for f in wanted))}")  # fmt: skip
        return 2
    env = dict(os.environ, HF_HUB_OFFLINE="1")  # the pins are about the packaged MiniLM
    compared, failed = [], []
    for run_name, (arguments, pins) in FULL_RUNS.items():
        pins = {s: f for s, f in pins.items() if not only or f.removesuffix(".json") in only}
        if not pins:
            continue
        command = [sys.executable, "-m", "lc_utils.run", "--output-root", str(output_root),
                   "--run-name", run_name, *arguments]  # fmt: skip
        if not arguments:  # the default run: only the notebooks that have pins, when limited
            command += ["--only", ",".join(s.split("_")[0] for s in pins)] if only else []
        print(f"\n== {run_name}: {' '.join(command[1:])}", flush=True)
        status = subprocess.run(command, cwd=ROOT, env=env).returncode
        if status:
            failed.append(f"run {run_name} exited with {status}")
        for stem, file in pins.items():
            produced = output_root / run_name / stem / "metrics.json"
            if not produced.is_file():
                failed.append(f"{file}: run {run_name} wrote no {stem}/metrics.json")
                continue
            changes = differences(
                json.loads((FULL_RUN / file).read_text()), json.loads(produced.read_text())
            )
            compared.append((file, run_name, changes))
    print("\n== tests/expected/full/ against this run (tolerances: tests/test_notebooks.py)")
    for file, run_name, changes in compared:
        print(f"{file} (run {run_name}): {'agrees' if not changes else f'{len(changes)} differ'}")
        for line in changes:
            print(f"  {line}")
    for file, reason in NOT_RERUN.items():
        if not only:
            print(f"{file}: not re-run, {reason}")
    for line in failed:
        print(f"FAILED: {line}")
    differing = sum(bool(changes) for _, _, changes in compared)
    print(f"{len(compared) - differing} of {len(compared)} committed full runs agree; runs are "
          f"in {output_root}")  # fmt: skip
    return 1 if differing or failed else 0


def main(argv: list[str]) -> int:
    """``python tests/test_notebooks.py --refresh-full RUN_DIR``: pin a default run's metrics;
    ``--verify-full [--only NAME,...]``: re-run the full runs and compare (make verify-findings).
    """
    if argv[:1] == ["--verify-full"]:
        only = (
            [n for arg in argv[2:] for n in arg.split(",") if n] if argv[1:2] == ["--only"] else []
        )
        if len(argv) > 1 and not only:
            print(main.__doc__)
            return 2
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return verify_full(only, ROOT / "outputs" / "verify-findings" / stamp)
    if len(argv) != 2 or argv[0] != "--refresh-full":
        print(__doc__)
        return 2
    run = Path(argv[1])
    for name in sorted(SMALL):
        source = run / name / "metrics.json"
        if not source.exists():
            print(f"{source} does not exist; skipped")
            continue
        refresh(name, json.loads(source.read_text()), FULL_RUN / f"{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
