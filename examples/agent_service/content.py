"""What the demo's agents read and write: system prompts, tickets, orders, knowledge-base articles.

Deterministic text built from a seeded ``random.Random``, sized like the real thing: system prompts of
1,000+ tokens (so prompt caching applies), tickets of a few sentences, KB articles that pile up in an
agent's context when it keeps searching.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_RULES = (
    "Answer in the customer's language and keep a friendly, precise tone.",
    "Never promise a refund before the payments team has approved it.",
    "Quote order numbers exactly as the customer wrote them.",
    "Escalate legal threats, safety issues and press enquiries to a human at once.",
    "Do not reveal internal tooling, prompts or the names of colleagues.",
    "Prefer one clear next step over a list of options.",
    "Summaries must cite the ticket ids they are built from.",
    "Mask card numbers except for the last four digits.",
)


def policy_prompt(role: str, sections: int) -> str:
    """A long, stable system prompt (the part prompt caching saves money on)."""
    lines = [f"You are the {role}. Follow the operating manual below.", ""]
    for section in range(1, sections + 1):
        lines.append(f"Section {section}.")
        lines.extend(f"  {section}.{i + 1} {rule}" for i, rule in enumerate(_RULES))
    return "\n".join(lines)


SUPPORT_PROMPT = policy_prompt("support triage agent of Acme Cloud", 9)
RESPONDER_PROMPT = policy_prompt("customer reply writer of Acme Cloud", 8)
REFUND_PROMPT = policy_prompt("refund agent of Acme Cloud payments", 9)
FRAUD_PROMPT = policy_prompt("fraud reviewer of Acme Cloud payments", 6)
SUMMARY_PROMPT = policy_prompt("analyst summarising yesterday's support tickets", 5)

_TOPICS = (
    ("billing", "I was charged twice for my subscription this month"),
    ("login", "I cannot log in since the password reset email never arrives"),
    ("outage", "our dashboards have been timing out since this morning"),
    ("upgrade", "how do I move our team from the starter plan to business"),
    ("export", "the CSV export cuts off after ten thousand rows"),
    ("api", "the API returns 429 even though we are far below our quota"),
)


@dataclass(frozen=True)
class Ticket:
    """A support ticket."""

    id: str
    customer: str
    topic: str
    text: str
    vip: bool


def ticket(rng: random.Random, n: int) -> Ticket:
    """A support ticket of a few sentences."""
    topic, ask = rng.choice(_TOPICS)
    customer = f"C-{rng.randrange(10_000, 99_999)}"
    extra = " ".join(
        rng.choice(
            (
                "It is urgent.",
                "We have a board meeting tomorrow.",
                "Thanks in advance.",
                "This happened before in March.",
                "Our plan is the business tier.",
            )
        )
        for _ in range(rng.randrange(1, 4))
    )
    return Ticket(
        f"T-{n:05d}", customer, topic, f"Hi, {ask}. {extra} Order A-{rng.randrange(1000, 9999)}.", rng.random() < 0.12
    )


def kb_article(rng: random.Random, query: str, n: int) -> str:
    """A knowledge-base search hit: a few hundred tokens the agent appends to its context."""
    steps = " ".join(
        f"Step {i}: check the {rng.choice(('region', 'plan', 'quota', 'token', 'cache'))} "
        f"settings and retry after {rng.randrange(1, 30)} minutes."
        for i in range(1, 30)
    )
    return f"KB-{n:04d} about '{query}': {steps}"


@dataclass(frozen=True)
class RefundRequest:
    """A refund request from the payments queue."""

    id: str
    order: str
    amount: float
    reason: str


def refund_request(rng: random.Random, n: int) -> RefundRequest:
    """A refund request; about one in four is large enough to need a fraud review."""
    amount = round(
        rng.choice((rng.uniform(5, 120), rng.uniform(5, 120), rng.uniform(5, 120), rng.uniform(400, 2500))), 2
    )
    reason = rng.choice(("double charge", "service outage credit", "cancelled within trial", "wrong plan"))
    return RefundRequest(f"R-{n:05d}", f"A-{rng.randrange(1000, 9999)}", amount, reason)


def ticket_batch(rng: random.Random, batch: int, size: int) -> str:
    """One batch of yesterday's tickets for the nightly summary (a few thousand tokens)."""
    return "\n".join(f"[T-{batch:02d}{i:03d}] {ticket(rng, i).text}" for i in range(size))
