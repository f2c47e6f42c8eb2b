"""Rule (opt in): a cheap proxy decides the clear cases of `classify(x, L) = 'c'`.

    SELECT ... WHERE classify(body, L) = 'refund' WITH (proxy = 'embedding', recall = 0.9)

The embeddings of the inputs (usually already in the result cache) feed a logistic regression
trained on a sample the real classifier labels. Values the proxy is sure about are accepted or
rejected without the classifier; the uncertain middle goes to it. The rejection threshold keeps
the stated share of the sample's positives (the recall target); the acceptance threshold admits
no sampled negative. Figures — sample, accepted, rejected, sent to the model, thresholds — are
in the stage's stats; precision and recall against the full model are measured in the tests
and the optimizer benchmark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlglot import exp

from quarrydb.engine.planner import Candidate

_CLAUSE = re.compile(
    r"\s+WITH\s*\(\s*proxy\s*=\s*'(?P<kind>\w+)'\s*(?:,\s*recall\s*=\s*(?P<recall>[0-9.]+)\s*)?\)",
    re.IGNORECASE,
)
MIN_SAMPLE = 64
SAMPLE_SHARE = 0.15


@dataclass
class ProxyOptions:
    kind: str = "embedding"
    recall: float = 0.9


def take_clause(text: str) -> tuple[str, ProxyOptions | None]:
    """The statement without its proxy clause, and the clause's options."""
    match = _CLAUSE.search(text)
    if match is None:
        return text, None
    if match.group("kind").lower() != "embedding":
        raise ValueError(f"unknown proxy {match.group('kind')!r}: the proxy is 'embedding'")
    recall = float(match.group("recall") or 0.9)
    if not 0.0 < recall <= 1.0:
        raise ValueError(f"proxy recall must be in (0, 1], got {recall}")
    return text[: match.start()] + text[match.end():], ProxyOptions("embedding", recall)


def wanted_label(candidate: Candidate) -> str | None:
    """'c' when the candidate is exactly `classify(...) = 'c'` in a WHERE, read nowhere else."""
    call = candidate.calls[0]
    if call.binding.function.name != "classify" or len(candidate.calls) != 1:
        return None
    conjunct = candidate.conjunct
    if not isinstance(conjunct, exp.EQ) or candidate.call_node is None:
        return None
    sides = [conjunct.this, conjunct.expression]
    if candidate.call_node not in sides:
        return None
    other = sides[1] if sides[0] == candidate.call_node else sides[0]
    return other.name if isinstance(other, exp.Literal) and other.is_string else None


def thresholds(scores: np.ndarray, positive: np.ndarray, recall: float) -> tuple[float, float]:
    """(reject below, accept from): keep `recall` of the positives; accept no negative."""
    if not positive.any():
        return 0.0, np.inf
    low = float(np.quantile(scores[positive], 1.0 - recall)) if recall < 1.0 else -np.inf
    negatives = scores[~positive]
    high = float(negatives.max()) + 1e-9 if len(negatives) else float(scores.min())
    return min(low, high), high


def fit_and_score(sample_vectors: np.ndarray, sample_positive: np.ndarray,
                  vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Out-of-fold scores for the sample (for thresholds) and scores for all values."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    counts = np.bincount(sample_positive.astype(int), minlength=2)
    if counts.min() < 3:
        return None  # a proxy cannot learn a class it has hardly seen
    model = LogisticRegression(max_iter=1000, class_weight="balanced")
    folds = int(min(5, counts.min()))
    held_out = cross_val_predict(model, sample_vectors, sample_positive, cv=folds,
                                 method="predict_proba")[:, 1]
    model.fit(sample_vectors, sample_positive)
    return held_out, model.predict_proba(vectors)[:, 1]


def summary(**figures: Any) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}
