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
from collections.abc import Callable
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
MIN_POSITIVES = 20  # the sample grows (doubling) until it holds this many positives ...
MAX_SAMPLE_SHARE = 0.5  # ... or this share of the inputs


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
    """(reject below, accept from): keep `recall` of the positives; accept no negative.

    The rejection quantile is taken at half the allowed loss: a sample's positives are few,
    and its quantile errs both ways; the target is a floor, not an average."""
    if not positive.any():
        return 0.0, np.inf
    loss = (1.0 - recall) / 2
    low = float(np.quantile(scores[positive], loss)) if recall < 1.0 else -np.inf
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


def decide(classify: Callable[[np.ndarray], list[Any]], vectors: np.ndarray, usable: np.ndarray,
           label: str, recall: float) -> tuple[list[Any], dict[str, Any]]:
    """Each value's label: the classifier's (sample and uncertain values), `label` (accepted)
    or None (rejected: the predicate fails), and the figures of how it was decided."""
    count = len(vectors)
    order = np.random.default_rng(0).permutation(count)
    size = min(count, max(MIN_SAMPLE, int(SAMPLE_SHARE * count)))
    labels: dict[int, Any] = {}
    while True:  # label a sample; widen it until it holds enough positives to learn from
        fresh = np.sort(order[len(labels):size])
        labels.update(zip(fresh.tolist(), classify(fresh)))
        positives = sum(value == label for value in labels.values())
        if positives >= MIN_POSITIVES or size >= count * MAX_SAMPLE_SHARE:
            break
        size = min(count, size * 2)
    sample = np.array(sorted(labels), dtype=np.int64)
    positive = np.array([labels[i] == label for i in sample.tolist()])
    fitted = fit_and_score(vectors[sample], positive, vectors)
    rest = np.setdiff1d(np.arange(count), sample)
    accepted = rejected = np.array([], dtype=np.int64)
    low = high = None
    if fitted is None:
        uncertain = rest
    else:
        held_out, scores = fitted
        low, high = thresholds(held_out, positive, recall)
        sure = usable[rest]
        accepted = rest[sure & (scores[rest] >= high)]
        rejected = rest[sure & (scores[rest] < low)]
        uncertain = np.setdiff1d(rest, np.concatenate([accepted, rejected]))
    if len(uncertain):
        labels.update(zip(uncertain.tolist(), classify(uncertain)))
    labels.update((int(i), label) for i in accepted)
    figures = {"recall_target": recall, "sample": int(size), "accepted": int(len(accepted)),
               "rejected": int(len(rejected)), "sent_to_model": int(size + len(uncertain)),
               "reject_below": low, "accept_from": high}
    rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}
    return [labels.get(i) for i in range(count)], rounded
