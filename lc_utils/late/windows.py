"""Windows over a long document ("long late chunking").

A pass holds at most ``window`` positions, special tokens included, so ``window - n_special``
content tokens (``EmbeddingModel.window``). A document that fits is encoded in one pass, exactly
as a single call to the model would. A longer one runs in windows whose starts are
``stride = content_tokens - overlap`` apart; every window after the first contributes only the
tokens after its first ``overlap`` positions, so each token takes its embedding from exactly one
window and has at least ``overlap`` tokens of left context there. The last window is moved left
to end at the document's end, so it is always full and its tokens get more context, not less.

Introduced in notebook 02_token_embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.batching import Job
from ..text.chunking import check_integer
from ..text.tokens import TokenizedDocument

__all__ = ["DEFAULT_OVERLAP_FRACTION", "WindowPlan", "plan_windows", "window_jobs"]

# Default overlap of consecutive windows, as a fraction of the content window. Notebook 10's
# frontier chose it with the default window (docs/findings.md, "The window default, from a
# frontier"); it was 1/4 before.
DEFAULT_OVERLAP_FRACTION = 1 / 16


@dataclass(frozen=True)
class WindowPlan:
    """Where the forward passes fall over a document's content tokens.

    ``windows[k] = (a, b)``: pass k sees content tokens ``[a, b)``, at most ``content_tokens``
    of them. ``kept[k] = (c, d)``: pass k supplies the embeddings of tokens ``[c, d)``. The kept
    ranges tile ``[0, n_tokens)`` exactly.
    Introduced in notebook 02_token_embeddings.
    """

    n_tokens: int
    content_tokens: int
    overlap: int
    windows: tuple[tuple[int, int], ...]
    kept: tuple[tuple[int, int], ...]

    @property
    def tokens_computed(self) -> int:
        """Content tokens the model runs over in all passes (>= n_tokens when windows overlap)."""
        return sum(b - a for a, b in self.windows)


def plan_windows(n_tokens: int, content_tokens: int, overlap: int | None = None) -> WindowPlan:
    """Plan overlapping windows over ``n_tokens`` content tokens (see the module docstring);
    ``content_tokens`` is ``model.window(...).content_tokens``.

    ``overlap`` defaults to 1/16 of the content window (``DEFAULT_OVERLAP_FRACTION``, chosen by
    notebook 10's frontier together with the default ``model.window()``). Raises ``ValueError``
    unless ``0 <= overlap < content_tokens``. Introduced in notebook 02_token_embeddings.
    """
    n_tokens = check_integer("n_tokens", n_tokens, minimum=0)
    content_tokens = check_integer("content_tokens", content_tokens, minimum=1)
    if overlap is None:
        overlap = int(content_tokens * DEFAULT_OVERLAP_FRACTION)
    overlap = check_integer("overlap", overlap)
    if not 0 <= overlap < content_tokens:
        raise ValueError(
            f"overlap={overlap} with a content window of {content_tokens} tokens; it must "
            f"satisfy 0 <= overlap < {content_tokens}"
        )
    if n_tokens <= content_tokens:
        span = ((0, n_tokens),)
        return WindowPlan(n_tokens, content_tokens, overlap, span, span)
    stride = content_tokens - overlap
    windows, kept = [(0, content_tokens)], [(0, content_tokens)]
    while kept[-1][1] < n_tokens:
        start = min(len(windows) * stride, n_tokens - content_tokens)
        windows.append((start, start + content_tokens))
        kept.append((kept[-1][1], min(start + content_tokens, n_tokens)))
    return WindowPlan(n_tokens, content_tokens, overlap, tuple(windows), tuple(kept))


def window_jobs(
    document: int, tokens: TokenizedDocument | np.ndarray, plan: WindowPlan
) -> list[Job]:
    """One ``Job`` per window of ``plan``: the window's ids (of ``tokens``, a
    ``TokenizedDocument`` or its content ids), keeping the tokens it supplies."""
    ids = tokens.input_ids if isinstance(tokens, TokenizedDocument) else tokens
    return [
        Job(document, ids[a:b], c - a, (c, d))
        for (a, b), (c, d) in zip(plan.windows, plan.kept, strict=True)
    ]
