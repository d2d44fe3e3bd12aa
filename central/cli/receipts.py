"""Commands of central's receipts (certification room): ``receipts issue``, ``receipts serve``."""

import uuid
from pathlib import Path

import click
import segno

from central.certification import receipts
from central.cli.context import State
from common.cli import friendly_errors
from common.errors import LifecertError


@click.group("receipts")
def receipts_group() -> None:
    """Verifiable certification receipts: issue one, serve the public verify page.

    \b
    Example:
        lifecert-central receipts issue 5f0c... --png receipt.png
        lifecert-central receipts serve --port 8090
    """


@receipts_group.command("issue")
@click.argument("result_id", type=click.UUID)
@click.option(
    "--png", type=click.Path(dir_okay=False, path_type=Path), help="Also write its QR code."
)
@click.pass_obj
@friendly_errors
def receipts_issue(state: State, result_id: uuid.UUID, png: Path | None) -> None:
    """Print the signed receipt of a passing certification (and its QR code as PNG).

    \b
    Example:
        lifecert-central receipts issue 5f0c1d2e-... --png receipt.png
    """
    central = state.central
    with state.engine().connect() as conn:
        token = receipts.receipt_for(conn, result_id, central.signer, central.book)
    if token is None:
        raise LifecertError(f"no applied passing result {result_id}: check the result id")
    click.echo(token)
    if png is not None:
        segno.make_qr(token, error="m").save(str(png), scale=4, border=4)
        click.echo(f"wrote {png}", err=True)


@receipts_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True)
@click.pass_obj
@friendly_errors
def receipts_serve(state: State, host: str, port: int) -> None:
    """Serve the public page that verifies receipts (no login; put TLS in front of it).

    \b
    Example:
        lifecert-central receipts serve --host 0.0.0.0 --port 8090
    """
    import uvicorn

    app = receipts.verify_app([state.central.sign_key.public_key()])
    uvicorn.run(app, host=host, port=port, log_level="warning")


COMMANDS = (receipts_group,)
