"""Claim records: every verdict of the book as data, with the criterion that gave it.

A *claim* is one statement the book checks: a result of the paper, a step the book
reconstructs, a reviewer's question or a claim of our own. Its record holds the
statement, where the evidence is (the chapter's label and a table, figure or section
label), the numbers measured in this run, the authors' published value where there is
one, and a :class:`Judgement`: the verdict, the criterion that produced it and the
numbers that decided it.

Verdicts come only from the functions of :class:`criteria`; each builds its criterion
text from its own parameters ("holds when the test error <= 0.03") and its reason
from the numbers ("0.024 <= 0.03"). There are no free-text verdicts.

A chapter ends with ``record(claims, profile=P.name)``. That glues each claim's
verdict and values for the chapter's own text (``claim-<id>-verdict`` and
``claim-<id>-<value name>``) and emits the records as one output of MIME type
:data:`MIME_TYPE`. The book's Sphinx extension (``book/_ext/claims.py``) reads those
outputs from the executed notebooks of the same build and renders the scorecard, the
verdicts page and the argument map, so no page shows a number from another build.

Records travel as JSON (:func:`dumps`, :func:`loads`); nothing is pickled. The
paper-scale results of a GPU run live in ``results/full.json``
(:func:`load_full_results`, :func:`write_full_results`).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from .errors import ParameterError, PruneBoundsError

MIME_TYPE = "application/vnd.prunebounds.claims+json"
SCHEMA = 1

HOLDS = "holds"
CAVEAT = "holds with a caveat"
VACUOUS = "holds but vacuous"
FAILS = "does not hold"
NOT_CHECKED = "not checked"
VERDICTS = (HOLDS, CAVEAT, VACUOUS, FAILS, NOT_CHECKED)

ORIGINS = ("paper", "reconstructed", "reviewer", "ours")
#: The scorecard's groups, in order, and the origins each one collects.
GROUPS = {
    "paper": ("The paper's results", ("paper", "reconstructed")),
    "reviewers": ("The reviewers' questions", ("reviewer",)),
    "beyond": ("Beyond the paper", ("ours",)),
}

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: Keys of ``provenance`` in results/full.json.
PROVENANCE_KEYS = ("profile", "device", "torch", "commit", "source_fingerprint", "date",
                   "wall_seconds")


class CriterionError(PruneBoundsError, ValueError):
    """The numbers contradict what a criterion takes for granted, e.g. a bound below
    the quantity it bounds. That is a bug upstream, never a verdict."""


# ---------------------------------------------------------------------------------------
# values


def _plain(x: Any) -> Any:
    """numpy / torch scalars as Python numbers; other values unchanged."""
    if isinstance(x, (bool, str)) or x is None:
        return x
    if hasattr(x, "item") and getattr(x, "ndim", 0) == 0:
        x = x.item()
    if isinstance(x, Integral):
        return int(x)
    if isinstance(x, Real):
        return float(x)
    return x


def _num(name: str, x: Any) -> float:
    x = _plain(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ParameterError(f"{name} must be a number, got {x!r}")
    if math.isnan(x):
        raise ParameterError(f"{name} is NaN: a criterion cannot judge a missing number; "
                             f"use criteria.not_checked(reason) instead")
    return float(x)


def _undefined(what: str, value: Any, criterion: str, cond: str) -> Judgement | None:
    """A comparison with a NaN measurement has no verdict: *not checked*, saying so."""
    v = _plain(value)
    if isinstance(v, float) and math.isnan(v):
        return Judgement(NOT_CHECKED, criterion, f"{what} is undefined (NaN) in this run", cond)
    return None


def _g(x: float) -> str:
    """A number as the criterion and reason texts show it."""
    x = _plain(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if x == 0 or math.isinf(x):
        return f"{x:g}"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.3g}"
    return f"{x:,.4g}"


@dataclass(frozen=True)
class Value:
    """One measured number of a claim.

    ``name`` is an identifier (lowercase, digits, underscores) used in glue names and
    in the ``{claim}`` role; ``label`` says what it is; ``fmt`` is a Python format
    specification (``".3g"``, ``".2%"``, ``",d"``) used wherever the value is shown.
    """

    name: str
    label: str
    value: float | int | str | bool | None
    fmt: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ParameterError(f"value name {self.name!r} must be lowercase letters, digits "
                                 f"and underscores, starting with a letter")
        if not isinstance(self.label, str) or not self.label.strip():
            raise ParameterError(f"value {self.name!r} needs a label saying what it is")
        v = _plain(self.value)
        if not (v is None or isinstance(v, (bool, int, float, str))):
            raise ParameterError(f"value {self.name!r} must be a number, a string or None, "
                                 f"got {type(self.value).__name__}")
        object.__setattr__(self, "value", v)
        self.text()  # a format that does not fit the value fails here, not in the book

    def text(self) -> str:
        """The value as the book shows it."""
        v = self.value
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "n/a"
        if isinstance(v, bool):
            return "yes" if v else "no"
        try:
            return format(v, self.fmt)
        except (ValueError, TypeError) as exc:
            raise ParameterError(f"value {self.name!r}: format {self.fmt!r} does not fit "
                                 f"{v!r} ({exc})") from None

    def to_dict(self) -> dict:
        v = self.value
        d = {"name": self.name, "label": self.label, "fmt": self.fmt}
        if isinstance(v, float) and not math.isfinite(v):
            d["value"], d["nonfinite"] = None, repr(v)  # 'nan', 'inf', '-inf'
        else:
            d["value"] = v
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> Value:
        v = float(d["nonfinite"]) if d.get("nonfinite") else d.get("value")
        return cls(d["name"], d["label"], v, d.get("fmt", ""))


# ---------------------------------------------------------------------------------------
# judgements and criteria


@dataclass(frozen=True)
class Judgement:
    """A verdict, the rule that produced it and the numbers that decided it.

    Build judgements with the functions of :class:`criteria`, never by hand.
    ``condition`` is the bare test (for composing criteria), ``criterion`` the whole
    rule, ``reason`` the numbers, ``caveats`` stated caveats.
    """

    verdict: str
    criterion: str
    reason: str
    condition: str = ""
    caveats: tuple[str, ...] = ()

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ParameterError(f"verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")
        object.__setattr__(self, "caveats", tuple(self.caveats))

    @property
    def holds(self) -> bool:
        return self.verdict in (HOLDS, CAVEAT)

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "criterion": self.criterion, "reason": self.reason,
                "condition": self.condition, "caveats": list(self.caveats)}

    @classmethod
    def from_dict(cls, d: Mapping) -> Judgement:
        return cls(d["verdict"], d["criterion"], d["reason"], d.get("condition", ""),
                   tuple(d.get("caveats", ())))


def _check_otherwise(otherwise: str) -> str:
    if otherwise not in (FAILS, VACUOUS):
        raise ParameterError(f"otherwise must be {FAILS!r} or {VACUOUS!r}, got {otherwise!r}")
    return otherwise


def _text(name: str, x: Any) -> str:
    if not isinstance(x, str) or not x.strip():
        raise ParameterError(f"{name} must be a non-empty text, got {x!r}")
    return x.strip()


def _compare(value, limit, what, limit_what, otherwise, sign, negated, ok) -> Judgement:
    """The comparison behind :meth:`criteria.at_most` and :meth:`criteria.at_least`."""
    lim = _num("limit", limit)
    otherwise = _check_otherwise(otherwise)
    lt = f"{limit_what} ({_g(lim)})" if limit_what else _g(lim)
    cond = f"{what} {sign} {lt}"
    criterion = f"holds when {cond}; {otherwise} otherwise"
    if (nan := _undefined(what, value, criterion, cond)) is not None:
        return nan
    v = _num(what, value)
    if ok(v, lim):
        return Judgement(HOLDS, criterion, f"{what} = {_g(v)} {sign} {_g(lim)}", cond)
    return Judgement(otherwise, criterion, f"{what} = {_g(v)} {negated} {_g(lim)}", cond)


class criteria:
    """The criteria that turn numbers into verdicts (namespace; no instances).

    Each function returns a :class:`Judgement` whose ``criterion`` is written from the
    function's parameters and whose ``reason`` shows the numbers. Qualifiers
    (:meth:`caveat`, :meth:`caveat_unless`, :meth:`vacuous_unless`, :meth:`all_of`)
    combine judgements.
    """

    def __init__(self):
        raise TypeError("criteria is a namespace: call criteria.at_most(...) etc.")

    # -- bounds ---------------------------------------------------------------------

    @staticmethod
    def bound_vs_truth(bound: float, truth: float, *, useful_below: float,
                       what: str = "the bound", truth_what: str = "the true value",
                       useful_what: str | None = None, rtol: float = 1e-9) -> Judgement:
        """A bound on ``truth``: *holds* when truth <= bound <= useful_below, *holds
        but vacuous* when bound > useful_below; a bound below the truth (beyond a
        relative rounding tolerance ``rtol``) raises :class:`CriterionError`."""
        b, t, u = _num(what, bound), _num(truth_what, truth), _num("useful_below", useful_below)
        useful = useful_what or _g(u)
        criterion = (f"holds when {truth_what} ≤ {what} ≤ {useful}; holds but vacuous when "
                     f"{what} > {useful}; {what} below {truth_what} would be a bug")
        if b < t - rtol * max(abs(t), abs(b)):
            raise CriterionError(f"{what} = {_g(b)} is below {truth_what} = {_g(t)}: a valid "
                                 f"bound cannot be; check how the bound is computed")
        cond = f"{what} ≤ {useful}"
        if b > u:
            return Judgement(VACUOUS, criterion, f"{what} = {_g(b)} > {useful}", cond)
        return Judgement(HOLDS, criterion,
                         f"{truth_what} = {_g(t)} ≤ {what} = {_g(b)} ≤ {useful}", cond)

    @staticmethod
    def bound_vs_error(bound: float, error: float, *, what: str = "the bound",
                       error_what: str = "the measured error") -> Judgement:
        """A bound on an error rate: vacuous when it exceeds 1 (every error rate is at
        most 1), holds when error <= bound <= 1, and a bound below the measured error
        raises :class:`CriterionError` (a bug)."""
        return criteria.bound_vs_truth(bound, error, useful_below=1.0, what=what,
                                       truth_what=error_what,
                                       useful_what="1 (no error rate exceeds 1)")

    # -- comparisons ----------------------------------------------------------------

    @staticmethod
    def at_most(value: float, limit: float, *, what: str, limit_what: str | None = None,
                otherwise: str = FAILS) -> Judgement:
        """*holds* when value <= limit, else ``otherwise`` (does not hold, or holds but
        vacuous); a NaN value is *not checked*."""
        return _compare(value, limit, what, limit_what, otherwise, "≤", ">", lambda v, m: v <= m)

    @staticmethod
    def at_least(value: float, limit: float, *, what: str, limit_what: str | None = None,
                 otherwise: str = FAILS) -> Judgement:
        """*holds* when value >= limit, else ``otherwise``; a NaN value is *not checked*."""
        return _compare(value, limit, what, limit_what, otherwise, "≥", "<", lambda v, m: v >= m)

    @staticmethod
    def within_factor(value: float, reference: float, factor: float, *, what: str,
                      reference_what: str) -> Judgement:
        """*holds* when value and reference (both positive) differ by at most ``factor``
        either way: 1/factor <= value/reference <= factor; a NaN value is *not checked*."""
        r, f = _num(reference_what, reference), _num("factor", factor)
        if f < 1:
            raise ParameterError(f"factor must be >= 1, got {factor}")
        if r <= 0:
            raise ParameterError(f"{reference_what} must be positive to compare by a factor, "
                                 f"got {_g(r)}")
        cond = f"{what} is within a factor {_g(f)} of {reference_what}"
        criterion = f"holds when {cond}; does not hold otherwise"
        if (nan := _undefined(what, value, criterion, cond)) is not None:
            return nan
        v = _num(what, value)
        ratio = v / r
        reason = f"{what} / {reference_what} = {_g(v)} / {_g(r)} = {_g(ratio)}"
        ok = v > 0 and 1 / f <= ratio <= f
        return Judgement(HOLDS if ok else FAILS, criterion, reason, cond)

    @staticmethod
    def equal(value: Any, target: Any, *, what: str, target_what: str) -> Judgement:
        """*holds* when value == target exactly (counts, identical accuracies)."""
        v, t = _plain(value), _plain(target)
        cond = f"{what} equals {target_what}"
        criterion = f"holds when {cond} exactly; does not hold otherwise"
        if v == t:
            return Judgement(HOLDS, criterion, f"{what} = {target_what} = {_g(v)}", cond)
        return Judgement(FAILS, criterion, f"{what} = {_g(v)} ≠ {target_what} = {_g(t)}", cond)

    @staticmethod
    def all_layers(pass_count: int, total: int, *, what: str = "layers pass") -> Judgement:
        """*holds* when every one of ``total`` layers passes, does not hold otherwise."""
        p, n = _plain(pass_count), _plain(total)
        if not (isinstance(p, int) and isinstance(n, int)) or isinstance(p, bool):
            raise ParameterError(f"pass_count and total must be integers, got {pass_count!r}, "
                                 f"{total!r}")
        if n < 1 or not 0 <= p <= n:
            raise ParameterError(f"need 0 <= pass_count <= total and total >= 1, got {p} of {n}")
        cond = f"all {what}"
        criterion = f"holds when {cond}; does not hold when any fails"
        return Judgement(HOLDS if p == n else FAILS, criterion, f"{p} of {n} {what}", cond)

    @staticmethod
    def not_checked(reason: str) -> Judgement:
        """No verdict: the evidence is missing (for example the data set is absent)."""
        reason = _text("reason", reason)
        return Judgement(NOT_CHECKED, "not checked when the evidence is missing", reason,
                         "the evidence is present")

    # -- qualifiers -------------------------------------------------------------------

    @staticmethod
    def caveat(judgement: Judgement, text: str) -> Judgement:
        """A stated caveat: *holds* becomes *holds with a caveat*; other verdicts keep
        theirs and carry the caveat."""
        text = _text("caveat", text)
        verdict = CAVEAT if judgement.verdict == HOLDS else judgement.verdict
        return Judgement(verdict, f"{judgement.criterion}; stated caveat: {text}",
                         judgement.reason, judgement.condition, (*judgement.caveats, text))

    @staticmethod
    def caveat_unless(judgement: Judgement, check: Judgement, text: str) -> Judgement:
        """The caveat ``text`` applies (as in :meth:`caveat`) when ``check`` does not
        hold; the check's numbers join the reason either way."""
        text = _text("caveat", text)
        criterion = f"{judgement.criterion}; with the caveat “{text}” unless {check.condition}"
        reason = f"{judgement.reason}; {check.reason}"
        if check.holds:
            return Judgement(judgement.verdict, criterion, reason, judgement.condition,
                             judgement.caveats)
        verdict = CAVEAT if judgement.verdict == HOLDS else judgement.verdict
        return Judgement(verdict, criterion, reason, judgement.condition,
                         (*judgement.caveats, text))

    @staticmethod
    def vacuous_unless(judgement: Judgement, check: Judgement) -> Judgement:
        """A result that holds is *holds but vacuous* when ``check`` (what would make it
        useful) does not hold."""
        criterion = f"{judgement.criterion}; holds but vacuous unless {check.condition}"
        reason = f"{judgement.reason}; {check.reason}"
        verdict = judgement.verdict
        if judgement.holds and not check.holds:
            verdict = VACUOUS
        return Judgement(verdict, criterion, reason, judgement.condition, judgement.caveats)

    @staticmethod
    def all_of(*judgements: Judgement) -> Judgement:
        """Every part must hold: any *does not hold* decides; else any *not checked*;
        else the weakest of holds < holds with a caveat < holds but vacuous."""
        if not judgements:
            raise ParameterError("all_of needs at least one judgement")
        verdicts = [j.verdict for j in judgements]
        if FAILS in verdicts:
            verdict = FAILS
        elif NOT_CHECKED in verdicts:
            verdict = NOT_CHECKED
        else:
            verdict = max(verdicts, key=(HOLDS, CAVEAT, VACUOUS).index)
        criterion = "all of: " + "; ".join(f"({i}) {j.criterion}"
                                           for i, j in enumerate(judgements, 1))
        reason = "; ".join(f"({i}) {j.reason}" for i, j in enumerate(judgements, 1))
        cond = " and ".join(j.condition for j in judgements)
        caveats = tuple(c for j in judgements for c in j.caveats)
        return Judgement(verdict, criterion, reason, cond, caveats)


# ---------------------------------------------------------------------------------------
# claims


@dataclass(frozen=True)
class Claim:
    """One checked statement and its evidence (see the module docstring)."""

    id: str
    statement: str
    origin: str
    chapter: str
    evidence: str
    measured: tuple[Value, ...]
    judgement: Judgement
    authors: str | None = None

    def __post_init__(self):
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise ParameterError(f"claim id {self.id!r} must be lowercase words joined by "
                                 f"hyphens, e.g. 'thm-5-2-bound'")
        if self.origin not in ORIGINS:
            raise ParameterError(f"claim {self.id}: origin {self.origin!r} is not one of "
                                 f"{', '.join(ORIGINS)}")
        for key in ("chapter", "evidence"):
            label = getattr(self, key)
            if not isinstance(label, str) or not _LABEL.match(label):
                raise ParameterError(f"claim {self.id}: {key} must be a label such as "
                                     f"'chap-setting' or 'tab-bound-protocol', got {label!r}")
        _text(f"claim {self.id}: statement", self.statement)
        measured = tuple(self.measured)
        if not all(isinstance(v, Value) for v in measured):
            raise ParameterError(f"claim {self.id}: measured must hold Value objects")
        names = [v.name for v in measured]
        if len(set(names)) != len(names):
            raise ParameterError(f"claim {self.id}: value names repeat: {names}")
        object.__setattr__(self, "measured", measured)
        if not isinstance(self.judgement, Judgement):
            raise ParameterError(f"claim {self.id}: judgement must come from criteria.*")
        if self.authors is not None:
            _text(f"claim {self.id}: authors", self.authors)

    @property
    def verdict(self) -> str:
        return self.judgement.verdict

    @property
    def group(self) -> str:
        return next(g for g, (_, origins) in GROUPS.items() if self.origin in origins)

    def value(self, name: str) -> Value:
        for v in self.measured:
            if v.name == name:
                return v
        raise ParameterError(f"claim {self.id} has no value {name!r}; it has "
                             f"{', '.join(v.name for v in self.measured) or 'none'}")

    def to_dict(self) -> dict:
        return {"id": self.id, "statement": self.statement, "origin": self.origin,
                "chapter": self.chapter, "evidence": self.evidence,
                "measured": [v.to_dict() for v in self.measured], "authors": self.authors,
                "judgement": self.judgement.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping) -> Claim:
        try:
            return cls(d["id"], d["statement"], d["origin"], d["chapter"], d["evidence"],
                       tuple(Value.from_dict(v) for v in d["measured"]),
                       Judgement.from_dict(d["judgement"]), d.get("authors"))
        except (KeyError, TypeError) as exc:
            raise ParameterError(f"not a claim record ({exc!r}): {str(dict(d))[:200]}") from None


def _unique(claims: Iterable[Claim]) -> list[Claim]:
    claims = list(claims)
    if not all(isinstance(c, Claim) for c in claims):
        raise ParameterError("expected Claim objects")
    seen: set[str] = set()
    for c in claims:
        if c.id in seen:
            raise ParameterError(f"claim id {c.id!r} appears twice; ids must be unique")
        seen.add(c.id)
    return claims


def payload(claims: Iterable[Claim], profile: str | None = None) -> dict:
    """The JSON-ready record of ``claims`` (what :func:`record` emits)."""
    return {"schema": SCHEMA, "profile": profile,
            "claims": [c.to_dict() for c in _unique(claims)]}


def dumps(claims: Iterable[Claim], profile: str | None = None) -> str:
    """Claims as JSON text (finite numbers only; non-finite ones are tagged)."""
    return json.dumps(payload(claims, profile), allow_nan=False, ensure_ascii=False, indent=1)


def _from_payload(data: Any) -> tuple[str | None, list[Claim]]:
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA or "claims" not in data:
        raise ParameterError(f"not a claims record of schema {SCHEMA}: {str(data)[:200]}")
    return data.get("profile"), _unique(Claim.from_dict(c) for c in data["claims"])


def loads(text: str) -> list[Claim]:
    """Claims from the JSON text of :func:`dumps`."""
    return _from_payload(json.loads(text))[1]


def record(claims: Sequence[Claim], *, profile: str | None = None) -> None:
    """End a chapter: glue each claim's verdict and values, and emit the records.

    Glue names: ``claim-<id>-verdict`` and ``claim-<id>-<value name>`` (the raw value;
    format it in the text, e.g. ``{glue:text}`claim-thm-5-2-bound-bound_paper:.3g```).
    The records go out as one display output of MIME type :data:`MIME_TYPE` (read by
    the book's extension, which removes it from the page) with a plain-text summary
    for Jupyter and Colab. Outside IPython only the summary is printed.
    """
    claims = _unique(claims)
    data = payload(claims, profile)
    json.dumps(data, allow_nan=False)  # fails now, not in the book, on a bad value
    summary = "\n".join(f"{c.id}: {c.verdict}" for c in claims) or "(no claims)"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(summary)
        return
    try:
        from myst_nb import glue
    except ImportError:
        glue = None
    if glue is not None:
        for c in claims:
            glue(f"claim-{c.id}-verdict", c.verdict, display=False)
            for v in c.measured:
                glue(f"claim-{c.id}-{v.name}", v.value, display=False)
    display({MIME_TYPE: data, "text/plain": "Claims recorded:\n" + summary}, raw=True)


@dataclass(frozen=True)
class RecordedClaims:
    """The claims an executed notebook recorded, and the profile it ran with."""

    path: Path
    profile: str | None
    claims: tuple[Claim, ...] = field(default=())


def load_from_notebook(path: str | os.PathLike) -> RecordedClaims:
    """Every claim record in the outputs of the executed notebook at ``path``.

    A notebook may record several times (each output is read); ids must be unique
    within it, and all its records must name the same profile.
    """
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ParameterError(f"cannot read notebook {path}: {exc}") from None
    profiles, claims = set(), []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = out.get("data", {})
            if MIME_TYPE in data:
                profile, found = _from_payload(data[MIME_TYPE])
                profiles.add(profile)
                claims += found
    if len(profiles) > 1:
        raise ParameterError(f"{path}: claim records of several profiles {sorted(map(str, profiles))}")
    return RecordedClaims(path, profiles.pop() if profiles else None, tuple(_unique(claims)))


# ---------------------------------------------------------------------------------------
# paper-scale results (results/full.json, written by a GPU run)


@dataclass(frozen=True)
class FullResults:
    """The full profile's claims, why some are missing, and where they come from."""

    provenance: Mapping[str, Any]
    claims: tuple[Claim, ...]
    missing: Mapping[str, str]

    def by_id(self) -> dict[str, Claim]:
        return {c.id: c for c in self.claims}

    def coverage_gaps(self, ids: Iterable[str]) -> list[str]:
        """Ids among ``ids`` with neither a full-profile record nor a reason."""
        have = set(self.by_id()) | set(self.missing)
        return sorted(i for i in ids if i not in have)


def parse_full_results(data: Any, profile: str = "full") -> FullResults:
    """Check the schema of results/full.json (see the module docstring) and read it.

    ``profile`` is the profile the results must come from (a run of another profile,
    e.g. a smoke test of the command, writes the same schema to another file).
    Raises :class:`ParameterError` naming the first problem.
    """
    def bad(msg):
        raise ParameterError(f"results/full.json: {msg} (regenerate it with "
                             f"`python -m prunebounds.chapters full-results` on a GPU)")

    if not isinstance(data, Mapping):
        bad("the top level must be an object")
    extra = set(data) - {"provenance", "claims", "missing"}
    if extra:
        bad(f"unknown keys {sorted(extra)}")
    prov = data.get("provenance")
    if not isinstance(prov, Mapping):
        bad("'provenance' must be an object")
    absent = [k for k in PROVENANCE_KEYS if k not in prov]
    if absent:
        bad(f"provenance lacks {absent}")
    if prov["profile"] != profile:
        bad(f"provenance.profile is {prov['profile']!r}, expected {profile!r}")
    for k in ("device", "torch", "commit", "source_fingerprint", "date"):
        if not isinstance(prov[k], str) or not prov[k].strip():
            bad(f"provenance.{k} must be a non-empty string")
    w = prov["wall_seconds"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
        bad("provenance.wall_seconds must be a non-negative number")
    if not isinstance(data.get("claims"), list):
        bad("'claims' must be a list of claim records")
    try:
        claims = tuple(_unique(Claim.from_dict(c) for c in data["claims"]))
    except ParameterError as exc:
        bad(str(exc))
    missing = data.get("missing", {})
    if not isinstance(missing, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in missing.items()):
        bad("'missing' must map claim ids to non-empty reasons")
    both = sorted(set(missing) & {c.id for c in claims})
    if both:
        bad(f"ids both recorded and missing: {both}")
    return FullResults(dict(prov), claims, dict(missing))


def load_full_results(path: str | os.PathLike) -> FullResults:
    """Read and check results/full.json."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ParameterError(f"cannot read {path}: {exc}") from None
    return parse_full_results(data)


def write_full_results(path: str | os.PathLike, claims: Iterable[Claim],
                       missing: Mapping[str, str], provenance: Mapping[str, Any]) -> Path:
    """Write results/full.json atomically (checked with :func:`parse_full_results`
    before it replaces anything; a run of another profile is checked against its own)."""
    data = {"provenance": dict(provenance), "claims": [c.to_dict() for c in _unique(claims)],
            "missing": dict(missing)}
    parse_full_results(data, profile=str(data["provenance"].get("profile", "full")))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, allow_nan=False, ensure_ascii=False, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
