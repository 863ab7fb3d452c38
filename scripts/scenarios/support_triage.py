"""Support desk: a triage agent reads each customer's message and hands the conversation to
billing or technical support, who resolve it with their own tools.

    hivebus run scripts/scenarios/support_triage.py
    python scripts/scenarios/support_triage.py

Shows handoffs (``handoffs=[...]``: the model gets a ``transfer_to_<agent>`` tool, and the
agent it picks continues the same conversation), departments with tools over in-script
data, and several customers served at once. Triage answers questions of neither kind
itself. On the mock LLM, ``POLICY`` scripts each step; on a real model the instructions
drive the same desk.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, Literal

import msgspec

from agents import Agent, AgentEvent, Runtime, load_config, open_runtime
from agents.llm import Policy, Rule, ScriptedCall
from agents.patterns import Handoff
from bus import Envelope
from tools import tool

CUSTOMERS = {  # who writes in, and what they say
    "initech": "I was charged twice for invoice INV-1002. Can I have the duplicate payment back?",
    "acme": "Our dashboard keeps failing with 502 errors since this morning. Account ACME-7.",
    "globex": "Hello! When can I reach your support team?",
}


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    """An invoice: what it bills (USD), what was paid against it, and the details."""

    account: str
    amount: float
    paid: float
    detail: str


INVOICES = {
    "INV-1002": Invoice(account="INITECH-3", amount=49.0, paid=98.0, detail="2 card payments"),
    "INV-1003": Invoice(account="GLOBEX-2", amount=79.0, paid=0.0, detail="Team plan, due 30 June"),
}
SERVICES = {
    "dashboard": "degraded: 502 errors from load balancer lb-eu-2 since 08:10 UTC; fix rolling "
    "out, about 30 minutes",
    "api": "operational",
    "webhooks": "operational",
}
ACCOUNTS = {
    "ACME-7": "region eu-west (lb-eu-2): 41 of 60 dashboard requests got 502 in the last "
    "hour; account settings healthy"
}


@tool
def lookup_invoice(invoice: str) -> Invoice:
    """An invoice by its number (INV-...): account, amount, what was paid, details."""
    if invoice not in INVOICES:
        raise LookupError(f"no invoice {invoice!r}")
    return INVOICES[invoice]


@tool
def issue_refund(invoice: str, amount: float, reason: str) -> str:
    """Refund money paid beyond an invoice's amount to the card it came from."""
    bill = lookup_invoice(invoice)
    if amount > bill.paid - bill.amount + 0.005:
        raise ValueError(f"refused: only ${bill.paid - bill.amount:.2f} was overpaid on {invoice}")
    return f"refund RF-{invoice[4:]} of ${amount:.2f} issued ({reason}); 3-5 business days"


@tool
def check_service_status(service: Literal["dashboard", "api", "webhooks"]) -> str:
    """The current status of one of our services."""
    return SERVICES[service]


@tool
def run_diagnostic(account: str) -> str:
    """Recent errors and the health of a customer account (ACME-7, ...)."""
    if account not in ACCOUNTS:
        raise LookupError(f"no account {account!r}")
    return ACCOUNTS[account]


def _call(tool: str, **arguments: Any) -> ScriptedCall:
    return ScriptedCall(name=tool, arguments=arguments)


def _rule(agent: str, step: int, answer: str | ScriptedCall, regex: str | None = None) -> Rule:
    """The mock's answer (a text or a tool call) for ``agent`` at ``step``, used once."""
    if isinstance(answer, str):
        return Rule(agent=agent, step=step, regex=regex, text=answer, once=True)
    return Rule(agent=agent, step=step, regex=regex, tool_calls=[answer], once=True)


_REFUND = _call("issue_refund", invoice="INV-1002", amount=49.0, reason="paid twice")
_REFUNDED = "INV-1002 was paid twice: I refunded $49.00 (RF-1002), on your card in 3-5 days."
_EXPLAINED = "Our eu-west load balancer fails (502 since 08:10 UTC); fixed in ~30 min. You're fine."
# A rule sees the last message; after a handoff that is "Transferred to billing.", the same
# for every customer: so the mock scripts one customer per department.
POLICY = Policy(
    [
        _rule("triage", 0, _call("transfer_to_billing", reason="refund"), "(?i)invoice|refund"),
        _rule("triage", 0, _call("transfer_to_technical", reason="errors"), "(?i)error|failing"),
        _rule("triage", 0, "We answer Monday to Friday, 8:00-18:00 CET, right here."),
        _rule("billing", 1, _call("lookup_invoice", invoice="INV-1002")),
        _rule("billing", 2, _REFUND),
        _rule("billing", 3, _REFUNDED),
        _rule("technical", 1, _call("check_service_status", service="dashboard")),
        _rule("technical", 2, _call("run_diagnostic", account="ACME-7")),
        _rule("technical", 3, _EXPLAINED),
    ]
)


async def main(runtime: Runtime) -> None:
    desk = "the support desk of Hexa Cloud, a hosting company"
    triage = Agent(
        "triage",
        f"You are triage, first contact at {desk}. Transfer invoices, charges, payments and "
        "refunds to billing; outages, errors and anything broken to technical. Answer other "
        "questions yourself in a sentence: we answer Monday to Friday, 8:00-18:00 CET.",
        handoffs=[
            Handoff(agent="billing", description="Invoices, charges, payments, refunds."),
            Handoff(agent="technical", description="Outages, errors, anything not working."),
        ],
    )
    billing = Agent(
        "billing",
        f"You are billing, at {desk}. Look the invoice up before saying anything about it; "
        "refund only what was paid beyond its amount. Tell the customer in two sentences what "
        "you found and did (with the refund id).",
        tools=[lookup_invoice, issue_refund],
    )
    technical = Agent(
        "technical",
        f"You are technical, at {desk}. Check the service concerned and, given an account, run "
        "a diagnostic on it. Tell the customer in two sentences the cause and what happens next.",
        tools=[check_service_status, run_diagnostic],
    )
    await runtime.add(triage, billing, technical)

    tools_used: dict[str, list[str]] = defaultdict(list)

    def note_tool(envelope: Envelope) -> None:
        event = envelope.payload
        if isinstance(event, AgentEvent) and event.kind == "tool_called" and event.tool:
            tools_used[event.conversation_id].append(event.tool)

    with runtime.bus.tap("agent.*.events", note_tool):
        async with asyncio.TaskGroup() as group:  # every customer at once
            tickets = {
                customer: group.create_task(
                    runtime.ask("triage", text, conversation_id=f"ticket-{customer}", timeout=120)
                )
                for customer, text in CUSTOMERS.items()
            }
    for customer, ticket in tickets.items():
        result = ticket.result()
        path = " → ".join([*result.handoffs, result.agent])
        tools = ", ".join(tools_used[result.conversation_id]) or "no tools"
        print(f"{customer}: {path} ({tools})\n    {result.text}")


if __name__ == "__main__":

    async def _standalone() -> None:
        async with open_runtime(load_config(), policy=POLICY) as runtime:
            await main(runtime)

    asyncio.run(_standalone())
