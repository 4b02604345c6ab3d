"""`agentkeep msg …`: messages between agents (services/messages.py, docs/messages.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from agentkeep.cli import State
from agentkeep.cli.output import (
    cut,
    dumps,
    fetch,
    fmt_of,
    limit_option,
    output_options,
    print_list,
    print_object,
    print_written,
    text_or_stdin,
)

COLUMNS = ["id", "state", "from", "subject", "thread", "sent_at"]
THREAD_COLUMNS = ["id", "from", "to", "subject", "sent_at", "deliveries"]
IMPORTANCE = ("low", "normal", "high", "urgent")
STATES = ("unread", "delivered", "read", "acked")


F = TypeVar("F", bound=Callable[..., Any])


def _agent_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--as",
        "agent",
        envvar="AGENTKEEP_AGENT",
        metavar="AGENT",
        help=f"{help} Default: $AGENTKEEP_AGENT, else the actor (--actor).",
    )


def _me(store: Any, agent: str | None) -> str:
    return agent or str(store.actor)


@click.group()
def msg() -> None:
    """Messages between agents: send, inbox, read, ack, thread, outbox.

    A message is a file (.agentkeep/mail/messages/ID.md); each recipient's copy is
    delivered, then read, then acked. Delivery is at-least-once and deduplicated by id:
    sending the same --id again completes a send that was interrupted and never delivers
    twice.

    \b
    Examples:
      agentkeep msg send --to reviewer --subject "Parser ready" "Branch parser-v2 is green"
      agentkeep msg inbox --unread --json            # as $AGENTKEEP_AGENT or the actor
      agentkeep msg read 20261205T101500Z-3fa9c1d2e5 --as reviewer
      agentkeep msg ack 20261205T101500Z-3fa9c1d2e5 --as reviewer
      agentkeep msg thread 20261205T101500Z-3fa9c1d2e5 --json
    """


@msg.command("send")
@click.argument("body", required=False, default="")
@click.option("--to", "to", multiple=True, required=True, metavar="AGENT", help="A recipient.")
@click.option("--cc", "cc", multiple=True, metavar="AGENT", help="A recipient in copy.")
@click.option("-s", "--subject", default="", help="The subject (a reply: Re: its parent's).")
@click.option("--thread", help="The thread (default: the replied-to one's, else the id).")
@click.option("--reply-to", "reply_to", metavar="ID", help="The message this answers.")
@click.option("--id", "message_id", metavar="ID", help="The message's id: retry-safe.")
@click.option("--ack-required", is_flag=True, help="Ask the recipients to acknowledge it.")
@click.option("--importance", type=click.Choice(IMPORTANCE), default="normal", show_default=True)
@click.option(
    "--from",
    "sender",
    envvar="AGENTKEEP_AGENT",
    metavar="AGENT",
    help="The sender. Default: $AGENTKEEP_AGENT, else the actor (--actor).",
)
@output_options
@click.pass_obj
def send(
    state: State,
    body: str,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    subject: str,
    thread: str | None,
    reply_to: str | None,
    message_id: str | None,
    ack_required: bool,
    importance: str,
    sender: str | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Send a message; BODY '-' reads it from stdin. Prints the outcome: created, or
    already_exists when this --id was sent already (nothing is delivered twice).

    \b
    Examples:
      agentkeep msg send --to builder --to tester -s "Release 1.4" "Tag it when green"
      pytest 2>&1 | tail -20 | agentkeep msg send --to lead --id ci-run-812 -
      agentkeep msg send --to lead --reply-to ci-run-812 "Fixed in 4e1c2a0"
    """
    text = text_or_stdin(body, "the message body") or ""
    with state.open() as store:
        written = store.mail.send(
            list(to),
            subject,
            text,
            sender=sender,
            thread=thread,
            cc=list(cc),
            id=message_id,
            ack_required=ack_required,
            in_reply_to=reply_to,
            importance=importance,
        )
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        print_written("message", written.item, written.outcome, fmt)
        return
    message = written.item
    outcome = written.outcome.replace("_", " ")
    click.echo(f"{outcome}: message {message.id} to {', '.join((*message.to, *message.cc))}")


@msg.command("inbox")
@click.argument("agent", required=False, envvar="AGENTKEEP_AGENT")
@click.option("--unread", is_flag=True, help="Only messages not read yet.")
@click.option("--state", "only", type=click.Choice(STATES), help="Only messages in this state.")
@click.option("--thread", help="Only messages of this thread.")
@limit_option(50)
@output_options
@click.pass_obj
def inbox(
    state: State,
    agent: str | None,
    unread: bool,
    only: str | None,
    thread: str | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    """AGENT's mailbox (default: $AGENTKEEP_AGENT, else the actor), newest first, with
    each message's state there: delivered (unread), read or acked.

    \b
    Examples:
      agentkeep msg inbox reviewer --unread
      agentkeep msg inbox --state acked -n 0 --json
    """
    wanted = "unread" if unread else only
    with state.open() as store:
        items = store.mail.inbox(
            _me(store, agent), state=wanted, thread=thread, limit=fetch(limit) or None
        )
    print_list(cut(items, limit), fmt_of(as_json, nl), COLUMNS, empty="no messages")


@msg.command("read")
@click.argument("message_id", metavar="ID")
@_agent_option("Whose mailbox.")
@output_options
@click.pass_obj
def read(state: State, message_id: str, agent: str | None, as_json: bool, nl: bool) -> None:
    """Show a message with its body and mark it read in your mailbox.

    \b
    Example:
      agentkeep msg read 20261205T101500Z-3fa9c1d2e5 --as reviewer --json
    """
    with state.open() as store:
        message = store.mail.read(_me(store, agent), message_id)
    print_object(message, fmt_of(as_json, nl), human=_human)


@msg.command("ack")
@click.argument("message_id", metavar="ID")
@_agent_option("Whose mailbox.")
@output_options
@click.pass_obj
def ack(state: State, message_id: str, agent: str | None, as_json: bool, nl: bool) -> None:
    """Acknowledge a message in your mailbox: updated, or unchanged when it already was.

    \b
    Example:
      agentkeep msg ack 20261205T101500Z-3fa9c1d2e5 --as reviewer
    """
    with state.open() as store:
        written = store.mail.ack(_me(store, agent), message_id)
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        print_written("message", written.item, written.outcome, fmt)
    else:
        click.echo(f"{written.outcome}: message {written.item.id} acked")


@msg.command("thread")
@click.argument("thread_id", metavar="ID")
@output_options
@click.pass_obj
def thread(state: State, thread_id: str, as_json: bool, nl: bool) -> None:
    """Every message of a thread (ID: the thread's, or the message that started it),
    oldest first, with each recipient's delivery state.

    \b
    Example:
      agentkeep msg thread 20261205T101500Z-3fa9c1d2e5 --json
    """
    with state.open() as store:
        items = store.mail.thread(thread_id)
    fmt = fmt_of(as_json, nl)
    print_list(items if fmt != "table" else [_row(m) for m in items], fmt, THREAD_COLUMNS)


@msg.command("outbox")
@click.argument("agent", required=False, envvar="AGENTKEEP_AGENT")
@limit_option(50)
@output_options
@click.pass_obj
def outbox(state: State, agent: str | None, limit: int, as_json: bool, nl: bool) -> None:
    """The messages AGENT sent (default: $AGENTKEEP_AGENT, else the actor), newest
    first, with each recipient's delivery state.

    \b
    Example:
      agentkeep msg outbox lead --json
    """
    with state.open() as store:
        items = store.mail.outbox(_me(store, agent), limit=fetch(limit) or None)
    fmt = fmt_of(as_json, nl)
    kept = cut(items, limit)
    print_list(
        kept if fmt != "table" else [_row(m) for m in kept],
        fmt,
        THREAD_COLUMNS,
        empty="no messages",
    )


@msg.command("reindex")
@click.option("--rebuild", is_flag=True, help="Empty the deliveries index and read it again.")
@output_options
@click.pass_obj
def reindex(state: State, rebuild: bool, as_json: bool, nl: bool) -> None:
    """Bring the deliveries index up to date with the mailboxes, and deliver messages an
    interrupted send left undelivered. JSON: one object (messages, deliveries, changed,
    completed, problems).

    \b
    Example:
      agentkeep msg reindex --rebuild --json
    """
    with state.open() as store:
        report = store.mail.refresh(rebuild=rebuild)
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        click.echo(dumps(report.to_dict()))
        return
    click.echo(
        f"{report.messages} message(s), {report.deliveries} delivery(ies); "
        f"{report.changed} index row(s) changed; {len(report.completed)} completed"
    )
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)


def _row(message: Any) -> dict[str, Any]:
    data: dict[str, Any] = message.to_dict()
    data["to"] = ", ".join((*message.to, *message.cc))
    data["deliveries"] = ", ".join(f"{d.recipient}:{d.state}" for d in message.deliveries)
    return data


def _human(data: dict[str, Any]) -> str:
    lines = [
        f"From:     {data['from']}",
        f"To:       {', '.join(data['to'])}",
    ]
    if data["cc"]:
        lines.append(f"Cc:       {', '.join(data['cc'])}")
    lines += [
        f"Subject:  {data['subject']}",
        f"Date:     {data['sent_at']}",
        f"Id:       {data['id']} (thread {data['thread']})",
    ]
    if data.get("in_reply_to"):
        lines.append(f"Reply to: {data['in_reply_to']}")
    flags = [data["importance"]] if data["importance"] != "normal" else []
    if data["ack_required"]:
        flags.append("ack required")
    if data.get("state"):
        flags.append(f"state: {data['state']}")
    if flags:
        lines.append(f"Flags:    {', '.join(flags)}")
    return "\n".join(lines) + "\n\n" + (data.get("body") or "")
