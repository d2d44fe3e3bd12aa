"""Commands of central's notify room: ``notify`` (the outbox, webhook secrets)."""

from pathlib import Path

import click

from central.cli.context import State
from central.cli.output import emit
from central.notify import outbox, signature
from common.cli import friendly_errors
from common.errors import LifecertError


@click.group("notify")
def notify_group() -> None:
    """The notifier's outbox: counts, dead letters, a send pass; webhook secrets.

    \b
    Example:
        lifecert-central notify status
    """


@notify_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def notify_status(state: State, as_json: bool) -> None:
    """Messages per status (pending, sent, dead).

    \b
    Example:
        lifecert-central notify status
    """
    with state.engine().connect() as conn:
        counts = outbox.counts(conn)
    emit(counts, as_json, list(counts))


@notify_group.command("dead")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def notify_dead(state: State, limit: int, as_json: bool) -> None:
    """Dead letters, newest first (recipients masked).

    \b
    Example:
        lifecert-central notify dead --limit 20
    """
    with state.engine().connect() as conn:
        rows = outbox.dead_letters(conn, limit)
    emit(rows, as_json, ["key", "channel", "recipient", "attempts", "last_error", "created_at"])


@notify_group.command("retry")
@click.argument("key")
@click.pass_obj
@friendly_errors
def notify_retry(state: State, key: str) -> None:
    """Make dead letter KEY pending again with fresh tries.

    \b
    Example:
        lifecert-central notify retry reminder:due:110105195003071249:2027-01-31
    """
    with state.engine().begin() as conn:
        if not outbox.retry(conn, key):
            raise LifecertError(
                f"no dead letter with key {key!r}: see `lifecert-central notify dead`"
            )
    click.echo(f"{key}: pending again")


@notify_group.command("send")
@click.pass_obj
@friendly_errors
def notify_send(state: State) -> None:
    """Deliver the messages due now, once (``run`` does this continuously).

    \b
    Example:
        lifecert-central notify send
    """
    state.engine()
    done = state.central.sender().run_once()
    click.echo(f"{done.sent} sent, {done.retried} to retry, {done.dead} dead")


@notify_group.command("webhook-secret")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@friendly_errors
def notify_webhook_secret(file: Path) -> None:
    """Write a new webhook signing secret (whsec_..., Standard Webhooks) to FILE, mode 0600.

    Name FILE in [alerts] webhook_secret_file and give the receiver the same secret; the
    secret is never printed.

    \b
    Example:
        lifecert-central notify webhook-secret /etc/lifecert/webhook.secret
    """
    try:
        signature.write_secret(file)
    except FileExistsError:
        raise LifecertError(f"{file} exists: keep it, or remove it to make a new one") from None
    except OSError as exc:
        raise LifecertError(f"cannot create {file}: {exc.strerror}") from None
    click.echo(f'wrote {file} (set [alerts] webhook_secret_file = "{file}")')


COMMANDS = (notify_group,)
