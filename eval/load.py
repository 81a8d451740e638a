"""A bounded load test against a running `ami-agent serve` on loopback: C concurrent clients, each with its own
thread and its own problem, R requests each (a problem, then follow-ups that edit it). Every answer must come back
without error and its plan must solve that client's own current problem: a mixed-up thread shows as a wrong plan."""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from planner.worlds.generate import ProblemGenerator
from planner.worlds.nl import Verbalizer
from planner.worlds.pddl import Domain, Problem
from planner.worlds.plans import parse_plan_text, validate


@dataclass
class LoadResult:
    clients: int
    requests: int
    errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        s = sorted(self.seconds) or [0.0]
        return {
            "clients": self.clients,
            "requests": self.requests,
            "answered": len(self.seconds),
            "errors": len(self.errors),
            "mismatches": len(self.mismatches),
            "median_seconds": round(statistics.median(s), 2),
            "p95_seconds": round(s[int(0.95 * (len(s) - 1))], 2),
            "first_problems": (self.errors + self.mismatches)[:5],
        }


def _post(url: str, body: dict, timeout: float) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def run_load(
    base_url: str,
    domain: Domain,
    verbalizer: Verbalizer,
    clients: int = 16,
    requests: int = 10,
    seed: int = 0,
    timeout: float = 600.0,
    progress=None,
) -> LoadResult:
    """progress(answered, errors, mismatches): called after each request, from the client threads."""
    res = LoadResult(clients, clients * requests)
    lock = threading.Lock()
    url = base_url.rstrip("/") + "/v1/chat/completions"

    def client(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        gen = ProblemGenerator(domain, None, rng)
        thread = f"load-{seed}-{k}"
        p = gen.sample(rng.randint(3, 4))
        current = p
        for i in range(requests):
            used = {o for g in current.goal for o in g[1:]}
            free = sorted(set(current.objects) - used)
            if i == 0 or i % 3 == 0 or len(free) < 2:  # a new problem
                current = p if i == 0 else gen.sample(rng.randint(3, 5))
                text = verbalizer.statement(current.init, current.goal)
            else:  # a follow-up: one more goal between two blocks the goal does not name yet
                a, b = rng.sample(free, 2)
                goal = current.goal | {("on", a, b)}
                current = Problem(current.name, current.domain_name, current.objects, current.init, goal)
                text = f"Now put the {verbalizer.object_phrase(a)} on top of the {verbalizer.object_phrase(b)} as well."
            t0 = time.perf_counter()
            try:
                out = _post(
                    url,
                    {
                        "model": "ami-agent",
                        "messages": [{"role": "user", "content": text}],
                        "thread_id": thread,
                    },
                    timeout,
                )
            except (urllib.error.URLError, OSError, ValueError) as e:
                with lock:
                    res.errors.append(f"client {k} request {i}: {e}")
                    if progress:
                        progress(len(res.seconds) + len(res.errors), len(res.errors), len(res.mismatches))
                continue
            dt = time.perf_counter() - t0
            rec = out.get("plan_record") or {}
            problem = None
            if rec.get("status") != "solved":
                problem = f"client {k} request {i}: status {rec.get('status')} ({rec.get('reason', '')[:80]})"
            else:
                steps = parse_plan_text("\n".join(rec["plan"]), domain, current)
                if not validate(domain, current, steps).valid:
                    problem = f"client {k} request {i}: the plan does not solve this thread's problem"
            with lock:
                res.seconds.append(dt)
                if problem:
                    res.mismatches.append(problem)
                if progress:
                    progress(len(res.seconds) + len(res.errors), len(res.errors), len(res.mismatches))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return res
