"""Synthetic long-document tasks: a fact hidden at a chosen depth in a haystack of pydoc text.

LongEmbed (Zhu et al. 2024), which the late-chunking paper evaluates on, includes two synthetic
retrieval tasks that need no download: *passkey* (a number, said to be someone's pass key, hidden
in filler text) and *needle* (one distinctive sentence hidden in long unrelated text). Here both
are rebuilt from text that ships with Python, deterministically from a seed:

* **Haystack**: a stretch of Python's reference manual (``load_pydoc_topics``, the topics joined
  in id order) starting at a random paragraph, cut to a number of the model's tokens.
* **Needle**: one short passage that has nothing to do with Python, inserted at a sentence start
  at a chosen *depth* (0 = the first sentence, 1 = after the last).

  - ``"passkey"``: "Ottilie's pass key is 40318. Remember it. 40318 is the pass key of Ottilie."
    Query: "What is the pass key of Ottilie?" Every document of a pool has a needle of this same
    shape, so only the name tells the documents apart.
  - ``"needle"``: a fact from a few templates ("The secret ingredient in Ottilie's goulash is
    smoked paprika."); the query asks for it ("What is the secret ingredient in Ottilie's
    goulash?") without giving the answer.

* **Pools**: the documents of one ``(kind, length)`` form one retrieval pool, as LongEmbed keeps
  one candidate set per length: a query is answered by exactly one document of its pool, and
  its relevant span is the needle. ``select_needles`` returns one pool (or several merged);
  evaluating each pool on its own keeps every document length's results apart.

Lengths are counted in the given tokenizer's content tokens (no special tokens), so the same seed
gives slightly different text for different tokenizers. Spans are half-open character offsets.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..text.chunking import chunk_sentences
from ..text.tokens import token_offsets
from .pydoc_topics import load_pydoc_topics
from .task import RetrievalTask

__all__ = ["NEEDLE_KINDS", "build_needle_tasks", "needle_pools", "select_needles"]

NEEDLE_KINDS = ("passkey", "needle")

_NAMES = (
    "Ottilie", "Bartholomew", "Wilhelmina", "Lysander", "Philippa", "Thaddeus", "Rosalind",
    "Ignatius", "Clementine", "Barnaby", "Henrietta", "Leopold", "Gwendolyn", "Cornelius",
    "Marigold", "Ambrose", "Petronella", "Florian", "Euphemia", "Casimir", "Theodora",
    "Evander", "Beatrix", "Lucius", "Imogen", "Octavius", "Seraphina", "Crispin", "Tabitha",
    "Fitzgerald", "Ludmila", "Ptolemy", "Genevieve", "Ezekiel", "Araminta", "Horatio",
    "Perpetua", "Benedikt", "Drusilla", "Lorcan",
)  # fmt: skip
_FACTS = (
    (
        "The secret ingredient in {name}'s {dish} is {ingredient}.",
        "What is the secret ingredient in {name}'s {dish}?",
    ),
    (
        "{name} keeps a {colour} {animal} called {pet} on a houseboat in {city}.",
        "What is the name of the {animal} that {name} keeps in {city}?",
    ),
    (
        "Every {weekday}, {name} rides the {vehicle} to {city} to play the {instrument}.",
        "Where does {name} go to play the {instrument}?",
    ),
)
_FILLERS = {
    "dish": ("goulash", "lemon tart", "paella", "borscht", "apple crumble", "moussaka"),
    "ingredient": ("smoked paprika", "candied ginger", "saffron", "black cardamom", "sumac"),
    "colour": ("crimson", "pale green", "golden", "speckled", "violet"),
    "animal": ("tortoise", "parrot", "ferret", "hedgehog", "goat", "peacock"),
    "pet": ("Biscuit", "Admiral", "Pickles", "Duchess", "Noodle", "Captain"),
    "city": ("Lisbon", "Tallinn", "Valparaiso", "Kyoto", "Marrakesh", "Reykjavik", "Trieste"),
    "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "vehicle": ("night train", "ferry", "cable car", "tram", "bus"),
    "instrument": ("cello", "harp", "accordion", "bassoon", "theremin", "sitar"),
}


def needle_pools(task: RetrievalTask) -> list[tuple[str, int]]:
    """The ``(kind, length)`` of every pool of a ``build_needle_tasks`` task, in build order."""
    keys = _needles(task)[["kind", "length"]].drop_duplicates()
    return [(str(kind), int(length)) for kind, length in keys.itertuples(index=False)]


def select_needles(
    task: RetrievalTask,
    *,
    kinds: Sequence[str] | None = None,
    lengths: Sequence[int] | None = None,
) -> RetrievalTask:
    """The pools of the given kinds and lengths (``None``: all), merged into one task.

    Merged pools make one retrieval corpus: a query then competes with the documents of every
    selected pool, and a name may recur across kinds. ``select_needles(task, kinds=[kind],
    lengths=[length])`` is one pool, the candidate set LongEmbed scores a query against.
    """
    needles = _needles(task)
    keep = needles["kind"].isin(kinds if kinds is not None else needles["kind"])
    keep &= needles["length"].isin(lengths if lengths is not None else needles["length"])
    if not keep.any():
        raise KeyError(
            f"no pool has kind in {kinds} and length in {lengths}; pools: {needle_pools(task)}"
        )
    rows = needles[keep]
    return task.subset(query_ids=rows.index, doc_ids=rows["doc_id"])


def _needles(task: RetrievalTask) -> pd.DataFrame:
    if task.source != "needles" or task.query_info is None:
        raise ValueError(
            f"task {task.name!r} (source {task.source!r}) is not from build_needle_tasks; its "
            "query_info holds no needles"
        )
    return task.query_info


def _needle(kind: str, name: str, rng: random.Random) -> tuple[str, str, str]:
    """``(needle text, query, answer)`` for one document."""
    if kind == "passkey":
        key = str(rng.randrange(10_000, 100_000))
        needle = f"{name}'s pass key is {key}. Remember it. {key} is the pass key of {name}."
        return needle, f"What is the pass key of {name}?", key
    statement, question = rng.choice(_FACTS)
    fields = {slot: rng.choice(values) for slot, values in _FILLERS.items()}
    fields["name"] = name
    answer_slot = {0: "ingredient", 1: "pet", 2: "city"}[_FACTS.index((statement, question))]
    return statement.format(**fields), question.format(**fields), fields[answer_slot]


def _haystack(
    tokenizer, corpus: str, paragraph_starts: list[int], n_tokens: int, rng: random.Random
) -> str:
    """``n_tokens`` content tokens of ``corpus`` from a random paragraph start, stripped."""
    # Enough characters for the tokens: pydoc text averages under 4 characters per token.
    reach = max(8 * n_tokens, 200)
    usable = [p for p in paragraph_starts if p + reach <= len(corpus)] or [0]
    start = rng.choice(usable)
    stretch = corpus[start : start + reach]
    starts, _ = token_offsets(tokenizer, stretch)
    if len(starts) <= n_tokens:
        raise ValueError(
            f"the haystack text is too short for {n_tokens} tokens; pass a longer haystack"
        )
    return stretch[: starts[n_tokens]].strip()


def build_needle_tasks(
    tokenizer,
    *,
    kinds: Sequence[str] = NEEDLE_KINDS,
    lengths: Sequence[int] = (256, 512, 1024, 2048),
    depths: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    documents_per_depth: int = 2,
    haystack: Mapping[str, str] | None = None,
    seed: int = 0,
) -> RetrievalTask:
    """Build passkey and needle retrieval pools over pydoc text, deterministically.

    Args:
        tokenizer: a fast tokenizer (``model.tokenizer``) that counts the lengths.
        kinds: ``"passkey"`` and/or ``"needle"`` (see the module docstring).
        lengths: document lengths in content tokens, each ``>= 64``; one pool per kind and
            length.
        depths: where the needle starts, as a fraction of the haystack's tokens, each in
            ``[0, 1]``; it is moved to the nearest start of a sentence or a line.
        documents_per_depth: documents (and queries) per depth in each pool; a pool holds
            ``len(depths) * documents_per_depth`` documents, at most 40.
        haystack: ``{doc_id: text}`` to draw the haystacks from; default ``load_pydoc_topics()``.
        seed: the same seed, tokenizer and haystack give the same tasks. Each pool draws from
            its own generator, so adding a length or kind leaves the other pools unchanged.
    Returns:
        ``RetrievalTask`` named ``"needles"``, of source ``"needles"``:

        * ``documents``: ids ``"<kind>-<length>-<index>"``; ``queries``: ids
          ``"q-<kind>-<length>-<index>"``, one per document;
        * ``qrels_spans``: ``{query_id: [(doc_id, start, end)]}``, the needle's half-open
          character span (a chunk is relevant when it overlaps it); ``qrels_doc``: ``{query_id:
          {doc_id: 1}}``;
        * ``query_info``: one row per query, indexed by query id, with columns ``doc_id``,
          ``kind``, ``length`` (the target in tokens), ``n_tokens`` (the document's actual
          content tokens), ``depth`` (the target, in ``[0, 1]``), ``needle_token`` (index of the
          needle's first token), ``actual_depth`` (the haystack tokens before the needle, as a
          share of all haystack tokens), ``start`` and ``end`` (the needle's characters),
          ``needle`` (its text) and ``answer`` (what the query asks for).

        Every document has ``length`` tokens, give or take a few where the needle meets the
        haystack. ``needle_pools`` lists the pools and ``select_needles`` takes some of them.
    """
    kinds, lengths, depths = list(kinds), [int(n) for n in lengths], [float(d) for d in depths]
    unknown = [k for k in kinds if k not in NEEDLE_KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds={kinds}; valid kinds: {list(NEEDLE_KINDS)}")
    if not lengths or min(lengths) < 64:
        raise ValueError(f"lengths={lengths}; give one or more lengths of at least 64 tokens")
    if not depths or not all(0 <= d <= 1 for d in depths):
        raise ValueError(f"depths={depths}; give one or more fractions in [0, 1]")
    per_pool = len(depths) * documents_per_depth
    if documents_per_depth < 1 or per_pool > len(_NAMES):
        raise ValueError(
            f"documents_per_depth={documents_per_depth} with {len(depths)} depths gives "
            f"{per_pool} documents per pool; it must be >= 1 and the pool at most {len(_NAMES)}"
        )
    source = load_pydoc_topics() if haystack is None else dict(haystack)
    corpus = "\n\n".join(source[d] for d in sorted(source))
    paragraph_starts = [0] + [m.end() for m in re.finditer(r"\n\n", corpus)]

    documents, queries, spans, judged, rows = {}, {}, {}, {}, []
    for kind in kinds:
        for length in lengths:
            rng = random.Random(f"{seed}/{kind}/{length}")
            names = rng.sample(_NAMES, per_pool)
            for index in range(per_pool):
                depth = depths[index % len(depths)]
                needle, query, answer = _needle(kind, names[index], rng)
                needle_tokens = len(token_offsets(tokenizer, needle)[0])
                text = _haystack(
                    tokenizer, corpus, paragraph_starts, max(length - needle_tokens, 1), rng
                )
                starts, _ = token_offsets(tokenizer, text)
                target = int(starts[round(depth * (len(starts) - 1))]) if depth < 1 else len(text)
                # A sentence or a line starts there (pydoc sentences can run long, lines not).
                boundaries = {s.start for s in chunk_sentences(text)} | {len(text)}
                boundaries |= {m.end() for m in re.finditer(r"\n\s*", text) if m.end() < len(text)}
                position = min(boundaries, key=lambda p: (abs(p - target), p))
                before, after = text[:position].rstrip(), text[position:].lstrip()
                head = f"{before} " if before else ""
                document = f"{head}{needle}{' ' if after else ''}{after}"
                doc_id = f"{kind}-{length}-{index:02d}"
                query_id = f"q-{doc_id}"
                start, end = len(head), len(head) + len(needle)
                document_starts, _ = token_offsets(tokenizer, document)
                needle_token = int(np.searchsorted(document_starts, start))
                documents[doc_id] = document
                queries[query_id] = query
                spans[query_id] = [(doc_id, start, end)]
                judged[query_id] = {doc_id: 1}
                rows.append(
                    {
                        "query_id": query_id,
                        "doc_id": doc_id,
                        "kind": kind,
                        "length": length,
                        "n_tokens": len(document_starts),
                        "depth": depth,
                        "needle_token": needle_token,
                        "actual_depth": needle_token / max(len(document_starts) - needle_tokens, 1),
                        "start": start,
                        "end": end,
                        "needle": needle,
                        "answer": answer,
                    }
                )
    needles = pd.DataFrame(rows).set_index("query_id")
    return RetrievalTask(
        documents=documents,
        queries=queries,
        qrels_spans=spans,
        qrels_doc=judged,
        name="needles",
        source="needles",
        query_info=needles,
    )
