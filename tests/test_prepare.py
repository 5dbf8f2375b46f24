"""The host side of the pipeline: one batched tokenization, naive ids reused only where exact,
and workers that change nothing but the speed.

The tokenizer tests compare the package's own path (a private copy of the Rust backend, one
batched call) with the tokenizer's public call, on MiniLM's WordPiece and on a byte-level BPE and a
Metaspace Unigram tokenizer trained here, so that every published layout of offsets is covered.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lc_utils as lc
from lc_utils.late.prepare import Preparer
from lc_utils.text.tokens import encode_texts, tokenize_documents

# Characters that stress offsets and word boundaries: accents (stripped by BERT's normalizer),
# CJK (split per character), zero-width and control characters, punctuation and '#'.
ALPHABET = st.sampled_from(
    list("abcdefghij ABC  \n\t.,;:!?'\"()-#")
    + ["é", "ß", "日本", "\u200b", "\x00", "😀", "ﬁ", "x" * 120]
)
TEXTS = st.lists(ALPHABET, min_size=0, max_size=60).map("".join)


def _reference(tokenizer, text, prefix=""):
    """The tokenizer's public call, as the package made it before it batched."""
    encoding = tokenizer(
        prefix + text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
        split_special_tokens=True,
    )  # fmt: skip
    offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    return np.asarray(encoding["input_ids"]), offsets[:, 1] - len(prefix)


def _trained(kind: str):
    """A small fast tokenizer of another published layout, trained on the pydoc topics."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(lc.datasets.load_pydoc_topics().values())[:20]
    if kind == "bpe":  # GPT-2's layout: bytes, the space inside the next word's token
        raw = Tokenizer(models.BPE())
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        raw.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<unk>", "<s>", "</s>"])
    else:  # SentencePiece's layout: "▁word"
        raw = Tokenizer(models.Unigram())
        raw.pre_tokenizer = pre_tokenizers.Metaspace()
        raw.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=500, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>"
        )
    raw.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


@pytest.fixture(scope="module", params=["wordpiece", "bpe", "unigram"])
def tokenizer(request):
    if request.param == "wordpiece":
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(lc.packaged_minilm_path())
    return _trained(request.param)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(TEXTS, min_size=1, max_size=4), prefix=st.sampled_from(["", "doc: "]))
def test_the_batched_backend_gives_the_tokenizers_own_ids_and_offsets(tokenizer, texts, prefix):
    for text, document in zip(texts, tokenize_documents(tokenizer, texts, prefix), strict=True):
        ids, ends = _reference(tokenizer, text, prefix)
        assert document.input_ids.dtype == np.int32
        assert np.array_equal(document.input_ids, ids)
        assert np.array_equal(document.ends, ends)
        single = lc.tokenize_document(tokenizer, text, prefix)
        assert np.array_equal(single.starts, document.starts)


def test_the_users_tokenizer_keeps_its_own_settings():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(lc.packaged_minilm_path())
    before = (tokenizer._tokenizer.truncation, tokenizer._tokenizer.padding)
    long_text = "word " * 400
    assert len(lc.tokenize_document(tokenizer, long_text)) == 400  # the checkpoint truncates at 128
    assert (tokenizer._tokenizer.truncation, tokenizer._tokenizer.padding) == before
    assert (
        encode_texts(tokenizer, ["a [SEP] b"])[0].tolist()
        == tokenizer("a [SEP] b", add_special_tokens=False, split_special_tokens=True)["input_ids"]
    )


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=TEXTS, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_reused_naive_ids_equal_each_chunk_tokenized_alone(minilm, text, cuts):
    """Chunks cut anywhere (mid-word too): every kept chunk's naive ids, reused or not, are those
    of its text alone."""
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    chunks = [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=False) if a < b]
    preparer = Preparer(minilm.tokenizer, "", "sentences", {}, "naive")
    prepared = preparer([("d", text, chunks)])
    document = prepared.documents[0]
    alone = encode_texts(minilm.tokenizer, [text[a:b] for a, b in document.spans.tolist()])
    for got, want in zip(prepared.naive_chunk_ids(), alone, strict=True):
        assert got.tolist() == want.tolist()


def test_fixed_chunks_reuse_most_naive_ids(minilm):
    documents = list(lc.datasets.load_pydoc_topics().items())[:10]
    preparer = Preparer(minilm.tokenizer, "", "fixed", {"chunk_size": 64}, "naive")
    prepared = preparer([(d, t, None) for d, t in documents])
    n_chunks = len(prepared.naive_bounds) - 1
    assert prepared.reused > 0.5 * n_chunks, (prepared.reused, n_chunks)


def _corpus(n=40):
    topics = lc.datasets.load_pydoc_topics()
    return {
        f"{doc_id}-{i}": text[: 300 + 37 * i]
        for i, (doc_id, text) in enumerate(topics.items())
        if i < n
    }


@pytest.mark.parametrize("method", ["late", "naive"])
@pytest.mark.parametrize("strategy", ["fixed", "sentences"])
def test_any_number_of_workers_gives_the_same_result_in_the_same_order(
    tiny_model, method, strategy
):
    corpus = _corpus()
    runs = [
        lc.embed_corpus(
            tiny_model,
            corpus,
            method=method,
            strategy=strategy,
            documents_per_batch=6,
            progress=False,
            workers=workers,
        )  # fmt: skip
        for workers in (0, 1, 2, 3)  # 2 and 3 prepare each group in as many parts
    ]
    for run in runs[1:]:
        assert run.records == runs[0].records
        assert run.doc_ids == list(corpus)
        assert np.array_equal(run.vectors, runs[0].vectors)


@pytest.mark.parametrize("method", ["late", "naive"])
def test_a_group_prepared_in_parts_and_combined_is_the_group_prepared_whole(tiny_model, method):
    """What two or more workers do with a group: prepare consecutive parts apart and combine
    them. Every field equals one call over the group, chunks without tokens (skipped) and the
    naive ids (some reused from the document, some tokenized alone) included."""
    from lc_utils.corpus import corpus_preparer
    from lc_utils.late.prepare import split_group

    corpus = {
        **_corpus(9), "blank": "   ", "mixed": "Un été à Kyōto 😀.\n\nAnd more.",
        "zero-width": "A paragraph.\n\n\u200b\u200b\n\nAnother one, after a chunk of no token.",
    }  # fmt: skip
    group = [(d, t, None) for d, t in corpus.items()]
    preparer = corpus_preparer(tiny_model, method, "paragraphs", {})
    whole = preparer(group)
    assert whole.skipped == [("zero-width", 1, 14, 16)]
    for n in (2, 3, 5, 12):
        parts = split_group(group, n)
        assert [item for part in parts for item in part] == group and all(parts)
        assert len(parts) <= n
        got = preparer.combine(group, [preparer.prepare_documents(part) for part in parts])
        assert got.records == whole.records and got.skipped == whole.skipped
        assert (got.n_unknown, got.reused) == (whole.n_unknown, whole.reused)
        assert np.array_equal(got.naive_ids, whole.naive_ids)
        assert np.array_equal(got.naive_bounds, whole.naive_bounds)
        for a, b in zip(got.documents, whole.documents, strict=True):
            assert a.doc_id == b.doc_id and a.n_tokens == b.n_tokens
            for field in ("spans", "token_spans", "input_ids"):
                assert np.array_equal(getattr(a, field), getattr(b, field))
        batches = got.late.batches if method == "late" else got.naive[0]
        want = whole.late.batches if method == "late" else whole.naive[0]
        assert len(batches) == len(want)
        for a, b in zip(batches, want, strict=True):
            assert np.array_equal(a.ids, b.ids) and np.array_equal(a.lengths, b.lengths)
            assert (a.rows is None and b.rows is None) or np.array_equal(a.rows, b.rows)


def test_a_group_is_split_into_parts_of_about_equal_text():
    from lc_utils.late.prepare import split_group

    group = [(str(i), "x" * size, None) for i, size in enumerate([10, 10, 10, 10, 40, 10, 10])]
    halves = split_group(group, 2)
    assert [len(part) for part in halves] == [4, 3]  # 40 and 60 characters of 100
    assert split_group(group, 1) == [group] and split_group(group[:1], 4) == [group[:1]]
    assert [len(part) for part in split_group(group, 20)] == [1] * 7


def test_a_stream_of_documents_is_prepared_in_workers_too(tiny_model):
    corpus = _corpus(20)
    streamed = lc.embed_corpus(
        tiny_model, iter(corpus.items()), documents_per_batch=4, progress=False, workers=2
    )
    assert streamed.doc_ids == list(corpus)
    reference = lc.embed_corpus(
        tiny_model, corpus, documents_per_batch=4, progress=False, workers=0
    )
    assert np.array_equal(streamed.vectors, reference.vectors)


def _bad_chunker(text):
    if "boom" in text:
        raise ValueError("cannot chunk this")
    if "@@key@@" in text:
        raise KeyError("no such rule")
    return lc.chunk_text(text, "sentences")


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_an_error_in_a_worker_reaches_the_caller_naming_the_document(tiny_model, workers):
    corpus = _corpus(12)
    corpus["broken-7"] = "fine start \ud800 then a lone surrogate"
    with pytest.raises(ValueError, match=r"document 'broken-7'.*lone surrogate"):
        lc.embed_corpus(tiny_model, corpus, documents_per_batch=3, progress=False, workers=workers)
    corpus = _corpus(12)
    corpus["odd-one"] = "and then boom."
    with pytest.raises(ValueError, match=r"document 'odd-one': cannot chunk this"):
        lc.embed_corpus(
            tiny_model, corpus, strategy=_bad_chunker, chunking="custom", documents_per_batch=3,
            progress=False, workers=workers,
        )  # fmt: skip
    corpus = {**_corpus(5), "keyed": "a @@key@@ here."}
    with pytest.raises(KeyError, match=r"document 'keyed': 'no such rule'"):
        lc.embed_corpus(
            tiny_model, corpus, strategy=_bad_chunker, chunking="custom", documents_per_batch=2,
            progress=False, workers=workers,
        )  # fmt: skip


def test_workers_must_be_a_count(tiny_model):
    with pytest.raises(ValueError, match="workers=-1"):
        lc.embed_corpus(tiny_model, ["a b"], workers=-1, progress=False)
    with pytest.raises(TypeError, match="workers=1.5"):
        lc.embed_corpus(tiny_model, ["a b"], workers=1.5, progress=False)


def test_a_bad_window_is_refused_before_any_worker_starts(tiny_model):
    with pytest.raises(ValueError, match="overlap=600"):
        lc.embed_corpus(tiny_model, _corpus(40), overlap=600, progress=False, workers=2)
    with pytest.raises(ValueError, match="batch_tokens=0"):
        lc.embed_corpus(tiny_model, _corpus(40), batch_tokens=0, progress=False, workers=2)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(TEXTS, min_size=1, max_size=3), block=st.integers(1, 40))
def test_long_texts_tokenized_in_blocks_equal_one_call(tokenizer, texts, block, monkeypatch):
    """Cut into blocks at spaces and line breaks (word-local tokenizers) or whole (the others):
    the same ids and offsets as the tokenizer's one call over the whole text."""
    import lc_utils.text.tokens as tokens

    monkeypatch.setattr(tokens, "BLOCK_CHARACTERS", block)
    for text, document in zip(texts, tokenize_documents(tokenizer, texts, "x: "), strict=True):
        ids, ends = _reference(tokenizer, text, "x: ")
        assert np.array_equal(document.input_ids, ids)
        assert np.array_equal(document.ends, ends)
    monkeypatch.undo()


def test_a_long_document_is_cut_into_blocks_at_word_boundaries(minilm):
    import lc_utils.text.tokens as tokens

    text = " ".join(lc.datasets.load_pydoc_topics().values())
    cuts = tokens._block_cuts(text)
    assert len(cuts) > 3 and cuts[0] == 0 and cuts[-1] == len(text)
    assert all(text[c] in " \n" for c in cuts[1:-1])
    whole = minilm.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert lc.tokenize_document(minilm.tokenizer, text).input_ids.tolist() == whole


def _square_or_die(x):
    import os

    if x == "die":
        os._exit(3)
    return x * x


@pytest.mark.parametrize(
    ("workers", "kind"), [(0, "thread"), (1, "thread"), (3, "thread"), (2, "process")]
)
def test_ordered_map_keeps_order_and_holds_few_items_at_once(workers, kind):
    from lc_utils.workers import ordered_map

    pulled = []

    def items():
        for i in range(20):
            pulled.append(i)
            yield i

    seen = []
    for item, result in ordered_map(_square_or_die, items(), workers, kind):
        assert result == item * item
        # Never more than 2 * workers items in flight (one with workers=0), counting the one
        # being handed out.
        assert len(pulled) - item <= max(1, 2 * workers)
        seen.append(item)
    assert seen == list(range(20))


def test_the_parts_of_one_item_run_on_different_workers_and_merge_in_order():
    """``ordered_split_map``: each item's parts run side by side (here they can only finish if
    they do: every part waits for the others of its item at a barrier), the results come back in
    order, merged, with at most 2 * workers items in flight; an error in a part, in the merge or
    in the split reaches the caller at its item."""
    import threading

    from lc_utils.workers import ordered_split_map

    barriers: dict = {}

    def split(item):
        barriers[item] = threading.Barrier(2, timeout=10)
        return [(item, 0), (item, 1)]

    def work(part):
        item, index = part
        barriers[item].wait()
        if item == "bad part" and index == 1:
            raise KeyError("a part failed")
        return 10 * item + index if isinstance(item, int) else index

    def merge(item, results):
        if item == "bad merge":
            raise ValueError("the merge failed")
        return results

    pulled = []

    def items():
        for i in range(12):
            pulled.append(i)
            yield i

    seen = []
    for item, merged in ordered_split_map(split, work, merge, items(), 2):
        assert merged == [10 * item, 10 * item + 1]
        assert len(pulled) - item <= 4
        seen.append(item)
    assert seen == list(range(12))
    got = list(ordered_split_map(split, work, merge, [7], 2))  # one item alone: still in parallel
    assert got == [(7, [70, 71])]
    with pytest.raises(KeyError, match="a part failed"):
        list(ordered_split_map(split, work, merge, [1, "bad part"], 2))
    with pytest.raises(ValueError, match="the merge failed"):
        list(ordered_split_map(split, work, merge, [1, "bad merge"], 2))

    def bad_split(item):
        raise TypeError(f"cannot split {item}")

    with pytest.raises(TypeError, match="cannot split 2"):
        list(ordered_split_map(bad_split, work, merge, [2], 2))
    # With fewer than two workers the parts run one after another, in the caller's order.
    serial = list(ordered_split_map(lambda i: [i, i + 1], lambda p: p * p, merge, [1, 2], 1))
    assert serial == [(1, [1, 4]), (2, [4, 9])]


def test_a_worker_that_dies_is_reported_with_what_to_do():
    from lc_utils.workers import WorkerError, ordered_map

    with pytest.raises(WorkerError, match="kind='thread'"):
        list(ordered_map(_square_or_die, [1, 2, "die", 4], 2, "process"))


def _tokenizer_threads(_):
    return os.environ.get("TOKENIZERS_PARALLELISM")


@pytest.mark.parametrize(
    ("workers", "kind", "inside"),
    [(0, "thread", None), (1, "thread", None), (2, "thread", "false"), (1, "process", "false")],
)
def test_the_tokenizers_threads_are_off_only_while_two_or_more_workers_run(
    workers, kind, inside, monkeypatch
):
    from lc_utils.workers import ordered_map

    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    seen = {result for _, result in ordered_map(_tokenizer_threads, range(6), workers, kind)}
    assert seen == {inside}
    assert "TOKENIZERS_PARALLELISM" not in os.environ  # restored once the map has ended
    # A value the user chose is left as it is, inside and after (a forked worker process always
    # turns the tokenizer's threads off: they must not start after a fork).
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    seen = {result for _, result in ordered_map(_tokenizer_threads, range(6), workers, kind)}
    assert seen == {"false" if kind == "process" else "true"}
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
