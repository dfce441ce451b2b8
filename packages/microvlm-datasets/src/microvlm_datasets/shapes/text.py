"""Texts about a scene: captions, VQA questions, referring expressions and conversations.

Every text is true of the image it belongs to: positions come from the shapes' centres
(thirds of the image), counts from the scene, and a (colour, kind) pair names one object.
Templates are chosen with the scene's random generator, so a seed fixes every word.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from microvlm_datasets.shapes.scene import COLOURS, KINDS, Scene, Shape

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")

NUMBERS = ("zero", "one", "two", "three", "four", "five")
CAPTIONS_PER_IMAGE = 5
QUESTIONS_PER_IMAGE = 5
ANSWERS_PER_QUESTION = 10  # as in VQAv2
NOISE_P = 0.05  # chance that one of the ten "annotators" gives a wrong answer
REGIONS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")


# -------------------------------------------------------------------------------------
# Words
# -------------------------------------------------------------------------------------


def name(s: Shape) -> str:
    return f"{s.colour} {s.kind}"


def a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def join_and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def plural(kind: str, n: int) -> str:
    return kind if n == 1 else kind + "s"


def region(s: Shape, size: int) -> tuple[str, str]:
    """Thirds of the shape's centre: ("top" | "middle" | "bottom", "left" | "center" | "right")."""
    cx, cy = s.center
    h = "left" if cx < size / 3 else "right" if cx > 2 * size / 3 else "center"
    v = "top" if cy < size / 3 else "bottom" if cy > 2 * size / 3 else "middle"
    return v, h


def where(s: Shape, size: int) -> str:
    """ "top left", "top", "left", "center", ... (a short VQA answer)."""
    v, h = region(s, size)
    if v == "middle" and h == "center":
        return "center"
    if v == "middle":
        return h
    if h == "center":
        return v
    return f"{v} {h}"


def located(s: Shape, size: int) -> str:
    """ "in the top left", "at the top", "on the left", "in the center"."""
    v, h = region(s, size)
    if v != "middle" and h != "center":
        return f"in the {v} {h}"
    if v != "middle":
        return f"at the {v}"
    if h != "center":
        return f"on the {h}"
    return "in the center"


def side(s: Shape, size: int) -> str:
    return "left" if s.center[0] < size / 2 else "right"


def level(s: Shape, size: int) -> str:
    return "top" if s.center[1] < size / 2 else "bottom"


def _pick(rng: np.random.Generator, items: Sequence[T]) -> T:
    return items[int(rng.integers(len(items)))]


def _unique(scene: Scene, attr: str) -> list[Shape]:
    values = [getattr(s, attr) for s in scene.shapes]
    return [s for s in scene.shapes if values.count(getattr(s, attr)) == 1]


# -------------------------------------------------------------------------------------
# Captions (COCO, web shards)
# -------------------------------------------------------------------------------------


def captions(scene: Scene, rng: np.random.Generator) -> list[str]:
    """Five different true captions of the scene."""
    shapes, size, n = scene.shapes, scene.size, len(scene.shapes)
    listed = join_and([a(name(s)) for s in shapes])
    by_x = sorted(shapes, key=lambda s: s.center[0])
    templates: list[str] = [
        listed,
        f"{NUMBERS[n]} {plural('shape', n)}: {listed}",
        f"an image of {listed}",
        f"{listed} on a {scene.background} background",
        join_and([f"{a(name(s))} {located(s, size)}" for s in shapes]),
        join_and([a(f"{s.size} {name(s)}") for s in shapes]),
        f"a picture with {NUMBERS[n]} colored {plural('shape', n)}: {listed}",
    ]
    if n >= 2:
        left, right = by_x[0], by_x[-1]
        top, bottom = sorted(shapes, key=lambda s: s.center[1])[:: n - 1]
        templates.append("from left to right: " + join_and([a(name(s)) for s in by_x]))
        if right.center[0] - left.center[0] > size * 0.1:
            templates.append(f"{a(name(left))} to the left of the {name(right)}")
        if bottom.center[1] - top.center[1] > size * 0.1:
            templates.append(f"{a(name(top))} above the {name(bottom)}")
    else:
        templates.append(f"a single {name(shapes[0])} {located(shapes[0], size)}")
    order = rng.permutation(len(templates))[:CAPTIONS_PER_IMAGE]
    return [templates[int(i)] for i in sorted(order)]


# -------------------------------------------------------------------------------------
# VQA
# -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    answer_type: str  # "yes/no" | "number" | "other"
    question_type: str  # VQAv2-style question prefix
    confusers: tuple[str, ...]  # wrong answers a careless annotator might give


def _count(n: int) -> tuple[str, tuple[str, ...]]:
    return str(n), tuple(str(m) for m in (n - 1, n + 1) if m >= 0)


def _others(value: str, pool: Sequence[str]) -> tuple[str, ...]:
    return tuple(v for v in pool if v != value)


def _question_kinds(scene: Scene, rng: np.random.Generator) -> dict[str, Callable[[], QA]]:
    shapes, size = scene.shapes, scene.size
    kinds: dict[str, Callable[[], QA]] = {}

    def colour_q() -> QA:
        s = _pick(rng, _unique(scene, "kind"))
        return QA(
            f"What color is the {s.kind}?",
            s.colour,
            "other",
            "what color is the",
            _others(s.colour, list(COLOURS)),
        )

    def shape_q() -> QA:
        s = _pick(rng, _unique(scene, "colour"))
        return QA(f"What shape is the {s.colour} object?", s.kind, "other", "what", _others(s.kind, KINDS))

    def count_q() -> QA:
        answer, wrong = _count(len(shapes))
        return QA("How many shapes are there?", answer, "number", "how many", wrong)

    def count_colour_q() -> QA:
        colour = _pick(rng, list(COLOURS))
        answer, wrong = _count(sum(s.colour == colour for s in shapes))
        return QA(f"How many {colour} shapes are there?", answer, "number", "how many", wrong)

    def count_kind_q() -> QA:
        kind = _pick(rng, KINDS)
        answer, wrong = _count(sum(s.kind == kind for s in shapes))
        return QA(f"How many {kind}s are in the image?", answer, "number", "how many", wrong)

    def side_q() -> QA:
        s = _pick(rng, shapes)
        answer = side(s, size)
        return QA(
            f"Is the {name(s)} on the left or on the right?",
            answer,
            "other",
            "is the",
            _others(answer, ("left", "right")),
        )

    def level_q() -> QA:
        s = _pick(rng, shapes)
        answer = level(s, size)
        return QA(
            f"Is the {name(s)} at the top or at the bottom?",
            answer,
            "other",
            "is the",
            _others(answer, ("top", "bottom")),
        )

    def where_q() -> QA:
        s = _pick(rng, shapes)
        answer = where(s, size)
        return QA(f"Where is the {name(s)}?", answer, "other", "where is the", _others(answer, REGIONS))

    def exists_q() -> QA:
        present = {(s.colour, s.kind) for s in shapes}
        if rng.random() < 0.5:
            colour, kind = sorted(present)[int(rng.integers(len(present)))]
        else:
            absent = sorted((c, k) for c in COLOURS for k in KINDS if (c, k) not in present)
            colour, kind = absent[int(rng.integers(len(absent)))]
        answer = "yes" if (colour, kind) in present else "no"
        return QA(
            f"Is there {a(colour + ' ' + kind)}?",
            answer,
            "yes/no",
            "is there a",
            _others(answer, ("yes", "no")),
        )

    def relation_q() -> QA:
        first, second = (shapes[int(i)] for i in rng.choice(len(shapes), size=2, replace=False))
        answer = "yes" if first.center[0] < second.center[0] else "no"
        return QA(
            f"Is the {name(first)} to the left of the {name(second)}?",
            answer,
            "yes/no",
            "is the",
            _others(answer, ("yes", "no")),
        )

    kinds.update(
        count=count_q,
        count_colour=count_colour_q,
        count_kind=count_kind_q,
        side=side_q,
        level=level_q,
        where=where_q,
        exists=exists_q,
    )
    if _unique(scene, "kind"):
        kinds["colour"] = colour_q
    if _unique(scene, "colour"):
        kinds["shape"] = shape_q
    if len(shapes) >= 2 and abs(shapes[0].center[0] - shapes[1].center[0]) > 0:
        kinds["relation"] = relation_q
    return kinds


def questions(scene: Scene, rng: np.random.Generator) -> list[QA]:
    """Five questions of different kinds (colour, shape, count, position, yes/no, ...)."""
    kinds = _question_kinds(scene, rng)
    names = sorted(kinds)
    chosen = sorted(int(i) for i in rng.permutation(len(names))[:QUESTIONS_PER_IMAGE])
    return [kinds[names[i]]() for i in chosen]


def annotator_answers(qa: QA, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Ten (answer, confidence) pairs, as VQAv2's ten annotators: mostly right, now and then not."""
    out = []
    for _ in range(ANSWERS_PER_QUESTION):
        if qa.confusers and rng.random() < NOISE_P:
            out.append((_pick(rng, qa.confusers), "maybe"))
        else:
            out.append((qa.answer, "yes"))
    return out


# -------------------------------------------------------------------------------------
# Referring expressions
# -------------------------------------------------------------------------------------


def expressions(scene: Scene, shape: Shape, rng: np.random.Generator) -> list[str]:
    """Two or three expressions that each pick out ``shape`` alone."""
    size, n = scene.size, len(scene.shapes)
    options = [
        name(shape),
        f"the {name(shape)}",
        f"{name(shape)} {located(shape, size)}",
        f"{shape.size} {name(shape)}",
    ]
    if shape in _unique(scene, "kind"):
        options.append(f"the {shape.kind}")
    if shape in _unique(scene, "colour"):
        options.append(f"the {shape.colour} one")
    if n >= 2:
        xs = sorted(s.center[0] for s in scene.shapes)
        if shape.center[0] == xs[0] and xs[1] - xs[0] > size * 0.1:
            options.append("the leftmost shape")
        if shape.center[0] == xs[-1] and xs[-1] - xs[-2] > size * 0.1:
            options.append("the rightmost shape")
    count = 2 + int(rng.integers(2))
    chosen = sorted(int(i) for i in rng.permutation(len(options))[:count])
    return [options[i] for i in chosen]


# -------------------------------------------------------------------------------------
# Conversations (LLaVA)
# -------------------------------------------------------------------------------------


def conversation(scene: Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(question, answer) pairs: a description first, then one to three follow-ups."""
    shapes, size, n = scene.shapes, scene.size, len(scene.shapes)
    listed = join_and([a(name(s)) for s in shapes])
    opener = _pick(
        rng, ("What shapes are in the image?", "Describe the image.", "What do you see in this picture?")
    )
    verb = "is" if n == 1 else "are"
    turns = [
        (
            str(opener),
            f"There {verb} {NUMBERS[n]} {plural('shape', n)} on a {scene.background} background: {listed}.",
        )
    ]

    def colour_turn() -> tuple[str, str]:
        s = _pick(rng, _unique(scene, "kind"))
        return f"What color is the {s.kind}?", f"The {s.kind} is {s.colour}."

    def where_turn() -> tuple[str, str]:
        s = _pick(rng, shapes)
        return f"Where is the {name(s)}?", f"The {name(s)} is {located(s, size)} of the image."

    def count_turn() -> tuple[str, str]:
        return "How many shapes are there?", f"There {verb} {NUMBERS[n]} {plural('shape', n)}."

    def exists_turn() -> tuple[str, str]:
        colour, kind = _pick(rng, list(COLOURS)), _pick(rng, KINDS)
        match = [s for s in shapes if (s.colour, s.kind) == (colour, kind)]
        question = f"Is there {a(colour + ' ' + kind)} in the image?"
        if match:
            return question, f"Yes, there is {a(colour + ' ' + kind)} {located(match[0], size)}."
        return question, f"No, there is no {colour} {kind}."

    follow_ups = [where_turn, count_turn, exists_turn]
    if _unique(scene, "kind"):
        follow_ups.insert(0, colour_turn)
    count = 1 + int(rng.integers(3))
    for i in sorted(int(i) for i in rng.permutation(len(follow_ups))[:count]):
        turns.append(follow_ups[i]())
    return turns
