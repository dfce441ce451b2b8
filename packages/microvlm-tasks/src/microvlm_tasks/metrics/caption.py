"""Captioning metrics through pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr(-D), SPICE.

Reference: the COCO caption evaluation (tylin/coco-caption, packaged as ``pycocoevalcap``).
Texts go through its Stanford PTB tokenizer (lower case, punctuation removed) and then
through each scorer, exactly as ``COCOEvalCap.evaluate`` does.

Java: the PTB tokenizer, METEOR and SPICE run Java programs. Without ``java`` on ``PATH``
this module logs a clear warning, tokenizes with :func:`simple_tokenize` (a Python
approximation of the PTB rules) and computes BLEU, ROUGE-L and CIDEr only; the result says
so (``"tokenizer": "simple"`` and a ``"note"``). Such numbers are not comparable with
published COCO numbers.

SPICE is off by default. With ``spice=True`` it needs Java and the Stanford CoreNLP 3.6.0
jars that pycocoevalcap normally downloads on first use; this module never triggers that
download and raises :class:`~microvlm.errors.MicroVLMError` when they are missing.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from microvlm.errors import MicroVLMError

logger = logging.getLogger(__name__)

#: Tokens the PTB tokenizer wrapper of pycocoevalcap drops after tokenizing.
PTB_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
# PTB turns brackets into -LRB- etc., quotes into `` and '', dashes into --; all dropped after.
_SIMPLE_DROP = PTB_PUNCTUATION | {"(", ")", "[", "]", "{", "}", '"', "\u2014", "\u2013"}
SPICE_CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
_JAVA_MISSING = (
    "Java was not found on PATH: METEOR and the PTB tokenizer of pycocoevalcap need a Java runtime "
    "(e.g. `apt install default-jre`). Computed BLEU, ROUGE-L and CIDEr with a simple Python "
    "tokenizer instead; METEOR was skipped. These numbers are not comparable with published ones."
)
# Words, contractions split the PTB way ("don't" -> "do n't", "cat's" -> "cat 's"), single marks.
_SIMPLE_TOKEN = re.compile(r"[^\W_]+(?=n't\b)|n't\b|'[^\W_]+|[^\W_]+(?:-[^\W_]+)*(?:[.,][0-9]+)*|[^\w\s]|_")


class SpiceUnavailableError(MicroVLMError):
    """SPICE was requested but cannot run here (no Java, or no Stanford CoreNLP models)."""


def find_java() -> str | None:
    """Path of the ``java`` executable, or ``None``."""
    return shutil.which("java")


def simple_tokenize(text: str) -> str:
    """Lower-case, split like PTB (approximately) and drop PTB's punctuation tokens."""
    tokens = _SIMPLE_TOKEN.findall(text.lower().replace("\n", " "))
    return " ".join(t for t in tokens if t not in _SIMPLE_DROP)


def spice_models_dir() -> Path:
    """Folder where pycocoevalcap's SPICE looks for the Stanford CoreNLP jars."""
    import pycocoevalcap.spice.spice as spice_module

    return Path(spice_module.__file__).resolve().parent / "lib"


def check_spice(java: str | None) -> None:
    """Raise :class:`SpiceUnavailableError` unless SPICE can run without downloading anything."""
    if java is None:
        raise SpiceUnavailableError("SPICE needs a Java runtime on PATH (e.g. `apt install default-jre`).")
    lib = spice_models_dir()
    missing = [name for name in SPICE_CORENLP_JARS if not (lib / name).is_file()]
    if missing:
        raise SpiceUnavailableError(
            f"SPICE needs the Stanford CoreNLP models, missing from {lib}: {', '.join(missing)}. "
            "Fetch them once on a machine with network access (`python -m pycocoevalcap.spice."
            "get_stanford_models`) or copy the jars there; or leave spice off."
        )


def caption_scores(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    spice: bool = False,
    meteor: bool = True,
    use_java: bool = True,
) -> dict[str, float | str]:
    """Corpus-level caption metrics for one prediction per image against its references.

    :param predictions: one generated caption per image.
    :param references: the human captions of each image (at least one each).
    :param spice: also compute SPICE (slow; needs Java and the CoreNLP models).
    :param meteor: compute METEOR when Java is there (its JVM loads a 60 MB paraphrase
        table: seconds per call); ``False`` leaves it out.
    :param use_java: ``False`` takes the no-Java path (simple tokenizer, no METEOR) even
        when Java is installed; ``True`` uses Java when ``java`` is on PATH.
    :returns: ``bleu_1`` … ``bleu_4``, ``meteor``, ``rouge_l``, ``cider`` (CIDEr-D as in the
        COCO evaluation, scale 0-10), ``spice`` if asked, ``count``; plus the string entries
        ``tokenizer`` (``"ptb"`` or ``"simple"``) and ``note`` when something was skipped.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    for i, refs in enumerate(references):
        if not refs:
            raise ValueError(f"image {i} has no reference captions")
    java_path = find_java() if use_java else None
    if spice:
        check_spice(java_path)
    result: dict[str, float | str] = {"count": float(len(predictions))}
    if not predictions:
        return result
    notes = []
    if java_path is None:
        if use_java:
            logger.warning(_JAVA_MISSING)
            notes.append(_JAVA_MISSING)
        else:
            notes.append("Java not used (use_java=False): simple tokenizer, no METEOR.")
        gts, res = _simple_tokenize_all(predictions, references)
        result["tokenizer"] = "simple"
    else:
        try:
            gts, res = _ptb_tokenize(predictions, references)
            result["tokenizer"] = "ptb"
        except (OSError, RuntimeError) as exc:  # e.g. a read-only pycocoevalcap folder, a broken JVM
            message = f"the PTB tokenizer failed ({type(exc).__name__}: {exc}); used the simple tokenizer."
            logger.warning(message)
            notes.append(message)
            gts, res = _simple_tokenize_all(predictions, references)
            result["tokenizer"] = "simple"
    result.update(_java_free_scores(gts, res))
    if java_path is not None and meteor:
        try:
            result["meteor"] = _meteor(gts, res)
        except Exception as exc:
            message = f"METEOR failed ({type(exc).__name__}: {exc}); it is left out."
            logger.warning(message)
            notes.append(message)
    if spice:
        result["spice"] = _spice(gts, res)
    if notes:
        result["note"] = " ".join(notes)
    return result


def _simple_tokenize_all(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    gts = {str(i): [simple_tokenize(r) for r in refs] for i, refs in enumerate(references)}
    res = {str(i): [simple_tokenize(p)] for i, p in enumerate(predictions)}
    return gts, res


def _ptb_tokenize(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """One PTB tokenizer run (one JVM start) for predictions and references together."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    def one_line(text: str) -> str:  # the wrapper sends one sentence per line; any line break splits
        return " ".join(text.split())

    batch: dict[str, list[dict[str, str]]] = {}
    for i, (pred, refs) in enumerate(zip(predictions, references, strict=True)):
        batch[f"r{i}"] = [{"caption": one_line(pred)}]
        batch[f"g{i}"] = [{"caption": one_line(r)} for r in refs]
    # The wrapper zips its input with the tokenizer's output lines; a trailing empty sentence
    # can lose its line, so a sentinel goes last and absorbs that.
    batch["sentinel"] = [{"caption": "end"}]
    tokens = PTBTokenizer().tokenize(batch)  # writes a temp file next to the jar, runs java
    if any(len(tokens.get(key, ())) != len(value) for key, value in batch.items() if key != "sentinel"):
        raise RuntimeError("the tokenizer returned fewer lines than it was given")
    gts = {str(i): tokens[f"g{i}"] for i in range(len(predictions))}
    res = {str(i): tokens[f"r{i}"] for i in range(len(predictions))}
    return gts, res


def _java_free_scores(gts: dict[str, list[str]], res: dict[str, list[str]]) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    scores = {f"bleu_{n + 1}": float(b) for n, b in enumerate(bleu)}
    scores["rouge_l"] = float(rouge)
    scores["cider"] = float(cider)
    return scores


def _meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()  # starts a JVM; its __del__ stops it
    try:
        score, _ = meteor.compute_score(gts, res)
    finally:
        del meteor
    return float(score)


def _spice(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    import subprocess

    from pycocoevalcap.spice.spice import Spice

    try:  # models checked above, so Spice() does not download anything
        score, _ = Spice().compute_score(gts, res)
    except (subprocess.CalledProcessError, OSError) as exc:
        raise SpiceUnavailableError(f"SPICE failed to run: {exc}") from exc
    return float(score)
