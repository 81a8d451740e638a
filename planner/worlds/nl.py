"""English for a world: render states, goals and plans, and read them back, driven by a PlanBench config YAML
(`predicates`, `actions`, `encoded_objects`), so blocksworld and mystery blocksworld both work from their configs.
A domain without a config gets plain templates ("on a b")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from planner.worlds.errors import WorldError
from planner.worlds.pddl import Atom, Domain


@dataclass
class NLConfig:
    predicates: dict[str, str]  # predicate -> template with {} per argument ("" = not rendered)
    actions: dict[str, str]  # action -> template
    encoded_objects: dict[str, str] = field(
        default_factory=dict
    )  # pddl name or prefix -> phrase (may hold {})
    compact_objects: dict[str, str] = field(default_factory=dict)  # shorter phrases accepted when reading
    # name prefix -> the one-argument predicate every object of that prefix holds, left unsaid in text
    # (logistics: t -> truck, so "truck_0" is a truck without "truck_0 is a truck" being said)
    object_types: dict[str, str] = field(default_factory=dict)
    domain_intro: str = ""
    source: str = "<nl-config>"

    @classmethod
    def load(cls, path: str | Path) -> NLConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorldError("no such natural-language config file", source=str(path)) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise WorldError(
                f"not valid YAML: {getattr(e, 'problem', e)}",
                source=str(path),
                line=mark.line + 1 if mark else None,
            ) from None
        if not isinstance(data, dict) or "predicates" not in data or "actions" not in data:
            raise WorldError(
                "a natural-language config needs 'predicates' and 'actions' maps",
                source=str(path),
                hint="See PlanBench's configs/blocksworld.yaml for the format",
            )
        return cls(
            predicates={str(k).lower(): str(v) for k, v in (data.get("predicates") or {}).items()},
            actions={str(k).lower(): str(v) for k, v in (data.get("actions") or {}).items()},
            encoded_objects={str(k).lower(): str(v) for k, v in (data.get("encoded_objects") or {}).items()},
            compact_objects={
                str(k).lower(): str(v) for k, v in (data.get("encoded_objects_compact") or {}).items()
            },
            object_types={
                str(k).lower(): str(v).lower() for k, v in (data.get("object_types") or {}).items()
            },
            domain_intro=str(data.get("domain_intro") or ""),
            source=str(path),
        )

    @classmethod
    def plain(cls, domain: Domain) -> NLConfig:
        return cls(
            predicates={p: " ".join([p] + ["{}"] * n) for p, n in domain.predicates.items()},
            actions={a: " ".join([a] + ["{}"] * len(s.parameters)) for a, s in domain.actions.items()},
            source="<plain>",
        )

    def check(self, domain: Domain) -> None:
        """The config must cover the domain: every action and predicate with the right number of slots."""
        for name, schema in domain.actions.items():
            t = self.actions.get(name)
            if t is None:
                raise WorldError(f"the config has no template for action '{name}'", source=self.source)
            if t.count("{}") != len(schema.parameters):
                raise WorldError(
                    f"the template of action '{name}' has {t.count('{}')} slot(s), the action takes "
                    f"{len(schema.parameters)}",
                    source=self.source,
                    token=t,
                )
        for name, arity in domain.predicates.items():
            t = self.predicates.get(name)
            if t is None:
                raise WorldError(f"the config has no template for predicate '{name}'", source=self.source)
            if t and t.count("{}") != arity:
                raise WorldError(
                    f"the template of predicate '{name}' has {t.count('{}')} slot(s), the predicate "
                    f"takes {arity}",
                    source=self.source,
                    token=t,
                )
        for prefix, pred in self.object_types.items():
            if domain.predicates.get(pred) != 1:
                raise WorldError(
                    f"object_types gives prefix '{prefix}' the type '{pred}', which is not a predicate of one "
                    "argument in the domain",
                    source=self.source,
                    token=pred,
                )
            if "{}" not in self.encoded_objects.get(prefix, ""):
                raise WorldError(
                    f"object_types names prefix '{prefix}', which encoded_objects does not give a numbered "
                    "phrase (such as 'truck_{}')",
                    source=self.source,
                    token=prefix,
                )


_NUMBERED = re.compile(r"^([a-z]+)(\d+(?:-\d+)*)$")


class Verbalizer:
    """Renders and reads facts, goals and plans of one domain with one config, for a given object set."""

    def __init__(self, domain: Domain, config: NLConfig | None = None):
        self.domain = domain
        self.config = config or NLConfig.plain(domain)
        self.config.check(domain)
        self.static = domain.static_predicates

    # ---- objects -------------------------------------------------------------------------------------------
    def object_phrase(self, name: str) -> str:
        enc = self.config.encoded_objects
        if name in enc and "{}" not in enc[name]:
            return enc[name]
        m = _NUMBERED.match(name)
        if m and m.group(1) in enc and "{}" in enc[m.group(1)]:
            parts = m.group(2).split("-")
            tmpl = enc[m.group(1)]
            if tmpl.count("{}") == len(parts):
                return tmpl.format(*parts)
        return name

    @property
    def numbered(self) -> bool:
        """Objects are named by numbered prefixes ("truck_0" for t0): any number of them, found in the text."""
        return any("{}" in v for v in self.config.encoded_objects.values())

    def objects_in(self, text: str) -> list[str]:
        """The objects a text names by the numbered phrases ("package_3" -> p3, "location_1_0" -> l1-0; the raw
        names too), in order of first mention."""
        found: dict[str, int] = {}
        for start, _, name in self.mentions(text):
            found.setdefault(name, start)
        return sorted(found, key=found.get)

    def mentions(self, text: str) -> list[tuple[int, int, str]]:
        """Every place a text names a numbered object: (start, end, object name), in order."""
        out = []
        for prefix, tmpl in self.config.encoded_objects.items():
            if "{}" not in tmpl:
                continue
            pieces = [re.escape(piece) for piece in tmpl.split("{}")]
            phrase = r"(\d+)".join(pieces)
            raw = re.escape(prefix) + "-".join([r"(\d+)"] * tmpl.count("{}"))
            for pat in (phrase, raw):
                # "p0->l1-0": a hyphen ends a name unless a digit follows it ("l1-0")
                for m in re.finditer(rf"(?<![\w-])(?:{pat})(?!\w|-\d)", text, re.IGNORECASE):
                    out.append((m.start(), m.end(), prefix + "-".join(str(int(g)) for g in m.groups())))
        return sorted(out)

    def type_facts(self, objects: list[str]) -> set[Atom]:
        """The unsaid type facts of numbered objects (`object_types`): {("truck", "t0"), ...}."""
        out: set[Atom] = set()
        for o in objects:
            m = _NUMBERED.match(o)
            if m and m.group(1) in self.config.object_types:
                out.add((self.config.object_types[m.group(1)], o))
        return out

    def object_reader(self, objects: list[str]) -> dict[str, str]:
        """phrase (lower-case) -> object name, for the given objects: full phrase, compact phrase and raw name."""
        table: dict[str, str] = {}
        for o in objects:
            table[o.lower()] = o
            table[self.object_phrase(o).lower()] = o
            if o in self.config.compact_objects:
                table[self.config.compact_objects[o].lower()] = o
        return table

    # ---- rendering -----------------------------------------------------------------------------------------
    def fact(self, atom: Atom) -> str:
        t = self.config.predicates.get(atom[0])
        if not t:
            return ""
        return t.format(*(self.object_phrase(a) for a in atom[1:]))

    def facts(self, atoms) -> str:
        """PlanBench's phrasing: sorted facts joined by ', ' with ' and ' before the last."""
        parts = [self.fact(a) for a in sorted(atoms)]
        return join_and([p for p in parts if p])

    def action(self, step: tuple[str, ...]) -> str:
        return self.config.actions[step[0]].format(*(self.object_phrase(a) for a in step[1:]))

    def plan(self, steps) -> str:
        return "\n".join(self.action(s) for s in steps)

    def statement(self, init, goal) -> str:
        return (
            f"As initial conditions I have that, {self.facts(init)}.\n"
            f"My goal is to have that {self.facts(goal)}."
        )

    # ---- reading -------------------------------------------------------------------------------------------
    def _pattern(self, template: str, objects: list[str], anchored: bool = True) -> re.Pattern:
        table = self.object_reader(objects)
        alt = "|".join(re.escape(p) for p in sorted(table, key=len, reverse=True))
        pieces = [re.escape(chunk) for chunk in template.split("{}")]
        body = ""
        for i, chunk in enumerate(pieces):
            body += chunk.replace(r"\ ", r"\s+")
            if i < len(pieces) - 1:
                body += rf"(?:the\s+)?({alt})"
        body = body.replace(r"the\s+(?:the\s+)?", r"(?:the\s+)?")
        return re.compile(("^" if anchored else "") + body + ("$" if anchored else ""), re.IGNORECASE)

    def read_fact(self, text: str, objects: list[str]) -> Atom:
        clause = _clean(text)
        table = self.object_reader(objects)
        for pred, t in self.config.predicates.items():
            if not t:
                continue
            m = self._pattern(t, objects).match(clause)
            if m:
                return (pred, *(table[g.lower()] for g in m.groups()))
        raise WorldError(
            "no predicate matches this phrase",
            token=text.strip(),
            hint="Phrase facts as the world's templates do, e.g. '"
            + next(iter(t for t in self.config.predicates.values() if t)).format(*(["X"] * 3))[:60]
            + "'",
        )

    def read_facts(self, text: str, objects: list[str]) -> frozenset[Atom]:
        return frozenset(self.read_fact(c, objects) for c in split_and(text))

    def read_action(self, line: str, objects: list[str], facts=None) -> tuple[str, ...] | None:
        """The action a line says, or None. Where several actions share one phrasing (logistics' "load {} into {}
        at {}" is `load-truck` and `load-airplane`), `facts` (the problem's, of which the static ones are read)
        pick the action whose static preconditions hold for the objects named; without them the first reading
        stands."""
        clause = _clean(re.sub(r"^\s*(?:\d+[.)]|[-*•]|step\s+\d+:?)\s*", "", line, flags=re.IGNORECASE))
        table = self.object_reader(objects)
        found = []
        # longer templates first: "unstack the {} from on top of the {}" before "stack the {} on top of the {}"
        for name, t in sorted(self.config.actions.items(), key=lambda kv: -len(kv[1])):
            m = self._pattern(t, objects).match(clause)
            if m:
                found.append((name, *(table[g.lower()] for g in m.groups())))
        if found:
            if facts is not None and len(found) > 1:
                fitting = [a for a in found if self._static_preconditions_hold(a, facts)]
                return (fitting or found)[0]
            return found[0]
        pddl = re.match(r"^\(\s*([^\s()]+)((?:\s+[^\s()]+)*)\s*\)$", clause)
        if pddl and pddl.group(1).lower() in self.domain.actions:
            args = pddl.group(2).lower().split()
            if all(a in objects for a in args) and len(args) == len(
                self.domain.actions[pddl.group(1).lower()].parameters
            ):
                return (pddl.group(1).lower(), *args)
        return None

    def _static_preconditions_hold(self, action: tuple[str, ...], facts) -> bool:
        schema = self.domain.actions[action[0]]
        bind = dict(zip(schema.parameters, action[1:]))
        return all(
            (p[0], *(bind.get(x, x) for x in p[1:])) in facts
            for p in schema.precondition
            if p[0] in self.static
        )

    def read_plan(
        self, text: str, objects: list[str], strict: bool = False, source: str = "<text>", facts=None
    ):
        """The actions in the text, one per line. Lines that are no action are skipped (an explanation may
        surround the plan), or are errors with strict=True. `facts`: the problem's, to tell apart actions said
        alike (`read_action`)."""
        facts = None if facts is None else set(facts)
        steps = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            step = self.read_action(line, objects, facts)
            if step is None:
                if strict:
                    raise WorldError(
                        "this line is not an action of the world",
                        source=source,
                        line=lineno,
                        token=line.strip(),
                    )
                continue
            steps.append(step)
        return steps

    def read_statement(self, text: str, objects: list[str]) -> tuple[frozenset[Atom], frozenset[Atom]]:
        """PlanBench's [STATEMENT]: 'As initial conditions I have that, ... My goal is to have that ...'."""
        m = re.search(
            r"As initial conditions I have that,?\s*(.*?)\.\s*My goal is to have that\s*(.*?)\.(?:\s|$)",
            text,
            re.IGNORECASE | re.DOTALL,
        )
        if not m:
            raise WorldError(
                "no 'As initial conditions I have that, ... My goal is to have that ...' statement"
            )
        if "[STATEMENT]" in text:
            last = text.rindex("[STATEMENT]")
            m = re.search(
                r"As initial conditions I have that,?\s*(.*?)\.\s*My goal is to have that\s*(.*?)\."
                r"(?:\s|$)",
                text[last:],
                re.IGNORECASE | re.DOTALL,
            )
        return self.read_facts(m.group(1), objects), self.read_facts(m.group(2), objects)


def join_and(parts: list[str]) -> str:
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def split_and(text: str) -> list[str]:
    text = " ".join(text.split()).strip().rstrip(".")
    return [c for c in re.split(r",\s*and\s+|,\s*|\s+and\s+", text) if c.strip()]


def _clean(text: str) -> str:
    return " ".join(text.split()).strip().rstrip(".;,!").strip()
