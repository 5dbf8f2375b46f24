"""Reading a corpus for scale-out: Ray Datasets, JSON Lines, Parquet, BEIR folders, mappings.

Each row becomes one document with string columns ``doc_id`` and ``text``; a repeated id is
refused before any work (``count_unique_documents``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..corpus import DuplicateDocumentError, iter_documents
from ..datasets.beir import read_json_lines

__all__ = ["ID_COLUMNS", "DuplicateDocumentError", "read_documents", "count_unique_documents"]

ID_COLUMNS = ("doc_id", "_id", "id")


def read_documents(source, *, id_column: str | None = None, text_column: str = "text"):
    """The documents of ``source`` as a Ray Dataset with string columns ``doc_id`` and ``text``.

    Args:
        source: a ``ray.data.Dataset``; a path (or list of paths) to JSON Lines (``.jsonl``,
            ``.json``) or Parquet (``.parquet``) files; a BEIR dataset folder (its
            ``corpus.jsonl`` is read); or an in-memory ``{doc_id: text}`` mapping or list of
            ``(doc_id, text)`` pairs.
        id_column: the id column; by default the first of ``doc_id``, ``_id``, ``id`` present.
        text_column: the text column. A ``title`` column, where present and non-empty, is joined
            before the text with a blank line, as in ``lc.datasets.load_beir(...).documents``.
    Returns:
        ``ray.data.Dataset`` with ``doc_id`` (str) and ``text`` (str; ``""`` for a missing text).
    """
    import ray.data  # optional: the extra "scale"

    if isinstance(source, ray.data.Dataset):
        dataset = source
    elif isinstance(source, Mapping) or (
        isinstance(source, list | tuple) and source and isinstance(source[0], tuple | list)
    ):
        items = [{"doc_id": d, "text": t} for d, t in iter_documents(source)]
        dataset = ray.data.from_items(items) if items else ray.data.from_items([])
        columns = ["doc_id", "text"]
    else:
        dataset, columns = _read_files(source, id_column, text_column)
    if isinstance(source, ray.data.Dataset):
        columns = dataset.columns() or []
    if id_column is None:
        id_column = next((c for c in ID_COLUMNS if c in columns), None)
    if id_column not in columns or text_column not in columns:
        raise ValueError(
            f"the documents have columns {columns}; need an id column (id_column=, default one of "
            f"{ID_COLUMNS}) and a text column (text_column={text_column!r})"
        )
    has_title = "title" in columns and text_column != "title"

    def normalise(batch):
        ids = [str(d) for d in batch[id_column]]
        texts = ["" if t is None else str(t) for t in batch[text_column]]
        if has_title:
            texts = [
                f"{title}\n\n{text}" if title else text
                for title, text in zip(batch["title"], texts, strict=True)
            ]
        return {"doc_id": np.array(ids, dtype=object), "text": np.array(texts, dtype=object)}

    return dataset.map_batches(normalise, batch_format="numpy")


def _read_files(source, id_column: str | None, text_column: str):
    import ray.data  # optional: the extra "scale"

    paths = [Path(p) for p in (source if isinstance(source, list | tuple) else [source])]
    if not paths or not all(isinstance(p, Path) for p in paths):
        raise TypeError(f"source={source!r}; {_SOURCE_FORMS}")
    resolved = []
    for path in paths:
        if path.is_dir() and (path / "corpus.jsonl").is_file():
            path = path / "corpus.jsonl"  # a BEIR dataset folder
        if not path.exists():
            raise FileNotFoundError(f"source {str(path)!r} does not exist; {_SOURCE_FORMS}")
        resolved.append(path)
    kinds = {_file_kind(p) for p in resolved}
    if len(kinds) != 1 or None in kinds:
        raise ValueError(f"source={[str(p) for p in resolved]}; {_SOURCE_FORMS}")
    files = [str(p.resolve()) for p in resolved]
    # The columns are read here, not with Dataset.columns(): that launches and cancels a read
    # task, which crashed Ray's driver (task_manager.cc fatal check) about one run in three.
    if kinds == {"parquet"}:
        columns = _parquet_columns(resolved, text_column)
        return ray.data.read_parquet(files), columns
    columns = check_json_lines(resolved, id_column, text_column)
    return ray.data.read_json(files, lines=True), columns


def _expand(paths: list[Path], kind: str) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and _file_kind(p) == kind)
        else:
            found.append(path)
    return found


def check_json_lines(paths: list[Path], id_column: str | None, text_column: str) -> list[str]:
    """Read every JSON Lines file once, before Ray starts, and return the columns of its rows.

    Refuses, naming the file and line (and the id where there is one): a line that is not a JSON
    object, a row without an id, a text or title that is not a string (a number or a list would
    otherwise be embedded as its string form), and input with no documents at all.
    """
    columns: dict[str, None] = {}
    n_rows = 0
    for path in _expand(paths, "json"):
        for number, row in read_json_lines(path):
            where = f"{path}:{number}"
            key = id_column or next((c for c in ID_COLUMNS if c in row), None)
            if key is None or row.get(key) is None or row.get(key) == "":
                raise ValueError(
                    f"{where} has no document id (id_column={id_column!r}, default one of "
                    f"{ID_COLUMNS})"
                )
            for field in (text_column, "title"):
                value = row.get(field)
                if value is not None and not isinstance(value, str):
                    raise TypeError(
                        f"{where}: document {row[key]!r} has a {type(value).__name__} "
                        f"{field} ({json.dumps(value)[:40]}); it must be a string"
                    )
            columns.update(dict.fromkeys(row))
            n_rows += 1
    if not n_rows:
        raise ValueError(f"no documents: {[str(p) for p in paths]} hold no JSON Lines rows")
    return list(columns)


def _parquet_columns(paths: list[Path], text_column: str) -> list[str]:
    import pyarrow as pa  # comes with Ray (the extra "scale"), as everything here
    import pyarrow.parquet as pq

    columns: dict[str, None] = {}
    for path in _expand(paths, "parquet"):
        schema = pq.read_schema(path)
        for field in (text_column, "title"):
            if field in schema.names:
                kind = schema.field(field).type
                if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                    raise TypeError(f"{path}: column {field!r} holds {kind}; it must hold strings")
        columns.update(dict.fromkeys(schema.names))
    return list(columns)


_SOURCE_FORMS = (
    "valid: a ray.data.Dataset, .jsonl/.json (JSON Lines) or .parquet files or folders of them, "
    "a BEIR folder holding corpus.jsonl, or a {doc_id: text} mapping"
)


def _file_kind(path: Path) -> str | None:
    if path.is_dir():
        kinds = {_file_kind(p) for p in path.iterdir() if p.is_file()} - {None}
        return kinds.pop() if len(kinds) == 1 else None
    if path.suffix in (".jsonl", ".json"):
        return "json"
    if path.suffix == ".parquet":
        return "parquet"
    return None


def count_unique_documents(dataset) -> int:
    """Count the documents and refuse a repeated id, reading only the id column.

    Ids are kept as 64-bit hashes (8 bytes a document); a repeated hash is confirmed on the ids
    themselves in a second pass, so a hash collision never refuses a valid corpus.
    """
    hashes = []
    for batch in dataset.select_columns(["doc_id"]).iter_batches(
        batch_size=65_536, batch_format="numpy"
    ):
        hashes.append(pd.util.hash_array(batch["doc_id"].astype(object)))
    if not hashes:
        return 0
    every = np.sort(np.concatenate(hashes))
    repeated = set(every[1:][every[1:] == every[:-1]].tolist())
    if repeated:
        seen = set()
        for batch in dataset.select_columns(["doc_id"]).iter_batches(
            batch_size=65_536, batch_format="numpy"
        ):
            ids = batch["doc_id"].astype(object)
            for doc_id, h in zip(ids, pd.util.hash_array(ids).tolist(), strict=True):
                if h in repeated:
                    if doc_id in seen:
                        raise DuplicateDocumentError(
                            f"document id {doc_id!r} appears more than once in the input; ids "
                            "must be unique (nothing was embedded or written)"
                        )
                    seen.add(doc_id)
    return int(every.size)
