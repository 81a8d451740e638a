"""Free phrasing in a world of numbered names (logistics' "truck_0", "location_1_2" or t0, l1-2), read by the objects'
types rather than by the world's sentence templates.

A name says its object's type (`object_types`), and the domain says which predicate relates two types (logistics:
a package or vehicle `at` a location, a package `in` a truck or airplane, a location `in-city` a city; each pair of
types has at most one). So "package_0 and package_1 are waiting at location_1_0" and "city_1 has location_1_0 and
location_1_1" are read from the names alone, whatever the verbs; a one-argument predicate whose name the text uses
("location_1_0 is the airport") is said of the names beside the word. A sentence that asks for something (deliver,
bring, get ... to, should end up, I need ...) gives goal facts, except what it says of now ("from location_0_1",
"currently at ..."). Nothing here knows logistics: the relations come from the domain file and the world's names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from planner.worlds.nl import Verbalizer

Atom = tuple[str, ...]

# sentences and clauses: ". ", "; ", new lines, " - " between clauses
_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+|\s+[-\u2013\u2014]+\s+")
_GOAL = re.compile(
    r"\b(goals?|want|wants|wanted|need|needs|needed|should|must|has to|have to|deliver(?:s|ed|ing)?|bring|get|got to|move|"
    r"take|transport\w*|ship|send|end up|ends up|wind up|so that|would like|i'd like|make sure|finally|"
    r"destinations?|targets?|objectives?|drop(?:ped)? off|to be at|go to|goes to|bound for|headed|heading)\b",
    re.I,
)
# said of now inside a request: "(currently at ...)", "from location_0_1", "which is at ..."
_NOW = re.compile(
    r"\b(currently|now|right now|at the moment|presently|today|from|which is|that is|sitting|sits|starts?|"
    r"starting|is still|are still|waiting|lying|parked)\b",
    re.I,
)
_TO = re.compile(
    r"\b(to|into|onto|towards?|until it is at|so it is at|ends? up at|end up in|end up at)\s*$", re.I
)
_COUNT = {"both": 2, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_COPULA = re.compile(r"\b(is|are|being|was)\b|:")
_PRONOUN = r"\b(it|they|it's|they're|both(?: of them)?|all of them|each of them)\b"
# a clause that goes back to the sentence's subject: "t0 is carrying p0 and is at l0-0", "... and already has p1"
_SAME_SUBJECT = re.compile(
    r"^\W*(?:and|but)\s+(?:\w+\s+)?(?:is|are|was|has|have|holds?|carries|sits|waits|stands)\b", re.I
)
# a package said to be inside the sentence's vehicle: "with package_0 already on board", "package_0 loaded"
_ABOARD = re.compile(r"^\W*(?:\w+\s+)?(?:on board|aboard|inside|loaded|in the back|in its hold)\b", re.I)
# a negation (a rule: "never unload at ...", "don't use ..."); perception's rule patterns use it too
NEG = r"(?:never|don'?t|do\s+not|must\s+not|mustn'?t|shouldn'?t|should\s+not|without|avoid)"
_NEG = re.compile(rf"\b{NEG}\b", re.I)
# a relation said backwards: "city_0 has location_0_0", "truck_0 carries package_1", "In city_1: ..."
_BACK = re.compile(
    r"\b(has|have|having|with|contains?|containing|holds?|holding|carr\w+|hosts?|includes?|including|got|loaded "
    r"with|there (?:is|are)|you(?:'ll| will) find|we have|where|whereas|whose|consists? of|comprises?|made up "
    r"of)\b|:|=|\{|\(|^'s\b[^,]*$",
    re.I,
)
_AT_START = re.compile(r"^\W*(?:and\s+)?(at|in|inside|within|over at|over in|aboard|on)\s+(?:the\s+)?$", re.I)
# "both packages", "all the trucks", "the three packages": every object of that kind the request names
_EVERY = r"\b(?:all|both|every|each|the|these|those|two|three|four|five|six|seven|eight|nine|ten|\d+)\s+(?:of\s+(?:the|my|them)\s+)?(?:\w+\s+)?({kinds})s?\b"
_LIST = re.compile(
    r"^\s*(?:,|,?\s*and|,?\s*or|&|/|,?\s*as well as|,?\s*plus)\s*(?:also\s+)?(?:the\s+)?\s*$", re.I
)


@dataclass
class Mention:
    start: int
    end: int
    name: str
    type: str


class TypedReader:
    """Reads facts and goals of free text in a world whose objects are numbered names."""

    def __init__(self, vb: Verbalizer):
        self.vb = vb
        self.types = dict(vb.config.object_types)  # prefix -> type predicate
        type_preds = set(self.types.values())
        self.relation: dict[tuple[str, str], str] = {}  # (type, type) -> binary predicate
        self.unary: dict[str, str] = {}  # one-argument predicate that is not a type -> the type it is said of
        schemas = []
        for schema in vb.domain.actions.values():
            typed: dict[str, set[str]] = {}  # variable -> the type predicates its preconditions give it
            for a in schema.precondition:
                if len(a) == 2 and a[0] in type_preds:
                    typed.setdefault(a[1], set()).add(a[0])
            for a in list(schema.precondition) + list(schema.add) + list(schema.delete):
                if len(a) == 3 and a[1] in typed and a[2] in typed:
                    for t1 in typed[a[1]]:
                        for t2 in typed[a[2]]:
                            self.relation.setdefault((t1, t2), a[0])
            schemas.append((schema, typed))
        # a one-argument predicate that is not a type ("airport") is said of its variable's type, or failing that
        # of the type a relation of that variable gives it (fly-airplane's "?from" is only said to be an airport,
        # and the airplane is `at` it: an airport is a location)
        for schema, typed in schemas:
            for a in schema.precondition:
                if len(a) != 2 or a[0] in type_preds or a[0] in self.unary:
                    continue
                v = a[1]
                kinds = set(typed.get(v, ()))
                for b in schema.precondition:
                    if len(b) == 3 and v in b[1:] and not kinds:
                        other = typed.get(b[2] if b[1] == v else b[1], set())
                        kinds = {
                            (t1 if b[1] == v else t2)
                            for (t1, t2), pred in self.relation.items()
                            if pred == b[0] and (t2 if b[1] == v else t1) in other
                        }
                if kinds:
                    self.unary[a[0]] = sorted(kinds)[0]
        # the types that are the first name of a relation (packages, vehicles, locations): a sentence's subjects
        self.subjects = {t1 for t1, _ in self.relation}
        # the types whose place changes (packages, vehicles): what "it" and "they" stand for
        # type -> the predicates it is the first name of, that change ("at", "in") and that never change ("in-city")
        self.firsts: dict[str, dict[str, set[str]]] = {"fluent": {}, "static": {}}
        for (t1, _), pred in self.relation.items():
            self.firsts["static" if pred in vb.static else "fluent"].setdefault(t1, set()).add(pred)
        self.movers = {t1 for (t1, _), pred in self.relation.items() if pred not in vb.static}
        # the types things are at, that never move themselves (locations): what "there" stands for
        self.places = {t2 for (_, t2), pred in self.relation.items() if pred not in vb.static} & {
            t1 for (t1, _), pred in self.relation.items() if pred in vb.static
        }
        # the word of each numbered kind ("package" for "package_{}"): its plural stands for every one named
        words = {p: re.sub(r"[_\s]*\{\}.*", "", t).lower() for p, t in vb.config.encoded_objects.items()}
        self.kinds = {w: self.types[p] for p, w in words.items() if p in self.types and w.isalpha()}

    def _name_pattern(self, typ: str) -> str:
        """A pattern that matches the start of a name of the type (long or short form)."""
        forms = []
        for prefix, tmpl in self.vb.config.encoded_objects.items():
            if self.types.get(prefix) == typ and "{}" in tmpl:
                forms += [re.escape(tmpl.split("{}")[0]) + r"\d", re.escape(prefix) + r"\d"]
        return "(?:" + "|".join(forms) + ")" if forms else "(?!)"

    def _alike(self, t1: str, t2: str) -> bool:
        """Two types that stand in the same relation to some third (a truck and an airplane are both `at` a
        location): names of both can share one verb."""
        return any(
            pred and self.relation.get((t1, t)) == pred for (a, t), pred in self.relation.items() if a == t2
        )

    def type_of(self, name: str) -> str:
        m = re.match(r"^([a-z]+)\d", name)
        return self.types.get(m.group(1), "") if m else ""

    def mentions(self, text: str, named: list[str] = ()) -> list[Mention]:
        """The objects a text names, in order; with `named` (every object of the request), a plural of a kind
        ("both packages") stands for each of that kind's objects there."""
        out: list[Mention] = []
        for start, end, name in self.vb.mentions(text):
            if not out or start >= out[-1].end:  # one name inside another's phrase: the longer one stands
                out.append(Mention(start, end, name, self.type_of(name)))
        if named and self.kinds:
            pattern = _EVERY.format(kinds="|".join(sorted(self.kinds, key=len, reverse=True)))
            for m in re.finditer(pattern, text, re.I):
                if any(x.start < m.end() and m.start() < x.end for x in out):
                    continue
                typ = self.kinds[m.group(1).lower()]
                same = [o for o in named if self.type_of(o) == typ]
                count = _COUNT.get(m.group(0).split()[0].lower(), len(same))
                listed = re.match(r"\W{0,3}\s*" + self._name_pattern(typ), text[m.end() :])
                if (
                    len(same) > 1 and count == len(same) and not listed
                ):  # "two locations, l0-0 and l0-1": the list
                    out += [Mention(m.start(), m.end(), o, typ) for o in same]
            out.sort(key=lambda x: x.start)
        return out

    def read(self, text: str) -> tuple[set[Atom], set[Atom], list[str]] | None:
        """(initial facts, goal facts, objects) of a free request, or None when it names fewer than two objects or
        relates none of them. Type facts of the named objects are added to the initial facts."""
        objects = self.vb.objects_in(text)
        if len(objects) < 2:
            return None
        init: set[Atom] = set()
        goal: set[Atom] = set()
        subject = (
            ""  # the first names of a kind that moves in a sentence: what "it" or "they" stand for later
        )
        place = ""  # the last place named: what "there" stands for ("package_0 is there too")
        heading = False  # under a heading that asks ("Goals:" on a line of its own), until the next heading
        once = False  # after a question that asks ("Where should they go?"): the next sentence
        for sentence in self._clauses(text):
            groups = _groups(sentence, self.mentions(sentence))
            if not groups:
                if re.search(r":\s*$", sentence):
                    heading = bool(_GOAL.search(sentence))
                once = bool(re.search(r"\?\s*$", sentence) and _GOAL.search(sentence))
                continue
            pronoun = re.search(_PRONOUN, sentence[: groups[0][0].start], re.I)
            if subject and pronoun:
                verb = {"it's": " is", "they're": " are"}.get(pronoun.group(1).lower(), "")
                sentence = sentence[: pronoun.start()] + subject + verb + sentence[pronoun.end() :]
                groups = _groups(sentence, self.mentions(sentence))
            movers = [g for g in groups if g[0].type in self.movers]
            if movers and not pronoun:
                subject = " and ".join(sentence[m.start : m.end] for m in movers[0])
            # "t0 is at l0-1 and it already has p0": "it" after the sentence's own subject is that subject
            if movers:
                cut = movers[0][-1].end
                sentence = sentence[:cut] + re.sub(
                    r"\b(it|they)\b(?=\s+(?:already\s+)?(?:has|have|is|are|carries|holds))",
                    subject,
                    sentence[cut:],
                )
            if place:  # "is there", "parked there": the last place named before it
                sentence = re.sub(
                    r"\b(is|are|sits?|waits?|stands?|parked|stationed|kept|stays?)\s+there\b",
                    r"\1 at " + place,
                    sentence,
                )
            places = [m for m in self.mentions(sentence) if m.type in self.places]
            place = sentence[places[-1].start : places[-1].end] if places else place
            if _NEG.search(sentence):
                continue  # a rule ("never unload at location_1_0") is read by the world's rules
            asks = heading or once or bool(_GOAL.search(sentence))
            once = False
            for fact, before in self._facts(sentence, objects):
                if not asks:
                    init.add(fact)
                elif _TO.search(before) or not _NOW.search(before):
                    goal.add(fact)
                else:
                    init.add(fact)
        if not init and not goal:
            return None
        # "... to location_1_0 in city_1": what never changes, said in a request, is a fact of now
        said_now = {g for g in goal if g[0] in self.vb.static}
        init |= said_now
        goal -= said_now
        # every object the request names, placed or not: one it names but does not place is asked about
        named = sorted(set(objects) | {o for a in init | goal for o in a[1:]})
        return init | self.vb.type_facts(named), goal, named

    def _clauses(self, text: str) -> list[str]:
        """The text's sentences; an aside in parentheses about a name said before it in the sentence ("c0 with l0-0
        and l0-1 (l0-1 is the airport)") is a sentence of its own, other asides ("(airport)", "(at l1-0)",
        "(city_0)") stay where they are, without their parentheses when they name something."""
        out = []
        for sentence in _SENTENCES.split(text):
            for m in list(re.finditer(r"\(([^()]*)\)", sentence))[::-1]:
                inner = self.mentions(m.group(1))
                said_before = {x.name for x in self.mentions(sentence[: m.start()])}
                if inner and inner[0].name in said_before and not m.group(1)[: inner[0].start].strip(" the"):
                    out.append(m.group(1))
                    sentence = sentence[: m.start()] + " " + sentence[m.end() :]

            out.append(sentence)
        return [s for s in out if s.strip()]

    def _facts(self, sentence: str, named: list[str]) -> list[tuple[Atom, str]]:
        """(fact, the words said right before its second name, asides left out) for each relation the sentence
        states."""
        groups = _groups(sentence, self.mentions(sentence, named))
        out: list[tuple[Atom, str]] = []
        # each group relates to the nearest group before it of a type it relates to, past groups of its own type
        # ("package_2 from location_0_1 to location_1_1"; "city_0 has location_0_0, its airport, and
        # location_0_1") and past names that relate to neither ("t0 works c0 and is at l0-0"); a list of another
        # kind ("package_0 is at l0-1, truck_0 at l0-0") stops the look back, unless its names relate to others as
        # g's do ("where truck_1 and airplane_0 are")
        for j, g in enumerate(groups):
            # what is said right before g: its tense ("from location_0_1 to ...", "(now at ...) must reach")
            said = _aside(sentence[groups[j - 1][-1].end : g[0].start]) if j else ""
            back = list(range(j - 1, -1, -1))
            lead = next((i for i, x in enumerate(groups[:j]) if x[0].type in self.movers), None)
            after = sentence[g[-1].end :]
            if lead is not None and j - lead > 1 and (_SAME_SUBJECT.match(said) or _ABOARD.match(after)):
                back = [
                    lead
                ] + back  # "t0 is at l0-0 and already has p0", "a0 ... with p0 on board": the subject
            for k in back:
                h = groups[k]
                if h[0].type == g[0].type:
                    continue
                gap = sentence[h[-1].end : g[0].start]
                listed = _LIST.match(_aside(gap))
                forward = self.relation.get((h[0].type, g[0].type))
                backward = self.relation.get((g[0].type, h[0].type))
                closes = gap.count(")") > gap.count("(")  # h inside an aside, g after it
                if forward and not listed and not closes:
                    out += [((forward, x.name, y.name), said) for x, y in _pairs(h, g)]
                    # "truck_1 and airplane_0 are at location_1_0": names of other types listed before it
                    for k2 in range(k - 1, -1, -1):
                        h2 = groups[k2]
                        joint = _aside(sentence[h2[-1].end : groups[k2 + 1][0].start])
                        if not (_LIST.match(joint) and re.search(r"\b(and|plus|as well as)\b|&", joint)):
                            break
                        pred2 = self.relation.get((h2[0].type, g[0].type))
                        if pred2:
                            out += [((pred2, x.name, y.name), said) for x, y in _pairs(h2, g)]
                elif backward and (_BACK.search(gap) or _AT_START.search(sentence[: h[0].start])):
                    out += [((backward, y.name, x.name), said) for x, y in _pairs(h, g)]
                elif (not listed and h[0].type not in self.subjects) or self._alike(h[0].type, g[0].type):
                    continue  # past "c0" in "t0 works c0 and is at l0-0"; past "truck_1" in "where truck_1 and a0"
                break
        # "In city_0 I have truck_0 at location_0_0, ...": a sentence that opens in a place says every name of the
        # type that relates to it is there, unless the sentence relates that name otherwise
        if groups and _AT_START.search(sentence[: groups[0][0].start]):
            place = groups[0]
            for m in (m for g in groups[1:] for m in g):
                pred = self.relation.get((m.type, place[0].type))
                if pred and not any(f[0] == pred and f[1] == m.name for f, _ in out):
                    out += [((pred, m.name, x.name), "") for x in place]
        # one-argument predicates ("airport"): of the group right before the word, else the one right after it
        for pred, typ in self.unary.items():
            for w in re.finditer(rf"\b{re.escape(pred)}s?\b", sentence, re.I):
                # the names of a list on either side of the word: "l0-0 and l1-0 are airports", "airports:
                # l0-0, l1-0", "airport is l0-0" (the side that says "is"), "l0-0 (airport), l0-1" (l0-0 alone)
                before = [[m for m in g if m.end <= w.start()] for g in groups if g[0].type == typ]
                before = [g for g in before if g]
                after = [[m for m in g if m.start >= w.end()] for g in groups if g[0].type == typ]
                after = [g for g in after if g]
                gap_before = sentence[before[-1][-1].end : w.start()] if before else ""
                gap_after = sentence[w.end() : after[0][0].start] if after else ""
                near_before = bool(before) and _filler(gap_before)
                near_after = bool(after) and _filler(gap_after)
                if near_before and near_after:
                    near_before = not (_COPULA.search(gap_after) and not _COPULA.search(gap_before))
                if near_before:
                    chosen = before[-1][-1:] if "(" in gap_before else before[-1]
                elif near_after:
                    heading = re.match(r"\s*:", gap_after)  # "Airports: l0-0 in c0 and l1-0 in c1"
                    chosen = [m for g in after for m in g] if heading else after[0]
                else:
                    chosen = []
                out += [((pred, x.name), "") for x in chosen]
        return out


def _groups(sentence: str, mentions: list[Mention]) -> list[list[Mention]]:
    """Names of one type in a list ("package_0, package_1 and package_2", "l0-0 (airport) and l0-1") as one group;
    a plural of a kind ("both packages") is one group already."""
    groups: list[list[Mention]] = []
    for m in mentions:
        last = groups[-1][-1] if groups else None
        if (
            last
            and last.type == m.type
            and m.name not in {x.name for x in groups[-1]}  # a list never names one object twice
            and (m.start == last.start or _LIST.match(_aside(sentence[last.end : m.start])))
        ):
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def _pairs(h: list[Mention], g: list[Mention]) -> list[tuple[Mention, Mention]]:
    """Which names of two related lists go together: each with each when one list has one name; in order when
    both have as many ("t0, t1 and t2 sit at l0-0, l1-0 and l2-0"); none otherwise."""
    if len(h) == 1 or len(g) == 1:
        return [(x, y) for x in h for y in g]
    return list(zip(h, g)) if len(h) == len(g) else []


def _aside(gap: str) -> str:
    """The words between two names without what is in parentheses ("l0-0 (airport) and l0-1")."""
    return re.sub(r"\([^)]*\)", " ", gap)


_LITTLE = set(
    "is are the its their an a both serves serve as acts act city's which that one ones being two three each s "
    "also with there and at here main only own".split()
)


def _filler(gap: str) -> bool:
    """Only little words between a name and a predicate's word ("location_1_0, the airport", "airports are
    location_0_0 and ...", "the airport of city_1 is location_1_0")."""
    gap = re.sub(r"\b(?:of|in|for)\s+\S+|\S+'s\b", " ", gap)  # "of city_1", "is in c0 and is an", "city_0's"
    words = re.findall(r"[a-z']+", gap.lower())
    return len(words) <= 5 and all(w in _LITTLE for w in words)


def placement_problems(init: set[Atom], objects: list[str], reader: TypedReader) -> list[str]:
    """What a reading leaves out or says twice, in a world of typed names: each object of a type that is the first
    argument of a relation that changes (logistics: a package `at` a place or `in` a vehicle, a truck or airplane
    `at` a place) needs exactly one such fact, and of one that never changes (a location `in-city`) exactly one too.
    Each problem is a question naming the object."""
    vb = reader.vb
    templates = vb.config.predicates
    issues = []
    for x in objects:
        typ = reader.type_of(x)
        for kind in ("fluent", "static"):
            preds = reader.firsts[kind].get(typ)
            if not preds:
                continue
            facts = sorted(a for a in init if a[0] in preds and a[1] == x)
            name = vb.object_phrase(x)
            if not facts:
                said = [templates[p].format(name, "...") for p in sorted(preds) if templates.get(p)]
                example = " or ".join(f'"{s}"' for s in said)
                issues.append(f"I could not tell from your request what completes {example}")
            elif len(facts) > 1:
                told = " and ".join(f'"{vb.fact(a)}"' for a in facts)
                issues.append(f"your request says {told}; only one can hold. Which is it?")
    return issues
