"""Tests for the one-command runner (`lc_utils.run`) and the notebook output helpers
(`lc_utils.outputs`).

The runner is exercised on tiny throwaway notebooks written into a temporary directory, so these
tests do not depend on the real walk-through notebooks or on any model. Tests that start a
Jupyter kernel through papermill are marked ``slow``; they need the ``lc-utils`` kernelspec that
``make venv`` installs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest

from lc_utils import outputs, progress
from lc_utils.run import parameters, report, runner

KERNELSPEC = {"name": "lc-utils", "display_name": "Python (lc-utils)", "language": "python"}


def make_notebook(
    directory: Path, name: str, parameters: str | None, cells: list[str], title: str = ""
) -> Path:
    """Write a notebook: a markdown title, an optional ``parameters`` cell, then code cells."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.cells.append(nbformat.v4.new_markdown_cell(f"# {title or name}"))
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        notebook.cells.append(cell)
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    nbformat.write(notebook, path)
    return path


# A notebook that records what it received: its parameters, OUTPUT_DIR, working directory and
# the environment variables the runner promises, plus one figure.
RECORDER_PARAMETERS = """\
MODEL_NAME = "auto"  # the embedding model
CHUNK_SIZE = 64
SEED = 0
TOKEN = ""
OUTPUT_DIR = "../outputs/interactive/01_recorder"
"""
RECORDER_CELLS = [
    "import os\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "from lc_utils import outputs",
    "outputs.set_seed(SEED)\n"
    "fig, ax = plt.subplots()\nax.plot([0, 1, 2], [0, 1, 4])\n"
    "ax.set_title('Squares')\nax.set_xlabel('x')\nax.set_ylabel('x squared')\n"
    "outputs.save_figure(fig, OUTPUT_DIR, 'squares')",
    "outputs.save_metrics({\n"
    "    'model': 'tiny-test-model',\n"
    "    'chunk_size': CHUNK_SIZE,\n"
    "    'token': TOKEN,\n"
    "    'output_dir': OUTPUT_DIR,\n"
    "    'cwd': os.getcwd(),\n"
    "    'hf_progress_bars_disabled': os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS'),\n"
    "    'tokenizers_parallelism': os.environ.get('TOKENIZERS_PARALLELISM'),\n"
    "    'scores': {'late': 0.91234567, 'naive': 0.8},\n"
    "    'per_query': [{'query': 'q1', 'rank': 1}, {'query': 'q2', 'rank': 3}],\n"
    "    'summary': {'claim': 'Squares grow.', 'held': 4 > 1,\n"
    "                'headline': {'label': 'largest square', 'value': 4},\n"
    "                'figure': 'squares.png'},\n"
    "}, OUTPUT_DIR)",
]
SECOND_PARAMETERS = 'SEED = 0\nMILVUS_URI = "milvus.db"\nOUTPUT_DIR = "x"\n'
SECOND_CELLS = [
    "from lc_utils import outputs\n"
    "outputs.save_metrics({'saw_chunk_size': 'CHUNK_SIZE' in globals(), 'seed': SEED,\n"
    "                      'milvus_uri': MILVUS_URI}, OUTPUT_DIR)",
]


@pytest.fixture()
def notebooks_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "notebooks"
    make_notebook(directory, "01_recorder.ipynb", RECORDER_PARAMETERS, RECORDER_CELLS)
    make_notebook(directory, "02_second.ipynb", SECOND_PARAMETERS, SECOND_CELLS)
    return directory


# --------------------------------------------------------------------------------------------
# Finding notebooks, parsing and validating parameters (no kernel needed)


def test_find_notebooks_keeps_numbered_ones_in_run_order(tmp_path: Path) -> None:
    for name in ["04_d", "03a_inserted", "03_c", "01_a", "scratch", "1_short", "Untitled"]:
        make_notebook(tmp_path, f"{name}.ipynb", None, [])
    names = [p.stem for p in parameters.find_notebooks(tmp_path)]
    assert names == ["01_a", "03_c", "03a_inserted", "04_d"]


def test_select_notebooks_by_number_or_stem(tmp_path: Path) -> None:
    for name in ["01_a", "03_c", "03a_inserted", "04_d"]:
        make_notebook(tmp_path, f"{name}.ipynb", None, [])
    found = parameters.find_notebooks(tmp_path)
    assert [p.stem for p in parameters.select_notebooks(found, "04,03")] == ["03_c", "04_d"]
    assert [p.stem for p in parameters.select_notebooks(found, "03a_inserted")] == ["03a_inserted"]
    assert parameters.select_notebooks(found, None) == found
    with pytest.raises(runner.RunnerError, match=r"--only 07 matches no notebook.*01_a"):
        parameters.select_notebooks(found, "01,07")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12),
        ("-3", -3),
        ("0.25", 0.25),
        ("1e-3", 0.001),
        ("True", True),
        ("false", False),
        ("None", None),
        ("[1, 2, 3]", [1, 2, 3]),
        ("{a: 1}", {"a": 1}),
        ("http://127.0.0.1:19530", "http://127.0.0.1:19530"),
        ("2024-01-01", "2024-01-01"),  # never a date, unlike plain YAML
        ("sentences", "sentences"),
    ],
)
def test_parse_parameter_value_like_papermill(text: str, expected: object) -> None:
    assert parameters.parse_parameter_value(text) == expected


def test_notebook_parameters_reads_literal_defaults(notebooks_dir: Path) -> None:
    declared = parameters.notebook_parameters(notebooks_dir / "01_recorder.ipynb")
    assert declared == {
        "MODEL_NAME": "auto",
        "CHUNK_SIZE": 64,
        "SEED": 0,
        "TOKEN": "",
        "OUTPUT_DIR": "../outputs/interactive/01_recorder",
    }


def test_validate_parameters_routes_each_name_to_the_notebooks_declaring_it(
    notebooks_dir: Path,
) -> None:
    first, second = parameters.find_notebooks(notebooks_dir)
    resolved = parameters.validate_parameters([first, second], {"CHUNK_SIZE": 16, "SEED": 7})
    assert resolved[first] == {"CHUNK_SIZE": 16, "SEED": 7}
    assert resolved[second] == {"SEED": 7}


def test_unknown_parameter_is_rejected_with_the_valid_names(notebooks_dir: Path) -> None:
    notebooks = parameters.find_notebooks(notebooks_dir)
    with pytest.raises(parameters.UnknownParameterError) as caught:
        parameters.validate_parameters(notebooks, {"CHUNK_SIZ": 16})
    message = str(caught.value)
    assert "CHUNK_SIZ" in message
    assert "Valid names: CHUNK_SIZE, MILVUS_URI, MODEL_NAME, SEED, TOKEN." in message


def test_output_dir_cannot_be_passed(notebooks_dir: Path) -> None:
    with pytest.raises(runner.RunnerError, match="--output-root"):
        parameters.validate_parameters(
            parameters.find_notebooks(notebooks_dir), {"OUTPUT_DIR": "/x"}
        )


def test_value_of_the_wrong_type_is_rejected(notebooks_dir: Path) -> None:
    with pytest.raises(runner.RunnerError, match=r"CHUNK_SIZE expects int .*got 'big'"):
        parameters.validate_parameters(
            parameters.find_notebooks(notebooks_dir), {"CHUNK_SIZE": "big"}
        )


def _typed_notebooks(directory: Path) -> list[Path]:
    make_notebook(
        directory,
        "01_typed.ipynb",
        "N_DOCUMENTS = 0  # 0 means all of them [min 0]\n"
        "SIZES = [16, 64]  # chunk sizes [min 1]\n"
        "SHARE = 0.5  # a share [min 0] [max 1]\n"
        "NAMES = ['a', 'b']\n"
        "WINDOW = None\n"
        "OUTPUT_DIR = 'x'\n",
        [],
    )
    return parameters.find_notebooks(directory)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("N_DOCUMENTS", "1.5", "N_DOCUMENTS expects int .*got 1.5"),
        ("N_DOCUMENTS", "None", "N_DOCUMENTS expects int .*got None"),
        ("N_DOCUMENTS", "nan", "not a finite number"),
        ("N_DOCUMENTS", "1e400", "not a finite number"),
        ("N_DOCUMENTS", "True", "N_DOCUMENTS expects int .*got True"),
        ("N_DOCUMENTS", "-5", "N_DOCUMENTS must be >= 0 in 01_typed.ipynb; got -5"),
        ("SIZES", "64", "SIZES expects list .*got 64"),
        ("SIZES", "[16, 0]", "SIZES must be >= 1"),
        ("SIZES", "[16, 2.5]", r"SIZES\[1\] expects int"),
        ("NAMES", "abc", "NAMES expects list .*got 'abc'"),
        ("NAMES", "[1]", r"NAMES\[0\] expects str"),
        ("SHARE", "1.5", "SHARE must be <= 1"),
        ("SHARE", "inf", "not a finite number"),
        ("WINDOW", "nan", "not a finite number"),
    ],
)
def test_a_value_outside_its_type_or_bounds_is_refused(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    notebooks = _typed_notebooks(tmp_path / "notebooks")
    with pytest.raises(runner.RunnerError, match=message):
        parameters.validate_parameters(notebooks, {name: value})


def test_values_inside_type_and_bounds_pass(tmp_path: Path) -> None:
    notebooks = _typed_notebooks(tmp_path / "notebooks")
    given = {"N_DOCUMENTS": "3", "SIZES": "[8]", "SHARE": "1", "NAMES": "[c]", "WINDOW": "128"}
    (fitted,) = parameters.validate_parameters(notebooks, given).values()
    assert fitted == {"N_DOCUMENTS": 3, "SIZES": [8], "SHARE": 1, "NAMES": ["c"], "WINDOW": 128}


def test_main_refuses_a_bad_value_with_rc_2_before_any_notebook_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _typed_notebooks(tmp_path / "notebooks")
    output_root = tmp_path / "out"
    argv = ["--notebooks", str(tmp_path / "notebooks"), "--output-root", str(output_root)]
    assert runner.main([*argv, "-p", "N_DOCUMENTS", "-5"]) == 2
    assert "N_DOCUMENTS must be >= 0" in capsys.readouterr().err
    assert not output_root.exists()


def test_every_count_the_notebooks_declare_has_a_lower_bound() -> None:
    counts = {
        "N_DOCUMENTS",
        "MAX_QUERIES",
        "CHUNK_SIZE",
        "CHUNK_SIZES",
        "SEED",
        "BOOTSTRAP_SAMPLES",
    }
    for notebook in parameters.find_notebooks(Path(__file__).parents[1] / "notebooks"):
        bounds = parameters.parameter_bounds(notebook)
        declared = parameters.notebook_parameters(notebook)
        for name in counts & set(declared):
            assert any(op.startswith(">") for op, _ in bounds.get(name, [])), (notebook, name)


def test_main_rejects_unknown_parameter_before_running_anything(
    notebooks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output_root = tmp_path / "out"
    argv = ["--notebooks", str(notebooks_dir), "--output-root", str(output_root)]
    status = runner.main([*argv, "-p", "SEEDS", "3"])
    assert status == 2
    error = capsys.readouterr().err
    assert "unknown parameter SEEDS" in error
    assert "CHUNK_SIZE, MILVUS_URI, MODEL_NAME, SEED, TOKEN" in error
    assert not output_root.exists()  # nothing ran, no run directory was made


def test_main_names_the_notebook_that_only_left_out(
    notebooks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--notebooks", str(notebooks_dir), "--output-root", str(tmp_path / "out")]
    assert runner.main([*argv, "--only", "01", "-p", "MILVUS_URI", "x"]) == 2
    assert "MILVUS_URI is declared by 02_second, which --only left out" in capsys.readouterr().err


def test_list_shows_each_notebook_with_its_parameters(
    notebooks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert runner.main(["--notebooks", str(notebooks_dir), "--list", "--only", "01"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith('01_recorder.ipynb\n    MODEL_NAME = "auto"  # the embedding model\n')
    assert "02_second" not in listing


def test_flatten_metrics_gives_dotted_keys_and_short_values() -> None:
    rows = dict(
        report.flatten_metrics(
            {
                "model": "m",
                "retrieval": {"late": {"ndcg@10": 0.712345678}, "naive": {"ndcg@10": 0.6}},
                "ranks": list(range(100)),
                "flag": True,
                "per_chunk": [{"chunk": i, "late": 0.9} for i in range(30)],
            }
        )
    )
    assert rows["model"] == "m"
    assert rows["retrieval.late.ndcg@10"] == "0.712346"
    assert rows["flag"] == "true"
    assert rows["ranks"] == "[0, 1, 2, 3, 4, 5, 6, 7, … (100 items)]"
    assert rows["per_chunk"].startswith('[{"chunk": 0, "late": 0.9}, {"chunk": 1, "late": 0.9}')
    assert len(rows["per_chunk"]) <= 120


SUMMARY = {
    "claim": "Late chunking scores every later sentence higher.",
    "held": True,
    "headline": {"label": "mean cosine gain after the first chunk", "value": 0.3712345},
    "figure": "a_plot.png",
}


def _fake_run(run_dir: Path, summary: dict | None = SUMMARY, **environment: object) -> None:
    """A run directory as the runner leaves it, without executing anything."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = {"model": "tiny", "score": {"late": 0.9}}
    outputs.save_metrics({**metrics, "summary": summary} if summary else metrics, run_dir / "01_a")
    outputs.save_metrics({"model": "tiny", "n": 3}, run_dir / "02_b")
    fig, ax = plt.subplots()
    ax.set(title="A plot", xlabel="x", ylabel="y")
    outputs.save_figure(fig, run_dir / "01_a", "a_plot")
    plt.close(fig)
    record = {"status": "ok", "duration_s": 1.5, "overridden": ["SEED"], "model": "tiny"}
    run = {
        "run_name": run_dir.name,
        "status": "ok",
        "started_at": "2025-01-01T00:00:00+00:00",
        "finished_at": "2025-01-01T00:01:00+00:00",
        "duration_s": 60.0,
        "command": "python -m lc_utils.run -p SEED 3",
        "kernel": "lc-utils",
        "overrides": {"SEED": "3"},
        "environment": {
            "python": "3.x",
            "packages": {"torch": "9.9", "milvus-lite": None},
            "cpu_count": 2,
            "gpu": ["H100"],
            **environment,
        },
        "notebooks": [
            {**record, "name": "01_a.ipynb", "stem": "01_a", "html": "01_a.html",
             "parameters": {"SEED": 3, "OUTPUT_DIR": str(run_dir / "01_a")}},
            {**record, "name": "02_b.ipynb", "stem": "02_b", "parameters": {"SEED": 3}},
        ],
    }  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(run))


def test_report_opens_with_a_summary_and_keeps_the_details_in_an_appendix(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _fake_run(run_dir)
    markdown_path, html_path = report.write_report(run_dir)
    markdown = markdown_path.read_text()
    summary, appendix = markdown.split("## Appendix")
    # One line per notebook: claim, verdict, headline and key figure, before anything else.
    assert summary.index("## Summary") < summary.index("## Notebooks")
    assert (
        "| [01_a](01_a.html) | Late chunking scores every later sentence higher. | ✅ held | "
        "mean cosine gain after the first chunk: 0.371 | [a_plot.png](01_a/a_plot.png) |"
    ) in summary
    assert "# Late chunking run run\n\n**All 2 notebooks ran; 1 of 1 claim held**" in summary
    assert 'A claim "held" when the notebook\'s own test of it passed' in summary
    assert "| 02_b | no summary recorded | – |  |  |" in summary
    assert "| torch | 9.9 |" in summary and "| milvus-lite | not installed |" in summary
    assert "| GPU | H100 |" in summary
    assert "SEED=3" in summary
    assert "score.late" not in summary  # the metric tables wait in the appendix
    assert "<details>" in appendix and "</details>" in appendix
    assert "| score.late | 0.9 |" in appendix and "| SEED | 3 | passed |" in appendix
    assert "| OUTPUT_DIR |" in appendix and "| runner |" in appendix
    assert "![a_plot](01_a/a_plot.png)" in appendix
    assert "claim" not in appendix  # the summary is not repeated as metrics
    page = html_path.read_text()
    assert "<td>score.late</td><td>0.9</td>" in page
    assert page.count("data:image/png;base64,") == 2  # summary and appendix: the page stands alone
    assert page.index("Late chunking scores") < page.index("<details>")


def test_report_says_when_a_claim_did_not_hold_and_when_the_library_is_broken(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    summary = {**SUMMARY, "held": False, "figure": "never_saved.png"}
    _fake_run(run_dir, summary, library_error="ImportError: broken")
    markdown = report.write_report(run_dir)[0].read_text()
    assert "| ❌ did not hold | mean cosine gain after the first chunk: 0.371 |  |" in markdown
    assert "**All 2 notebooks ran; 0 of 1 claim held**" in markdown
    assert "never_saved" not in markdown  # a key figure that is not on disk is not linked
    assert "**lc_utils does not import** in the kernel's environment: `ImportError: broken`" in (
        markdown
    )


def test_headlines_have_three_significant_digits_and_their_interval() -> None:
    assert report.significant(0.0417944) == "0.0418"
    assert report.significant(-0.121816) == "−0.122"
    assert report.significant(1.0) == "1.00" and report.significant(4) == "4"
    metrics = {
        "late_minus_naive": {"chunk": {"mean": -0.0370, "low": -0.09, "high": 0.0143}},
        "other": [{"mean": 0.5, "low": 0.4, "high": 0.6}],
    }
    summary = {"headline": {"label": "late − naive", "value": -0.0370}}
    headline = report.headline_of(summary, metrics)
    # Found beside the equal mean: the interval says that −0.037 is not "naive ahead".
    assert headline["text"] == "late − naive: −0.0370 [−0.0900, 0.0143]"
    assert headline["interval_of"] == "late_minus_naive/chunk"
    own = {"headline": {"label": "x", "value": 0.5, "low": 0.1, "high": 0.9}}
    assert report.headline_of(own, metrics)["text"] == "x: 0.500 [0.100, 0.900]"  # recorded wins
    exact = {"headline": {"label": "agreement", "value": 1.0}}
    assert report.headline_of(exact, metrics)["text"] == "agreement: 1.00"  # nothing to find
    twice = {"a": {"mean": 0.5, "low": 0.4, "high": 0.6}, "b": {"mean": 0.5, "low": 0.0, "high": 1}}
    assert "low" not in report.headline_of({"headline": {"value": 0.5}}, twice)  # ambiguous
    assert report.headline_of({"claim": "c."}, metrics)["text"] == ""  # no headline recorded


def test_status_line_counts_notebooks_and_claims() -> None:
    held = {"status": "ok", "summary": {"held": True}}
    missed = {"status": "ok", "summary": {"held": False}}
    assert report.status_line({"status": "ok"}, [held, missed, held]) == (
        "All 3 notebooks ran; 2 of 3 claims held"
    )
    failed = [held, {"status": "failed", "summary": None}, {"status": "not run"}]
    assert report.status_line({"status": "failed"}, failed) == (
        "FAILED: 1 of 3 notebooks ran; 1 of 1 claim held"
    )
    assert report.status_line({"status": "ok"}, [{"status": "ok"}]) == (
        "All 1 notebook ran; no claims recorded"
    )


def test_write_report_needs_run_json(tmp_path: Path) -> None:
    with pytest.raises(runner.RunnerError, match="run.json"):
        runner.write_report(tmp_path)


def test_importing_the_runner_needs_neither_torch_nor_the_library() -> None:
    code = (
        "import sys, lc_utils.run\n"
        "heavy = [m for m in ('torch', 'transformers', 'lc_utils.late') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    root = Path(runner.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def test_progress_bar_echoes_to_the_console_under_the_runner(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "PROGRESS_EVERY_S", 0.2)
    monkeypatch.setenv(runner.RUNNER_LABEL, "[1/2] 04_x")
    assert progress.RUNNER_LABEL is runner.RUNNER_LABEL  # one name, defined once
    bar = progress.progress_bar(100, "late chunking", "tok")
    bar.update(45)  # a bar younger than PROGRESS_EVERY_S is not printed yet
    assert capfd.readouterr().out == ""
    time.sleep(0.25)
    bar.update(0)
    assert re.fullmatch(
        r"    \[1/2\] 04_x \| late chunking:  45%\|.{10}\| 45/100 \[[^]]+tok/s\]\n",
        capfd.readouterr().out,
    )
    bar.update(1)  # within PROGRESS_EVERY_S of the last line: quiet
    hidden = progress.progress_bar(10, "sentences chunking", "doc", disable=True)
    time.sleep(0.25)
    hidden.update(5)  # a disabled bar says nothing, under the runner too
    assert capfd.readouterr().out == ""
    monkeypatch.delenv(runner.RUNNER_LABEL)
    quiet = progress.progress_bar(10, "elsewhere", "doc")
    time.sleep(0.25)
    quiet.update(5)  # not under the runner: only tqdm's own bar, on stderr
    bar.close()
    quiet.close()
    assert capfd.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# lc_utils.outputs, the helpers the notebooks call


def test_save_metrics_converts_rounds_and_sorts(tmp_path: Path) -> None:
    path = outputs.save_metrics(
        {
            "b": np.float32(0.1),
            "a": np.arange(3),
            "c": {"x": np.int64(7), 2: (1.23456789, True)},
            "d": Path("some/where"),
        },
        tmp_path / "new",
    )
    assert path == tmp_path / "new" / "metrics.json"
    text = path.read_text()
    assert list(json.loads(text)) == ["a", "b", "c", "d"]
    assert json.loads(text) == {
        "a": [0, 1, 2],
        "b": 0.1,
        "c": {"x": 7, "2": [1.23457, True]},
        "d": "some/where",
    }
    outputs.save_metrics({"e": 1}, tmp_path / "new", merge=True)
    assert set(outputs.load_metrics(tmp_path / "new")) == {"a", "b", "c", "d", "e"}


def test_save_metrics_turns_nan_into_null_with_a_warning(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"metric scores\.late is nan"):
        outputs.save_metrics({"scores": {"late": float("nan")}}, tmp_path)
    assert outputs.load_metrics(tmp_path) == {"scores": {"late": None}}
    with pytest.raises(TypeError, match="metric blob has type object"):
        outputs.save_metrics({"blob": object()}, tmp_path)


def test_set_seed_makes_numpy_and_torch_repeat() -> None:
    torch = pytest.importorskip("torch")
    generator = outputs.set_seed(123)
    first = (np.random.rand(3), torch.rand(3), generator.random(3))
    generator = outputs.set_seed(123)
    second = (np.random.rand(3), torch.rand(3), generator.random(3))
    assert np.array_equal(first[0], second[0])
    assert torch.equal(first[1], second[1])
    assert np.array_equal(first[2], second[2])
    with pytest.raises(ValueError, match="non-negative integer"):
        outputs.set_seed(-1)


def test_save_figure_requires_a_title_and_warns_on_missing_labels(tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    with pytest.raises(ValueError, match="has no title"):
        outputs.save_figure(fig, tmp_path, "untitled")
    ax.set_title("Line")
    with pytest.warns(UserWarning, match="no x or y label"):
        path = outputs.save_figure(fig, tmp_path, "line.png")
    assert path == tmp_path / "line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outputs.save_figure(ax, tmp_path, "line")  # an Axes is accepted too
    with pytest.raises(ValueError, match="plain file name"):
        outputs.save_figure(fig, tmp_path, "../escape")
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Real runs through papermill with the lc-utils kernel


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run of both tiny notebooks with parameters passed, shared by the tests below."""
    root = tmp_path_factory.mktemp("full_run")
    directory = root / "notebooks"
    make_notebook(directory, "01_recorder.ipynb", RECORDER_PARAMETERS, RECORDER_CELLS)
    make_notebook(directory, "02_second.ipynb", SECOND_PARAMETERS, SECOND_CELLS)
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        for name in runner.KERNEL_ENVIRONMENT:
            patch.setenv(name, "unset")  # recorded first, so leaving the context restores it
            patch.delenv(name)
        status = runner.main(
            [
                "--notebooks", str(directory), "--output-root", str(root / "outputs"),
                "--run-name", "smoke", "--no-progress",
                "-p", "CHUNK_SIZE", "16", "-p", "SEED", "5", "-p", "TOKEN", "0123",
            ]
        )  # fmt: skip
    return {
        "status": status,
        "run_dir": root / "outputs" / "smoke",
        "notebooks": directory,
        "printed": printed.getvalue(),
    }


@pytest.mark.slow
def test_run_injects_parameters_and_output_dir(full_run: dict) -> None:
    assert full_run["status"] == 0
    assert re.search(r"\[1/2\] 01_recorder ok in \d+\.\d s", full_run["printed"])
    assert re.search(r"\[2/2\] 02_second ok in \d+\.\d s", full_run["printed"])
    run_dir = full_run["run_dir"]
    recorded = json.loads((run_dir / "01_recorder" / "metrics.json").read_text())
    assert recorded["chunk_size"] == 16
    assert recorded["token"] == "0123"  # text stays text where the default is a string
    assert recorded["output_dir"] == str((run_dir / "01_recorder").resolve())
    assert Path(recorded["cwd"]) == full_run["notebooks"].resolve()
    assert recorded["hf_progress_bars_disabled"] == "1"
    assert recorded["tokenizers_parallelism"] == "false"
    second = json.loads((run_dir / "02_second" / "metrics.json").read_text())
    # A parameter reaches only the notebooks that declare it.
    assert second == {"saw_chunk_size": False, "seed": 5, "milvus_uri": "milvus.db"}


@pytest.mark.slow
def test_run_writes_report_run_json_html_and_latest(full_run: dict) -> None:
    run_dir = full_run["run_dir"]
    for name in ["01_recorder", "02_second"]:
        assert (run_dir / f"{name}.ipynb").is_file()
        assert "<html" in (run_dir / f"{name}.html").read_text()[:500].lower()
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["status"] == "ok"
    first = summary["notebooks"][0]
    assert first["status"] == "ok"
    assert first["parameters"]["CHUNK_SIZE"] == 16
    assert first["overridden"] == ["CHUNK_SIZE", "SEED", "TOKEN"]
    assert (first["executed"], first["html"]) == ("01_recorder.ipynb", "01_recorder.html")
    assert summary["environment"]["packages"]["papermill"]
    assert summary["environment"]["cpu_count"] >= 1
    assert summary["environment"]["library_error"] is None

    markdown = (run_dir / "report.md").read_text()
    assert "| [01_recorder](01_recorder.html) | Squares grow. | ✅ held | largest square: 4 |" in (
        markdown
    )
    assert "| [02_second](02_second.html) | no summary recorded | – |" in markdown
    assert "| 01_recorder | ok |" in markdown
    assert "tiny-test-model" in markdown
    assert "| scores.late | 0.912346 |" in markdown
    assert "| CHUNK_SIZE | 16 | passed |" in markdown
    assert "| papermill |" in markdown and "| transformers |" in markdown
    assert "![squares](01_recorder/squares.png)" in markdown
    page = (run_dir / "report.html").read_text()
    assert "tiny-test-model" in page and "data:image/png;base64," in page

    latest = run_dir.parent / "latest"
    target = (
        latest.resolve() if latest.is_symlink() else run_dir.parent / latest.read_text().strip()
    )
    assert target == run_dir.resolve()


@pytest.mark.slow
def test_failing_notebook_stops_the_run_and_names_the_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "notebooks"
    make_notebook(
        directory,
        "01_fails.ipynb",
        'SEED = 0\nOUTPUT_DIR = "x"',
        ["before = 1", "# check the seed\nassert SEED == 1, 'expected seed 1'", "after = 2"],
    )
    make_notebook(directory, "02_never.ipynb", 'OUTPUT_DIR = "x"', ["print('never runs')"])
    status = runner.main(
        ["--notebooks", str(directory), "--output-root", str(tmp_path / "out"),
         "--run-name", "broken", "--no-progress"]
    )  # fmt: skip
    assert status == 1
    error = capsys.readouterr().err
    # Cell 3 of the source notebook: title, parameters, `before = 1`, then the assert.
    assert "notebook 01_fails.ipynb failed in cell 3" in error
    assert "# check the seed" in error
    assert "AssertionError: expected seed 1" in error
    assert "Not run: 02_never." in error

    run_dir = tmp_path / "out" / "broken"
    partial = nbformat.read(run_dir / "01_fails.ipynb", as_version=4)
    assert any(
        output.get("ename") == "AssertionError"
        for cell in partial.cells
        for output in cell.get("outputs", [])
    )
    assert not (run_dir / "02_never.ipynb").exists()
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["status"] == "failed"
    assert [n["status"] for n in summary["notebooks"]] == ["failed", "not run"]
    assert summary["notebooks"][0]["error"]["cell_index"] == 3
    assert "AssertionError: expected seed 1" in (run_dir / "report.md").read_text()
    assert (run_dir / "01_fails.html").is_file()


@pytest.mark.slow
def test_only_runs_the_selected_notebooks(notebooks_dir: Path, tmp_path: Path) -> None:
    status = runner.main(
        ["--notebooks", str(notebooks_dir), "--output-root", str(tmp_path / "out"),
         "--run-name", "subset", "--only", "02", "--no-progress"]
    )  # fmt: skip
    assert status == 0
    run_dir = tmp_path / "out" / "subset"
    assert (run_dir / "02_second.ipynb").is_file()
    assert not (run_dir / "01_recorder.ipynb").exists()
    summary = json.loads((run_dir / "run.json").read_text())
    assert [n["stem"] for n in summary["notebooks"]] == ["02_second"]


@pytest.mark.slow
def test_execute_notebook_reports_the_source_cell_index(tmp_path: Path) -> None:
    notebook = make_notebook(
        tmp_path / "nb", "01_x.ipynb", 'OUTPUT_DIR = "x"', ["raise KeyError('missing chunk')"]
    )
    with pytest.raises(runner.NotebookExecutionError) as caught:
        runner.execute_notebook(notebook, tmp_path / "run", {}, progress_bar=False)
    assert caught.value.cell_index == 2
    assert caught.value.first_line == "raise KeyError('missing chunk')"
    assert caught.value.exception_line == "KeyError: 'missing chunk'"
    assert caught.value.executed_path == (tmp_path / "run" / "01_x.ipynb").resolve()
    assert caught.value.executed_path.is_file()
    assert (tmp_path / "run" / "01_x").is_dir()  # OUTPUT_DIR exists before the notebook runs


@pytest.mark.slow
def test_a_broken_library_is_named_in_the_report_and_fails_the_run(tmp_path: Path) -> None:
    """The runner loads none of the library, so it runs, reports and exits 1 while lc_utils is
    broken: here a copy of the package whose chunking module raises on import."""
    package = tmp_path / "site" / "lc_utils"
    shutil.copytree(Path(runner.__file__).parents[1], package)
    broken = package / "text" / "chunking.py"
    broken.write_text("raise ImportError('chunking is broken on purpose')\n")
    directory = tmp_path / "notebooks"
    cells = ["import lc_utils as lc", "lc.chunk_text('One. Two.', 'sentences')"]
    make_notebook(directory, "01_uses_library.ipynb", 'SEED = 0\nOUTPUT_DIR = "x"', cells)
    result = subprocess.run(
        [sys.executable, "-m", "lc_utils.run", "--notebooks", str(directory),
         "--output-root", str(tmp_path / "out"), "--run-name", "broken", "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(package.parent)},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "lc_utils does not import: ImportError: chunking is broken on purpose" in result.stderr
    run_dir = tmp_path / "out" / "broken"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["notebooks"][0]["status"] == "failed"
    assert "chunking is broken on purpose" in run["notebooks"][0]["error"]["exception_line"]
    markdown = (run_dir / "report.md").read_text()
    assert "**lc_utils does not import**" in markdown
    assert "| 01_uses_library | ok |" not in markdown and "| failed |" in markdown


@pytest.mark.slow
def test_progress_bars_are_widgets_in_the_notebook_and_lines_on_the_console(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The library's bars are tqdm.auto ipywidgets in the kernel (no 'IProgress not found');
    papermill keeps their state, nbconvert puts it in the HTML, and, under the runner, the bar
    writes lines to the console that started the kernel, not into the notebook."""
    cells = [
        "import time\nfrom lc_utils import progress\nprogress.PROGRESS_EVERY_S = 0.5\n"
        "bar = progress.progress_bar(8, 'documents', 'doc')\n"
        "for _ in range(8):\n    time.sleep(0.25)\n    bar.update()\nbar.close()"
    ]
    directory = tmp_path / "notebooks"
    make_notebook(directory, "01_bar.ipynb", 'OUTPUT_DIR = "x"', cells)
    status = runner.main(
        ["--notebooks", str(directory), "--output-root", str(tmp_path / "out"), "--run-name", "r"]
    )
    assert status == 0
    assert re.search(r"\[1/1\] 01_bar \| documents: +\d+%", capfd.readouterr().out)
    run_dir = tmp_path / "out" / "r"
    executed = nbformat.read(run_dir / "01_bar.ipynb", as_version=4)
    outputs_text = json.dumps([cell.get("outputs", []) for cell in executed.cells])
    assert "IProgress not found" not in outputs_text and "01_bar |" not in outputs_text
    assert "application/vnd.jupyter.widget-view+json" in outputs_text
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    values = [w["state"].get("value") for w in state.values()]
    assert 8 in values or 8.0 in values  # the bar's final position was saved
    page = (run_dir / "01_bar.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in page  # nbconvert embeds the state
    assert re.search(r"documents:(\\u2007|\s)*100%", page)  # the state of the finished bar


@pytest.mark.slow
def test_the_runner_console_is_never_silent_for_long(tmp_path: Path) -> None:
    """``python -m lc_utils.run`` on a small notebook, its console read as it comes: a cell with
    a bar speaks every PROGRESS_EVERY_S, a cell without one gets the runner's heartbeat every
    HEARTBEAT_S, so no stretch of the console is silent for longer (about 35 s in all)."""
    cells = [
        "import time\nfrom lc_utils import progress\n"
        "bar = progress.progress_bar(48, 'documents', 'doc')\n"
        "for _ in range(48):\n    time.sleep(0.25)\n    bar.update()\nbar.close()",
        "time.sleep(runner_quiet_s)",
    ]
    quiet = runner.HEARTBEAT_S + 3
    directory = tmp_path / "notebooks"
    make_notebook(directory, "01_slow.ipynb", f'runner_quiet_s = {quiet}\nOUTPUT_DIR = "x"', cells)
    command = [sys.executable, "-u", "-m", "lc_utils.run", "--notebooks", str(directory),
               "--output-root", str(tmp_path / "out"), "--run-name", "r"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started, stamps, console = time.monotonic(), [], b""
    while chunk := os.read(process.stdout.fileno(), 65536):
        stamps.append(time.monotonic() - started)
        console += chunk
    assert process.wait(timeout=60) == 0, console.decode(errors="replace")[-3000:]
    text = console.decode(errors="replace")
    gaps = [later - earlier for earlier, later in zip([0.0, *stamps], stamps, strict=False)]
    assert max(gaps) < runner.HEARTBEAT_S + 4, (max(gaps), text[-2000:])
    assert re.search(r"\[1/1\] 01_slow \| documents: +\d+%", text)  # the bar, every 10 s
    assert re.search(r"\[1/1\] 01_slow \| still working, \d+ s in", text)  # the quiet cell
    assert "without encryption" not in text  # the kernel talks over Unix sockets, not TCP


def test_kernel_environment_defaults_respect_the_user(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "unset")  # so the test's change is undone
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS")
    notebook = make_notebook(tmp_path, "01_x.ipynb", 'OUTPUT_DIR = "x"', ["1"])
    with pytest.raises(runner.RunnerError, match="kernel 'no-such-kernel' is not installed"):
        runner.execute_notebook(notebook, tmp_path / "run", kernel_name="no-such-kernel")
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_a_file_of_the_users_at_latest_is_kept_and_the_run_refused(
    notebooks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output_root = tmp_path / "out"
    output_root.mkdir()
    (output_root / "latest").write_text("my notes")
    argv = ["--notebooks", str(notebooks_dir), "--output-root", str(output_root)]
    assert runner.main(argv) == 2
    assert "is a file of yours" in capsys.readouterr().err
    assert (output_root / "latest").read_text() == "my notes"
    assert sorted(p.name for p in output_root.iterdir()) == ["latest"]


def test_a_symlink_at_the_run_folder_is_not_followed(
    notebooks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output_root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    output_root.mkdir()
    elsewhere.mkdir()
    (output_root / "r1").symlink_to(elsewhere, target_is_directory=True)
    argv = ["--notebooks", str(notebooks_dir), "--output-root", str(output_root)]
    assert runner.main([*argv, "--run-name", "r1"]) == 2
    assert "is a symlink" in capsys.readouterr().err
    assert not any(elsewhere.iterdir())


@pytest.mark.parametrize("case", ["long-name", "root-is-a-file"])
def test_a_bad_run_name_or_output_root_is_one_line_with_rc_2(
    notebooks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    output_root = tmp_path / "out"
    extra = []
    if case == "long-name":
        extra, expected = ["--run-name", "r" * 300], "300 bytes long"
    else:
        output_root.write_text("not a folder")
        expected = "under --output-root"
    argv = ["--notebooks", str(notebooks_dir), "--output-root", str(output_root), *extra]
    assert runner.main(argv) == 2
    error = capsys.readouterr().err
    assert expected in error and len(error.strip().splitlines()) == 1
