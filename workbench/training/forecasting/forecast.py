"""What a run will cost, before it runs: calls, tokens and cost per role, as least / expected / most.

The counts follow the protocol (`TrainConfig`): the baseline on validation and test, then per step
the minibatch forward (plus carried samples), backward on the selected samples, up to
`max_proposals` attempts per parameter group (an optimizer call, the minibatch gate on the selected
samples, validation when the gate passes), and the final test. Per-sample sizes come from
`probe.py` (the real prompts, rendered without a call, tokens counted with the endpoint's
tokenizer where it offers one).

- least: nothing needs work (no sample fails, so no backward and no proposal); the baseline and the
  minibatch samples the memo does not hold still run, until `patience` stale steps stop it. 0 where
  the response cache answered every probed request.
- most: every step carries `max_carried` samples and selects the most, every attempt passes the
  minibatch gate and validates in full; prompts grow by their reply caps (None: a model has no cap).
- expected: the remaining steps walked with expected counts (expected.py): exact where the
  schedule and the memo make it so, `Priors` for the rest (by default half the samples fail, an
  attempt is kept with probability 0.3, half the attempts pass the minibatch gate, a validation runs
  on 3/4 of the split, a kept change fixes half the failing samples), replies as long as the targets
  (task), 100 tokens (backward) or the current value (optimizer). After the baseline and after each
  step the run re-estimates with the rates it observed (revision.py). All stated in
  `Forecast.assumptions`.

Evaluations the run's memo holds (a resumed run's baseline) are not counted, and the share of
probed requests the response cache holds lowers every expected count.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ...errors import ConfigError
from ...records.usage_totals import cost_usd
from .expected import Remaining, expected_counts
from .probe import Probe

HOW = ("least", "expected", "most")
FORMAT_TOKENS = 3  # a task or optimizer reply's wrapping ("Answer: ", tags) beyond its value
BOUNDS = ("least: no sample fails after the baseline (no backward, no proposal)",
          "most: every attempt passes the minibatch gate and validates in full; prompts grow by the reply caps")


@dataclass(frozen=True)
class Priors:
    """What the expected value assumes about a run nobody has seen yet; give your own from earlier runs."""
    failing_share: float = 0.5  # of a minibatch's samples
    keep_chance: float = 0.3  # that an attempt is kept (the loop stops at the first kept one)
    minibatch_pass: float = 0.5  # share of attempts that pass the minibatch gate (and are validated)
    validated_share: float = 0.75  # of the validation split a candidate runs on before it wins or stops early
    backward_reply: int = 100  # tokens of a backward reply
    fix_share: float = 0.5  # of the failing samples a kept change fixes
    source: str = "stated"  # where the rates come from: "stated", or what a re-estimate observed

    def __post_init__(self) -> None:
        for name in ("failing_share", "keep_chance", "minibatch_pass", "validated_share", "fix_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"Priors {name} must be in [0, 1], not {getattr(self, name)!r}")

    def describe(self) -> str:
        return (f"expected: {self.failing_share:.0%} of samples fail; an attempt is kept with probability "
                f"{self.keep_chance:.2g}; {self.minibatch_pass:.0%} of attempts pass the minibatch gate; a validation "
                f"runs on {self.validated_share:.0%} of the split; a kept change fixes {self.fix_share:.0%} of the "
                f"failing samples ({self.source}); replies as long as the target + {FORMAT_TOKENS} "
                f"(task), {self.backward_reply} tokens (backward), the current value + {FORMAT_TOKENS} (optimizer)")


@dataclass(frozen=True)
class Range:
    least: float
    expected: float
    most: float | None  # None: unbounded (a model without a reply cap)

    def holds(self, actual: float) -> bool:
        return self.least <= actual + 1e-9 and (self.most is None or actual <= self.most + 1e-9)

    def __mul__(self, k: float) -> "Range":
        return Range(self.least * k, self.expected * k, None if self.most is None else self.most * k)

    def __add__(self, other: "Range") -> "Range":
        most = None if self.most is None or other.most is None else self.most + other.most
        return Range(self.least + other.least, self.expected + other.expected, most)


ZERO = Range(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class RoleForecast:
    calls: Range
    prompt_tokens: Range
    completion_tokens: Range
    cost: Range | None  # USD, with prices for this role

    @property
    def tokens(self) -> Range:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Forecast:
    """The forecast of a run (or of what remains of a resumed one); `to_dict()` is the `forecast` event."""
    roles: dict[str, RoleForecast]
    steps: int  # steps still to run
    from_step: int  # the step the run continues after (0 for a new run)
    baseline: bool  # whether the baseline is still to run
    token_counting: dict[str, str]  # role -> how its tokens were counted
    assumptions: tuple[str, ...] = ()
    samples_probed: int = 0

    def total(self, measure: str) -> Range | None:
        """The range summed over roles; None for cost when a role has no price."""
        ranges = [getattr(r, measure) for r in self.roles.values()]
        if any(r is None for r in ranges):
            return None
        out = ZERO
        for r in ranges:
            out = out + r
        return out

    def to_dict(self) -> dict:
        return {"roles": {role: {m: (asdict(getattr(r, m)) if getattr(r, m) is not None else None)
                                 for m in ("calls", "prompt_tokens", "completion_tokens", "cost")}
                          for role, r in self.roles.items()},
                "steps": self.steps, "from_step": self.from_step, "baseline": self.baseline,
                "token_counting": dict(self.token_counting), "assumptions": list(self.assumptions),
                "samples_probed": self.samples_probed}

    def lines(self) -> list[str]:
        """The forecast as text (for `workbench train --dry-run` and `print`)."""
        head = f"forecast of {self.steps} step(s)" + (" after step " + str(self.from_step) if self.from_step else "") \
            + (" and the baseline" if self.baseline else "") + ": least / expected / most"
        out = [head]
        for role, r in self.roles.items():
            bits = [f"{_n(r.calls.least)} / {_n(r.calls.expected)} / {_n(r.calls.most)} calls",
                    f"{_n(r.tokens.least)} / {_n(r.tokens.expected)} / {_n(r.tokens.most)} tokens"]
            if r.cost is not None:
                bits.append(f"${r.cost.least:.4f} / ${r.cost.expected:.4f} / {_usd(r.cost.most)}")
            out.append(f"  {role:<9} " + ", ".join(bits))
        counting = sorted(set(self.token_counting.values()))
        out.append("  tokens: " + "; ".join(counting))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _n(x: float | None) -> str:
    return "no cap" if x is None else f"{x:,.0f}"


def _usd(x: float | None) -> str:
    return "no cap" if x is None else f"${x:.4f}"


@dataclass
class Protocol:
    """The parts of a run the counts depend on (given by the trainer)."""
    config: Any  # TrainConfig
    remaining: Remaining  # the steps still to run, as the memo sees them (expected.py)
    train: int
    val: int
    test: int
    baseline_todo: tuple[int, int]  # (val, test) samples the memo does not hold yet, when the baseline is to run
    teacher: bool = False


def forecast(probe: Probe, protocol: Protocol, *, from_step: int, prices: dict | None = None,
             priors: Priors | None = None) -> Forecast:
    """Put the probe's per-sample sizes into the protocol's counts (see the module docstring)."""
    cfg, p, prior = protocol.config, probe, priors or Priors()
    cache_left = 1.0 - p.task.cache_share  # the share of requests the cache is expected not to answer
    everything_cached = p.task.cache_share >= 1.0 and bool(p.task.prompt)
    k = {how: p.task.per_unit(how) for how in HOW}
    task_samples, backward_samples, proposals = ZERO, ZERO, ZERO
    minibatch_samples, validation_samples = ZERO, ZERO
    baseline_val, baseline_test = protocol.baseline_todo
    if baseline_val or baseline_test:
        n = baseline_val + baseline_test
        task_samples += Range(n, n, n)
    rem = protocol.remaining
    e = expected_counts(prior, cfg, rem, text_groups=p.text_groups, demo_groups=p.demo_groups)
    # least: nothing fails, so nothing is kept and every step is stale: `patience` ends the run early
    surely_run = len(rem.batches) if cfg.patience is None else max(0, cfg.patience - rem.stale)
    sure = list(rem.fresh if rem.sure is None else rem.sure)  # paid on every path, the one keeping nothing included
    least_fresh = sure[:surely_run] + [0] * (len(sure) - surely_run)
    for batch, fresh in zip(rem.batches, least_fresh):
        carried_most = min(cfg.max_carried, max(0, protocol.train - batch))
        task_samples += Range(fresh, 0, batch + carried_most)
        chosen_most = min(batch + carried_most, cfg.max_failed + carried_most + cfg.max_correct)
        backward_samples += Range(0, 0, chosen_most)
        text_attempts = Range(0, 0, p.text_groups * cfg.max_proposals)
        all_attempts = text_attempts + Range(0, 0, p.demo_groups)
        proposals += text_attempts
        minibatch_samples += Range(0, 0, all_attempts.most * chosen_most)
        validation_samples += Range(0, 0, all_attempts.most * protocol.val)
    task_samples += Range(0, 0, protocol.test)  # the final test (the memo answers it when nothing changed)
    task_samples += minibatch_samples + validation_samples
    task_samples = Range(task_samples.least, task_samples.expected + e.task_samples, task_samples.most)
    backward_samples = Range(0, e.backward_samples, backward_samples.most)
    proposals = Range(0, e.optimizer_calls, proposals.most)
    calls = {"task": _calls(task_samples, k),
             "backward": _calls(backward_samples, {h: p.backward.per_unit(h) for h in HOW}),
             "optimizer": proposals}
    if protocol.teacher:  # demos from the teacher on each step's minibatch, through the memo
        teacher = Range(sum(least_fresh), sum(rem.batches), sum(rem.batches))
        calls["teacher"] = _calls(teacher, k)
    calls = {role: _cached(r, cache_left, everything_cached) for role, r in calls.items()}
    roles = {}
    for role, c in calls.items():
        prompt, reply = _tokens(role, c, p, prior)
        roles[role] = RoleForecast(c, prompt, reply, _cost(prices, role, prompt, reply))
    return Forecast(roles, len(rem.batches), from_step, bool(baseline_val or baseline_test),
                    dict(p.counting), (prior.describe(), *BOUNDS), samples_probed=len(p.task.counts))


def _calls(samples: Range, per_sample: dict[str, float]) -> Range:
    return Range(samples.least * per_sample["least"], samples.expected * per_sample["expected"],
                 samples.most * per_sample["most"])


def _cached(calls: Range, left: float, everything: bool) -> Range:
    """The response cache answers for free: everything probed was cached -> least 0; expected scaled."""
    return Range(0.0 if everything else calls.least, calls.expected * left, calls.most)


def _tokens(role: str, calls: Range, p: Probe, prior: Priors) -> tuple[Range, Range]:
    """Prompt and reply tokens of a role's calls."""
    cap = p.caps.get(role if role != "teacher" else "task")
    opt_cap = p.caps.get("optimizer")
    measured = {"task": p.task, "teacher": p.task, "backward": p.backward, "optimizer": p.optimizer}[role]
    least_prompt, mean_prompt, most_prompt = (measured.tokens(h) for h in HOW)
    if role in ("task", "teacher"):  # a trained value may grow to one optimizer reply
        growth = None if opt_cap is None else p.text_params * opt_cap
        reply_e = _mean(measured.cached_reply) if measured.cached_reply else p.target_tokens + FORMAT_TOKENS
    elif role == "backward":  # the parameter's value and the node's output may grow
        growth = None if opt_cap is None or cap is None else p.text_params * opt_cap + (p.caps.get("task") or 0)
        reply_e = _mean(measured.cached_reply) if measured.cached_reply else prior.backward_reply
        mean_prompt = mean_prompt or 0.0
    else:  # the optimizer sees earlier values (history 3, failures 4, this step's rejected ones)
        growth = None if opt_cap is None else most_prompt + (3 + 4 + 5) * opt_cap
        reply_e = _mean(measured.cached_reply) if measured.cached_reply else p.value_tokens + FORMAT_TOKENS
        mean_prompt += 3 * p.value_tokens
    if cap is not None:
        reply_e = min(reply_e, cap)
    prompt = Range(calls.least * least_prompt, calls.expected * mean_prompt,
                   None if calls.most is None or growth is None else calls.most * (most_prompt + growth))
    reply = Range(calls.least * (1 if least_prompt else 0), calls.expected * reply_e,
                  None if cap is None or calls.most is None else calls.most * cap)
    return prompt, reply


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _cost(prices: dict | None, role: str, prompt: Range, reply: Range) -> Range | None:
    """USD from `prices` ({role: (USD per 1M prompt tokens, USD per 1M completion tokens)})."""
    if not prices or role not in prices:
        return None
    price = prices[role]
    most = None if prompt.most is None or reply.most is None else cost_usd(prompt.most, reply.most, price)
    return Range(cost_usd(prompt.least, reply.least, price), cost_usd(prompt.expected, reply.expected, price), most)


def forecast_error(f: dict, usage: dict[str, dict]) -> dict[str, dict]:
    """Per role and measure: the forecast's range, the actual spend, the error of the expected value, inside?

    `f` is a `Forecast.to_dict()` (a `forecast` event's data); `usage` what the run spent since it.
    """
    out: dict[str, dict] = {}
    for role, measures in (f.get("roles") or {}).items():
        spent = usage.get(role) or {}
        row = {}
        for measure in ("calls", "prompt_tokens", "completion_tokens"):
            r = measures.get(measure)
            if not r:
                continue
            actual = float(spent.get(measure, 0) or 0)
            rng = Range(r["least"], r["expected"], r["most"])
            row[measure] = {"least": r["least"], "expected": r["expected"], "most": r["most"], "actual": actual,
                            "error": _relative(actual, r["expected"]), "inside": rng.holds(actual)}
        out[role] = row
    return out


def _relative(actual: float, expected: float) -> float | None:
    """(actual - expected) / expected; None when nothing was expected (0 of 0 is no error, anything else unbounded)."""
    if expected == 0:
        return 0.0 if actual == 0 else None
    return (actual - expected) / expected


def budget_limits(f: Forecast, factor: float, spent: dict[str, int]) -> dict[str, int]:
    """A run's call and token limits at `factor` times the forecast's expected values, on top of what was spent."""
    calls, tokens = f.total("calls"), f.total("prompt_tokens") + f.total("completion_tokens")
    return {"max_calls": spent["calls"] + max(1, math.ceil(calls.expected * factor)),
            "max_tokens": spent["tokens"] + max(1, math.ceil(tokens.expected * factor))}


def limit(current: int | None, new: int) -> int:
    """The stricter of a configured limit and one derived from the forecast."""
    return new if current is None else min(current, new)

