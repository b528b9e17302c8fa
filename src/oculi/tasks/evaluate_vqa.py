"""VQA accuracy: any model's answers against VQAv2-style, easy-VQA or JSON Lines data.

The metric is the VQA challenge's: answers are normalised (lower case, punctuation, number
words to digits, articles and common contractions as in the official evaluation script), and
a question with ten human answers scores ``min(1, matches / 3)`` averaged over the ten
leave-one-out subsets; a question with one reference answer (easy-VQA, JSON Lines) scores 1
for an exact match after normalisation. Sentence answers are cut to their short answer first:
oculi's built-in model answers "1 — there is one person.", whose short answer is "1"; a
generative model's trailing full stop is dropped.

Results are grouped by the reference answer's type: ``yes/no``, ``number``, ``other``.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from oculi.core.errors import OculiError
from oculi.core.types import SCHEMA_VERSION
from oculi.tasks.train.data import VQAItem
from oculi.tasks.train.progress import ProgressFn, StopFn, TrainProgress

_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {"dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "arent": "aren't", "cant": "can't",
                 "wont": "won't", "its": "it's", "thats": "that's", "whats": "what's", "im": "i'm", "youre": "you're"}
_PUNCT = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*#%^&$~|:]")
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_NUM = re.compile(r"(\d)(,)(\d)")


def normalise_answer(text: str) -> str:
    """The VQA evaluation's answer normalisation.

    Example:
        >>> normalise_answer("Two dogs."), normalise_answer("The Red one!"), normalise_answer("dont know")
        ('2 dogs', 'red 1', "don't know")
    """
    t = text.replace("\n", " ").replace("\t", " ").strip().lower()
    t = _COMMA_NUM.sub(r"\1\3", t)
    t = _PUNCT.sub(" ", t)
    t = _PERIOD.sub("", t)
    words = []
    for w in t.split():
        w = _NUMBERS.get(w, w)
        if w in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(w, w))
    return " ".join(words)


def short_answer(text: str) -> str:
    """The short answer of a sentence answer: the part before an em dash, without a final full
    stop; the built-in model's hedged "Probably not" is its "no".

    Example:
        >>> short_answer("1 — there is one person."), short_answer("Probably not — nothing seen."), short_answer("Blue.")
        ('1', 'no', 'Blue')
    """
    head = text.split(" — ", 1)[0].strip()
    head = head[:-1] if head.endswith(".") else head
    return "no" if head.lower() == "probably not" else head


def vqa_accuracy(prediction: str, references: Sequence[str]) -> float:
    """The VQA challenge accuracy of one answer (see the module docstring)."""
    pred = normalise_answer(prediction)
    refs = [normalise_answer(r) for r in references]
    if len(refs) == 1:
        return 1.0 if pred == refs[0] else 0.0
    scores = []
    for i in range(len(refs)):
        others = refs[:i] + refs[i + 1 :]
        scores.append(min(1.0, sum(1 for r in others if r == pred) / 3.0))
    return sum(scores) / len(scores)


def answer_type(references: Sequence[str]) -> str:
    a = normalise_answer(max(set(references), key=list(references).count))
    if a in ("yes", "no"):
        return "yes/no"
    return "number" if a.isdigit() else "other"


@dataclass
class VQAResult:
    question_id: str
    image: str
    question: str
    references: list[str]
    prediction: str
    accuracy: float
    error: str | None = None


@dataclass
class VQAEvaluation:
    """Accuracy overall and per answer type, and each question's result."""

    model: str
    results: list[VQAResult]
    seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(r.accuracy for r in self.results) / len(self.results) if self.results else 0.0

    def by_type(self) -> dict[str, dict[str, float]]:
        groups: dict[str, list[float]] = defaultdict(list)
        for r in self.results:
            groups[answer_type(r.references)].append(r.accuracy)
        return {k: {"accuracy": round(sum(v) / len(v), 4), "n": len(v)} for k, v in sorted(groups.items())}

    def to_dict(self, *, with_results: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "task": "vqa", "model": self.model, "n": len(self.results),
                             "accuracy": round(self.accuracy, 4), "by_type": self.by_type(),
                             "errors": sum(1 for r in self.results if r.error), "seconds": round(self.seconds, 2),
                             "problems": self.problems}
        if with_results:
            d["results"] = [{"question_id": r.question_id, "image": r.image, "question": r.question, "references": r.references,
                             "prediction": r.prediction, "accuracy": round(r.accuracy, 4), **({"error": r.error} if r.error else {})}
                            for r in self.results]
        return d


AskFn = Callable[[str, str], str]  # (image path, question) → answer text
AskManyFn = Callable[[Sequence[VQAItem]], list[str]]


def evaluate_vqa(
    items: Sequence[VQAItem],
    *,
    ask: AskFn | None = None,
    ask_many: AskManyFn | None = None,
    model: str = "builtin",
    batch_size: int = 256,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    problems: Sequence[str] = (),
) -> VQAEvaluation:
    """Ask every question and score the answers.

    Args:
        items: The questions with their reference answers (``oculi.tasks.train.data.read_vqa``).
        ask: Answers one question (``lambda img, q: engine.ask(img, q).answer``); an ``OculiError``
            it raises scores 0 and is recorded.
        ask_many: Or: answers a batch at once (a trained answer model does).
        model: Named in the report.

    Raises:
        Interrupted: ``should_stop`` said so (nothing is kept: evaluation is cheap to rerun).
    """
    from oculi.core.errors import Interrupted

    if (ask is None) == (ask_many is None):
        raise ValueError("give ask or ask_many")
    t0 = time.perf_counter()
    results: list[VQAResult] = []
    step = batch_size if ask_many is not None else 1
    for start in range(0, len(items), step):
        if should_stop and should_stop():
            raise Interrupted(f"evaluation interrupted after {start} of {len(items)} questions")
        chunk = items[start : start + step]
        if ask_many is not None:
            answers: list[tuple[str, str | None]] = [(a, None) for a in ask_many(chunk)]
        else:
            answers = []
            for it in chunk:
                try:
                    answers.append((ask(it.image, it.question), None))  # type: ignore[misc]
                except OculiError as e:
                    answers.append(("", str(e)))
        for it, (text, err) in zip(chunk, answers):
            pred = short_answer(text)
            results.append(VQAResult(it.question_id, it.image, it.question, list(it.answers), pred,
                                     vqa_accuracy(pred, it.answers) if err is None else 0.0, err))
        if progress:
            progress(TrainProgress("evaluating", len(results), len(items)))
    return VQAEvaluation(model, results, time.perf_counter() - t0, list(problems))
