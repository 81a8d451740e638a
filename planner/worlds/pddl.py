"""A reader for STRIPS PDDL domains and problems.

Untyped PDDL, with `- type` object and parameter lists tolerated. Every error names the file, line, column and token.
Names are lower-cased (PDDL is case-insensitive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from planner.worlds.errors import WorldError

Atom = tuple[str, ...]  # ("on", "a", "b"): predicate then arguments


@dataclass(frozen=True)
class Token:
    text: str
    line: int
    column: int


@dataclass
class SExpr:
    """A parenthesised list, with the position of its opening parenthesis."""

    items: list  # of SExpr | Token
    line: int
    column: int


@dataclass
class ActionSchema:
    name: str
    parameters: list[str]  # "?ob", ...
    parameter_types: list[str]
    precondition: list[Atom]  # atoms over parameters and constants
    add: list[Atom]
    delete: list[Atom]


@dataclass
class Domain:
    name: str
    predicates: dict[str, int]  # name -> arity
    actions: dict[str, ActionSchema]
    types: dict[str, str] = field(default_factory=dict)  # type -> parent type
    constants: dict[str, str] = field(default_factory=dict)  # name -> type
    source: str = "<domain>"

    @property
    def static_predicates(self) -> frozenset[str]:
        """The predicates no action adds or deletes: a problem's types and fixed structure (logistics' TRUCK,
        in-city)."""
        changed = {a[0] for s in self.actions.values() for a in (*s.add, *s.delete)}
        return frozenset(p for p in self.predicates if p not in changed)


@dataclass
class Problem:
    name: str
    domain_name: str
    objects: dict[str, str]  # name -> type ("object" when untyped), in file order
    init: frozenset[Atom]
    goal: frozenset[Atom]
    source: str = "<problem>"


_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def tokenize(text: str, source: str) -> list[Token]:
    tokens = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0]
        for m in _TOKEN.finditer(line):
            tokens.append(Token(m.group(0), lineno, m.start() + 1))
    return tokens


def parse_sexprs(text: str, source: str) -> list[SExpr]:
    """Parses the whole text into top-level s-expressions; unbalanced parentheses are errors."""
    stack: list[SExpr] = []
    top: list[SExpr] = []
    for tok in tokenize(text, source):
        if tok.text == "(":
            stack.append(SExpr([], tok.line, tok.column))
        elif tok.text == ")":
            if not stack:
                raise WorldError("unbalanced ')'", source=source, line=tok.line, column=tok.column, token=")")
            done = stack.pop()
            (stack[-1].items if stack else top).append(done)
        else:
            if not stack:
                raise WorldError(
                    "text outside any parenthesised form",
                    source=source,
                    line=tok.line,
                    column=tok.column,
                    token=tok.text,
                )
            stack[-1].items.append(tok)
    if stack:
        s = stack[-1]
        raise WorldError(
            "unclosed '(': the file ends before this form is closed",
            source=source,
            line=s.line,
            column=s.column,
            token="(",
        )
    return top


def _word(item, source: str, what: str) -> str:
    if isinstance(item, Token):
        return item.text.lower()
    raise WorldError(
        f"expected {what}, found a parenthesised form",
        source=source,
        line=item.line,
        column=item.column,
        token="(",
    )


def _pos(item) -> tuple[int, int, str]:
    if isinstance(item, Token):
        return item.line, item.column, item.text
    return item.line, item.column, "("


def _err(msg: str, item, source: str, hint: str | None = None) -> WorldError:
    line, col, tok = _pos(item)
    return WorldError(msg, source=source, line=line, column=col, token=tok, hint=hint)


def _typed_list(items: list, source: str, what: str) -> list[tuple[str, str]]:
    """`a b - block c` -> [(a, block), (b, block), (c, object)]."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    i = 0
    while i < len(items):
        name = _word(items[i], source, what)
        if name == "-":
            if i + 1 >= len(items):
                raise _err("'-' must be followed by a type name", items[i], source)
            typ = _word(items[i + 1], source, "a type name")
            if not pending:
                raise _err("a type with nothing before it", items[i], source)
            out.extend((p, typ) for p in pending)
            pending = []
            i += 2
            continue
        pending.append(name)
        i += 1
    out.extend((p, "object") for p in pending)
    return out


def _atom(
    expr, source: str, predicates: dict[str, int] | None, variables: set[str] | None, what: str
) -> Atom:
    if not isinstance(expr, SExpr) or not expr.items:
        raise _err(f"expected an atom like (pred arg ...) in {what}", expr, source)
    head = _word(expr.items[0], source, "a predicate name")
    if head in ("not", "and", "or", "imply", "forall", "exists", "when", "="):
        raise _err(
            f"'{head}' is not supported in {what}: this reader takes STRIPS (positive conjunctions)",
            expr.items[0],
            source,
            hint="Rewrite the domain as STRIPS, or drop the unsupported construct",
        )
    args = tuple(_word(a, source, "an argument") for a in expr.items[1:])
    if predicates is not None:
        if head not in predicates:
            raise _err(
                f"unknown predicate '{head}' in {what}",
                expr.items[0],
                source,
                hint=f"Declared predicates: {', '.join(sorted(predicates)) or 'none'}",
            )
        if predicates[head] != len(args):
            raise _err(
                f"predicate '{head}' takes {predicates[head]} argument(s), got {len(args)} in {what}",
                expr.items[0],
                source,
            )
    if variables is not None:
        for a, item in zip(args, expr.items[1:]):
            if a.startswith("?") and a not in variables:
                raise _err(f"unknown parameter '{a}' in {what}", item, source)
    return (head, *args)


def _conjuncts(expr) -> list:
    """The parts of `(and a b ...)`, or [expr] for a single form."""
    if isinstance(expr, SExpr) and expr.items and isinstance(expr.items[0], Token):
        if expr.items[0].text.lower() == "and":
            return expr.items[1:]
    return [expr]


def _conjunction(expr, source: str, predicates, variables, what: str) -> list[Atom]:
    """`(and a b)`, a single atom, or `()`."""
    if isinstance(expr, SExpr) and not expr.items:
        return []
    return [_atom(e, source, predicates, variables, what) for e in _conjuncts(expr)]


def _effect(expr, source: str, predicates, variables, what: str) -> tuple[list[Atom], list[Atom]]:
    parts = _conjuncts(expr)
    add, delete = [], []
    for p in parts:
        if (
            isinstance(p, SExpr)
            and p.items
            and isinstance(p.items[0], Token)
            and p.items[0].text.lower() == "not"
        ):
            if len(p.items) != 2:
                raise _err("(not ...) takes exactly one atom", p, source)
            delete.append(_atom(p.items[1], source, predicates, variables, what))
        else:
            add.append(_atom(p, source, predicates, variables, what))
    return add, delete


def _expect_define(forms: list[SExpr], source: str, kind: str) -> SExpr:
    if not forms:
        raise WorldError(f"empty file: expected (define ({kind} NAME) ...)", source=source)
    form = forms[0]
    if len(forms) > 1:
        raise _err("more than one top-level form; expected exactly one (define ...)", forms[1], source)
    if not form.items or _word(form.items[0], source, "'define'") != "define":
        raise _err(f"expected (define ({kind} NAME) ...)", form, source)
    if len(form.items) < 2 or not isinstance(form.items[1], SExpr) or len(form.items[1].items) != 2:
        raise _err(
            f"expected ({kind} NAME) after define", form.items[1] if len(form.items) > 1 else form, source
        )
    head = _word(form.items[1].items[0], source, kind)
    if head != kind:
        raise _err(
            f"expected a {kind} definition, found '{head}'",
            form.items[1].items[0],
            source,
            hint="Check that the domain and problem files were not swapped",
        )
    return form


def _sections(form: SExpr, source: str) -> list[tuple[str, SExpr]]:
    out = []
    for sec in form.items[2:]:
        if not isinstance(sec, SExpr) or not sec.items:
            raise _err("expected a section like (:predicates ...)", sec, source)
        out.append((_word(sec.items[0], source, "a section keyword"), sec))
    return out


def parse_domain(text: str, source: str = "<domain>") -> Domain:
    form = _expect_define(parse_sexprs(text, source), source, "domain")
    name = _word(form.items[1].items[1], source, "a domain name")
    predicates: dict[str, int] = {}
    types: dict[str, str] = {}
    constants: dict[str, str] = {}
    action_forms: list[SExpr] = []
    for key, sec in _sections(form, source):
        if key == ":requirements":
            for r in sec.items[1:]:
                req = _word(r, source, "a requirement")
                if req not in (":strips", ":typing", ":negative-preconditions-not-used"):
                    raise _err(f"requirement '{req}' is not supported (STRIPS, optionally typed)", r, source)
        elif key == ":types":
            for t, parent in _typed_list(sec.items[1:], source, "a type name"):
                types[t] = parent
        elif key == ":constants":
            constants.update(dict(_typed_list(sec.items[1:], source, "a constant")))
        elif key == ":predicates":
            for p in sec.items[1:]:
                if not isinstance(p, SExpr) or not p.items:
                    raise _err("expected a predicate declaration like (on ?x ?y)", p, source)
                pname = _word(p.items[0], source, "a predicate name")
                if pname in predicates:
                    raise _err(f"predicate '{pname}' declared twice", p.items[0], source)
                predicates[pname] = len(_typed_list(p.items[1:], source, "a predicate parameter"))
        elif key == ":action":
            action_forms.append(sec)
        else:
            raise _err(f"section '{key}' is not supported in a STRIPS domain", sec.items[0], source)
    if not predicates:
        raise _err("the domain declares no (:predicates ...)", form, source)
    actions: dict[str, ActionSchema] = {}
    for sec in action_forms:
        if len(sec.items) < 2:
            raise _err("(:action NAME ...) needs a name", sec, source)
        aname = _word(sec.items[1], source, "an action name")
        if aname in actions:
            raise _err(f"action '{aname}' defined twice", sec.items[1], source)
        params: list[tuple[str, str]] = []
        pre: list[Atom] = []
        add: list[Atom] = []
        dele: list[Atom] = []
        rest = sec.items[2:]
        if len(rest) % 2:
            raise _err(
                f"action '{aname}': expected keyword/value pairs (:parameters, :precondition, :effect)",
                sec,
                source,
            )
        seen_effect = False
        for k in range(0, len(rest), 2):
            kw = _word(rest[k], source, "an action keyword")
            val = rest[k + 1]
            if kw == ":parameters":
                if not isinstance(val, SExpr):
                    raise _err("expected a parameter list like (?x ?y)", val, source)
                params = _typed_list(val.items, source, "a parameter")
                for (p, _), item in zip(params, val.items):
                    if not p.startswith("?"):
                        raise _err(f"parameter '{p}' must start with '?'", item, source)
            elif kw == ":precondition":
                pre = _conjunction(
                    val, source, predicates, {p for p, _ in params}, f"the precondition of '{aname}'"
                )
            elif kw == ":effect":
                add, dele = _effect(
                    val, source, predicates, {p for p, _ in params}, f"the effect of '{aname}'"
                )
                seen_effect = True
            else:
                raise _err(f"unknown action keyword '{kw}'", rest[k], source)
        if not seen_effect:
            raise _err(f"action '{aname}' has no :effect", sec, source)
        actions[aname] = ActionSchema(aname, [p for p, _ in params], [t for _, t in params], pre, add, dele)
    return Domain(name, predicates, actions, types, constants, source)


def parse_problem(text: str, domain: Domain | None = None, source: str = "<problem>") -> Problem:
    form = _expect_define(parse_sexprs(text, source), source, "problem")
    name = _word(form.items[1].items[1], source, "a problem name")
    domain_name = ""
    objects: dict[str, str] = {}
    init_forms, goal_form = None, None
    for key, sec in _sections(form, source):
        if key == ":domain":
            if len(sec.items) != 2:
                raise _err("expected (:domain NAME)", sec, source)
            domain_name = _word(sec.items[1], source, "a domain name")
        elif key == ":objects":
            for (o, t), item in zip(_typed_list(sec.items[1:], source, "an object"), sec.items[1:]):
                if o in objects:
                    raise _err(f"object '{o}' declared twice", item, source)
                objects[o] = t
        elif key == ":init":
            init_forms = sec
        elif key == ":goal":
            if len(sec.items) != 2:
                raise _err("expected (:goal (and ...))", sec, source)
            goal_form = sec.items[1]
        elif key == ":requirements":
            continue
        else:
            raise _err(f"section '{key}' is not supported in a STRIPS problem", sec.items[0], source)
    if domain is not None and domain_name and domain_name != domain.name:
        raise _err(
            f"the problem is for domain '{domain_name}', not '{domain.name}'",
            form.items[1],
            source,
            hint="Pass the domain file this problem was written for",
        )
    if init_forms is None:
        raise _err("the problem has no (:init ...)", form, source)
    if goal_form is None:
        raise _err("the problem has no (:goal ...)", form, source)
    preds = domain.predicates if domain is not None else None
    known = set(objects) | (set(domain.constants) if domain else set())
    init = []
    for e in init_forms.items[1:]:
        a = _atom(e, source, preds, None, "the initial state")
        _check_objects(a, e, known, source)
        init.append(a)
    goal = _conjunction(goal_form, source, preds, None, "the goal")
    for a, e in zip(goal, _conjuncts(goal_form)):
        _check_objects(a, e, known, source)
    return Problem(name, domain_name, objects, frozenset(init), frozenset(goal), source)


def _check_objects(atom: Atom, expr: SExpr, known: set[str], source: str) -> None:
    for arg, item in zip(atom[1:], expr.items[1:]):
        if arg not in known:
            raise _err(f"unknown object '{arg}'", item, source, hint="Declare it in (:objects ...)")


def load_domain(path: str | Path) -> Domain:
    path = Path(path)
    return parse_domain(_read(path, "domain"), str(path))


def load_problem(path: str | Path, domain: Domain | None = None) -> Problem:
    path = Path(path)
    return parse_problem(_read(path, "problem"), domain, str(path))


def _read(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WorldError(f"no such {what} file", source=str(path), hint="Check the path") from None
    except IsADirectoryError:
        raise WorldError(f"expected a {what} file, found a directory", source=str(path)) from None
    except OSError as e:
        raise WorldError(f"cannot read the {what} file: {e.strerror}", source=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise WorldError(
            f"the {what} file is not UTF-8 text (byte {e.start})", source=str(path), line=line
        ) from None


def format_atom(atom: Atom) -> str:
    return "(" + " ".join(atom) + ")"
