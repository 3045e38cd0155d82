"""The three teams' workflows: agents with tools on small / standard / frontier models, as a real service has.

* support / ``support-triage``: a triage agent (small model) looks the customer up with a tool and
  classifies the ticket; a responder (standard model, streamed) drafts the reply, retried until it passes
  validation. VIP tickets ask for a frontier model first, which the approval gate denies for support.
  One ticket sends the triage agent into a search loop that has no natural end: the per-run guard
  (``max_tokens``) stops it before the call that would take the run over its limit.
* payments / ``refund``: extract the request (small model, JSON, retried on invalid output), check the
  order, send large refunds to a frontier reasoning model for fraud review (approved for this workflow),
  issue the refund, notify the customer (streamed).
* data / ``nightly-summarisation``: map yesterday's ticket batches with a self-hosted model (no price:
  metered as unpriced tokens, never as $0), reduce with a standard model, and ask for insights from a
  frontier model, which the policy routes down to a standard one for the data team.

The shape of every run (tool calls, failed validations, the runaway loop) is drawn from the seed, so runs
are reproducible against any server; the replies are scripted only for the local fake.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import tokenmeter

from .content import (
    FRAUD_PROMPT,
    REFUND_PROMPT,
    RESPONDER_PROMPT,
    SUMMARY_PROMPT,
    SUPPORT_PROMPT,
    Ticket,
    kb_article,
    refund_request,
    ticket,
    ticket_batch,
)
from .llm import LLM, Message, parse_object

SMALL, STANDARD, FRONTIER = "gpt-4o-mini", "gpt-4o", "o1"
SELF_HOSTED = "llama-3.1-8b-instruct"

TRIAGE_MAX_TOKENS = 100_000  # per-run guard of support-triage: ~25x a normal run
REFUND_MAX_COST_USD = 0.50  # per-run guard of refund
RUNAWAY_SAFETY_CAP = 60  # search iterations, only reached when tokenmeter is not configured (no guard)
FRAUD_REVIEW_FROM_USD = 300.0
NIGHTLY_BATCHES = 8

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": text,
            "parameters": {"type": "object", "properties": {arg: {"type": "string"}}, "required": [arg]},
        },
    }
    for name, text, arg in (
        ("lookup_customer", "Plan, region and open incidents of a customer", "customer_id"),
        ("search_kb", "Search the knowledge base", "query"),
    )
]


class ValidationError(Exception):
    """A model's output failed the service's checks; the attempt is retried."""


def validated(llm: LLM, max_attempts: int = 3) -> Iterator[tokenmeter.Attempt]:
    """``tokenmeter.attempts`` retrying on :class:`ValidationError`, noting in the call log what was retried."""
    loop, first_call, last = llm.new_loop(), len(llm.calls), 0
    try:
        for attempt in tokenmeter.attempts(max_attempts, retry_on=ValidationError):
            llm.loop, last = (loop, attempt.number), attempt.number
            yield attempt
    finally:
        llm.loop = None
        for call in llm.calls[first_call:]:
            if call.loop is not None and call.loop[0] == loop and call.loop[1] < last:
                call.wasted = "retried"


def _fails(rng: random.Random, attempt: tokenmeter.Attempt, rate: float, max_attempts: int = 3) -> bool:
    """Whether this attempt's output is scripted to be invalid (never the last attempt)."""
    return attempt.number < max_attempts - 1 and rng.random() < rate


# -- tools (no LLM inside; their spans show where agent time goes) ---------------------------------------
@tokenmeter.tool("lookup_customer")
def lookup_customer(customer_id: str) -> dict[str, Any]:
    """The customer's plan and region from the CRM."""
    return {"customer_id": customer_id, "plan": "business", "region": "eu-west", "open_incidents": 1}


@tokenmeter.tool("search_kb")
def search_kb(rng: random.Random, query: str, n: int) -> str:
    """Knowledge-base hits for ``query``."""
    return kb_article(rng, query, n)


@tokenmeter.tool("check_order")
def check_order(order: str) -> dict[str, Any]:
    """The order as the billing system has it."""
    return {"order": order, "paid": True, "refunded": False}


@tokenmeter.tool("issue_refund")
def issue_refund(order: str, amount: float) -> str:
    """Book the refund; returns its id."""
    return f"RF-{order}-{int(amount * 100)}"


def _tool_turn(messages: list[Message], n: int, name: str, args: dict[str, Any], result: Any) -> None:
    call_id = f"call_{n}"
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)})


# -- support -----------------------------------------------------------------------------------------
def support_triage(llm: LLM, rng: random.Random, n: int, *, runaway: bool = False) -> None:
    """One support ticket: triage, then a validated reply."""
    t = ticket(rng, n)
    with tokenmeter.workflow("support-triage", team="support", max_tokens=TRIAGE_MAX_TOKENS):
        category = triage(llm, rng, t, runaway)
        respond(llm, rng, t, category)


@tokenmeter.agent("triage")
def triage(llm: LLM, rng: random.Random, t: Ticket, runaway: bool) -> str:
    """Classify a ticket, looking the customer up first."""
    messages: list[Message] = [{"role": "system", "content": SUPPORT_PROMPT}, {"role": "user", "content": t.text}]
    with tokenmeter.step("classify"):
        lookup = {"customer_id": t.customer}
        llm.chat(SMALL, messages, max_tokens=200, tools=TOOLS, tool_call=("lookup_customer", lookup))
        _tool_turn(messages, 0, "lookup_customer", lookup, lookup_customer(t.customer))
        verdict = json.dumps({"category": t.topic, "priority": "high" if t.vip else "normal"})
        llm.chat(SMALL, messages, max_tokens=200, tools=TOOLS, text=verdict)
    if runaway:
        with tokenmeter.step("research"):
            # The edge case: every search result suggests another search; the context grows each turn.
            for i in range(1, RUNAWAY_SAFETY_CAP + 1):
                query = f"{t.topic} {t.text.split()[-1]} attempt {i}"
                llm.chat(STANDARD, messages, max_tokens=400, tools=TOOLS, tool_call=("search_kb", {"query": query}))
                _tool_turn(messages, i, "search_kb", {"query": query}, search_kb(rng, query, i))
    return t.topic


@tokenmeter.agent("responder")
def respond(llm: LLM, rng: random.Random, t: Ticket, category: str) -> str:
    """Draft the customer reply; it must quote the ticket id (validated, retried)."""
    messages: list[Message] = [
        {"role": "system", "content": RESPONDER_PROMPT},
        {"role": "user", "content": f"Ticket {t.id} ({category}). Start with the ticket id. {t.text}"},
    ]
    if t.vip:
        try:
            with tokenmeter.step("draft-premium"):
                return llm.chat(
                    FRONTIER, messages, max_tokens=2000, reasoning=900, text=f"{t.id}: we are on it personally."
                ).text
        except tokenmeter.PolicyViolation:
            pass  # premium models need approval; support falls back to the standard tier below
    with tokenmeter.step("draft"):  # outside the retry loop: a retried attempt is waste, not a failed step
        for attempt in validated(llm):
            with attempt:
                bad = _fails(rng, attempt, 0.25)
                words = " ".join(
                    rng.choice(
                        ("Thanks", "for", "reaching", "out", "we", "checked", "your", "account", "and", "fixed", "it")
                    )
                    for _ in range(rng.randrange(40, 90))
                )
                text = f"{'' if bad else t.id + ': '}{words}."
                answer = llm.chat(STANDARD, messages, max_tokens=600, stream=True, text=text)
                if llm.fake is not None and t.id not in answer.text:
                    raise ValidationError(f"reply does not quote {t.id}")
    return answer.text


# -- payments ----------------------------------------------------------------------------------------
def refund(llm: LLM, rng: random.Random, n: int) -> None:
    """One refund request, end to end."""
    r = refund_request(rng, n)
    with (
        tokenmeter.workflow("refund", team="payments", max_cost_usd=REFUND_MAX_COST_USD),
        tokenmeter.agent("refund-agent"),
    ):
        messages: list[Message] = [
            {"role": "system", "content": REFUND_PROMPT},
            {
                "role": "user",
                "content": f"Refund {r.id}: order {r.order}, {r.reason}, ${r.amount:.2f}. Reply with JSON.",
            },
        ]
        with tokenmeter.step("extract"):
            for attempt in validated(llm):
                with attempt:
                    fields = {"order": r.order, "reason": r.reason}
                    if not _fails(rng, attempt, 0.3):
                        fields["amount"] = f"{r.amount:.2f}"
                    answer = llm.chat(SMALL, messages, max_tokens=150, text=json.dumps(fields))
                    if llm.fake is not None and "amount" not in parse_object(answer.text):
                        raise ValidationError("extracted refund has no amount")
        check_order(r.order)
        if r.amount >= FRAUD_REVIEW_FROM_USD:
            with tokenmeter.step("fraud-review"):
                llm.chat(
                    FRONTIER,
                    [{"role": "system", "content": FRAUD_PROMPT}, messages[1]],
                    max_tokens=6000,
                    reasoning=rng.randrange(1500, 4500),
                    text='{"fraud": false, "confidence": 0.93}',
                )
        issue_refund(r.order, r.amount)
        with tokenmeter.step("notify"):
            llm.chat(
                SMALL,
                messages,
                max_tokens=300,
                stream=True,
                text=f"Your refund {r.id} of ${r.amount:.2f} is on its way; expect it within 5 days.",
            )


# -- data --------------------------------------------------------------------------------------------
def nightly_summarisation(llm: LLM, rng: random.Random, n: int) -> None:
    """Summarise yesterday's tickets: map with a self-hosted model, reduce, then ask for insights."""
    with tokenmeter.workflow("nightly-summarisation", team="data"), tokenmeter.agent("summariser"):
        summaries: list[str] = []
        with tokenmeter.step("map"):
            for b in range(NIGHTLY_BATCHES):
                batch = ticket_batch(rng, b, rng.randrange(25, 40))
                summary = f"Batch {b}: " + " ".join(
                    rng.choice(("billing", "login", "export", "outage", "api")) for _ in range(60)
                )
                summaries.append(
                    llm.chat(
                        SELF_HOSTED,
                        [{"role": "system", "content": SUMMARY_PROMPT}, {"role": "user", "content": batch}],
                        max_tokens=300,
                        text=summary,
                    ).text
                    or summary
                )
        report = [{"role": "system", "content": SUMMARY_PROMPT}, {"role": "user", "content": "\n".join(summaries)}]
        with tokenmeter.step("reduce"):
            llm.chat(
                STANDARD,
                report,
                max_tokens=1200,
                stream=True,
                text=" ".join(
                    rng.choice(("Login", "issues", "rose", "after", "the", "release", "billing", "fell"))
                    for _ in range(400)
                ),
            )
        with tokenmeter.step("insights"):
            # Asks for the frontier tier; the policy routes the data team to a standard model instead.
            llm.chat(FRONTIER, report, max_tokens=1500, text="Top driver of tickets: login email delays.")
