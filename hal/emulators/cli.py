"""``lifecert-emulator``: run an emulated reader, vein module or social-security card.

Each command prints where the peer is (the pty slave path, or the vpcd port),
then reads control lines from stdin until ``quit``, end of input or SIGTERM.
"""

import contextlib
import datetime as dt
import signal
import sys
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from common import idnumber
from common.cli import friendly_errors
from common.errors import ConfigError
from hal.card.identity import NO_EXPIRY, CardText
from hal.card.sscard import SocialSecurityHolder
from hal.emulators.faults import Faults
from hal.emulators.ga467 import GA467Emulator, ResidentCard
from hal.emulators.sscard import VPCD_PORT, VirtualSocialSecurityCard
from hal.emulators.vein import VeinModuleEmulator

FAULT_HELP = "checksum N | garbage N | silent N | delay SECONDS"


def _control(commands: dict[str, Callable[[list[str]], None]], faults: Faults | None) -> None:
    """Run stdin control lines until quit / EOF / SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def reader() -> None:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            try:
                if words[0] in commands:
                    commands[words[0]](words[1:])
                elif faults is not None and words[0] == "delay":
                    faults.inject(delay=float(words[1]))
                elif faults is not None:
                    faults.inject(**{words[0]: int(words[1]) if len(words) > 1 else 1})
                else:
                    raise ValueError(f"unknown command {words[0]!r}")
                click.echo(f"ok: {line.strip()}")
            except (ValueError, IndexError, OSError) as exc:
                click.echo(f"error: {exc}", err=True)
        stop.set()

    threading.Thread(target=reader, daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


def _load_card(path: Path | None, photo: Path | None) -> ResidentCard:
    if path is None:
        return ResidentCard.demo(photo.read_bytes() if photo else b"")
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        until = data.get("valid_until", NO_EXPIRY)
        text = CardText(
            id_number=idnumber.validate(str(data["id_number"])),
            name=str(data["name"]),
            sex=str(data["sex"]),
            nation=str(data.get("nation", "01")),
            birth_date=data["birth_date"],
            address=str(data.get("address", "")),
            authority=str(data.get("authority", "")),
            valid_from=data.get("valid_from", dt.date(2020, 1, 1)),
            valid_until=None if until == NO_EXPIRY else until,
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"card file {path}: {exc!r}: it needs id_number, name, sex (M/F), birth_date "
            "(TOML date) and may set nation, address, authority, valid_from, valid_until"
        ) from None
    photo = photo or (path.parent / data["photo"] if "photo" in data else None)
    return ResidentCard(text, photo.read_bytes() if photo else b"")


def _grey(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("L"))


@click.group()
def main() -> None:
    """Emulated hardware peers for tests, demos and field diagnosis."""


@main.command()
@click.option(
    "--card",
    "card_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="card TOML file (repeat for several cards; the first is on the reader)",
)
@click.option("--photo", type=click.Path(exists=True, path_type=Path), help="photo block file")
@click.option("--no-card", is_flag=True, help="start with the reader empty")
@click.option("--pace", type=int, default=None, help="emulate wire time at this baud rate")
@friendly_errors
def ga467(
    *, card_files: tuple[Path, ...], photo: Path | None, no_card: bool, pace: int | None
) -> None:
    """A GA/T 467 resident-ID reader on a pty.

    Stdin commands: insert [N] (card N of --card, from 1) | remove | checksum N |
    garbage N | silent N | select_fail N | read_fail N | delay SECONDS | quit.

    Example: lifecert-emulator ga467 --photo face.jpg
    """
    cards = [_load_card(f, photo) for f in card_files] or [_load_card(None, photo)]

    def insert(args: list[str]) -> None:
        number = int(args[0]) if args else 1
        if not 1 <= number <= len(cards):
            raise ValueError(f"card {number} does not exist: 1..{len(cards)}")
        emu.insert(cards[number - 1])

    with GA467Emulator(None if no_card else cards[0], pace_baud=pace) as emu:
        click.echo(f"GA/T 467 reader emulator on {emu.path}")
        _control({"insert": insert, "remove": lambda _: emu.remove()}, emu.faults)


@main.command()
@click.option("--finger", type=click.Path(exists=True, path_type=Path), help="NIR image to place")
@click.option("--pace", type=int, default=None, help="emulate wire time at this baud rate")
@friendly_errors
def vein(finger: Path | None, pace: int | None) -> None:
    """A finger-vein module on a pty.

    Stdin commands: place IMAGE | lift | checksum N | garbage N | silent N |
    delay SECONDS | quit.

    Example: lifecert-emulator vein --finger F0101.bmp
    """
    with VeinModuleEmulator(pace_baud=pace) as emu:
        if finger:
            emu.place(_grey(finger))
        click.echo(f"vein module emulator on {emu.path}")
        _control(
            {"place": lambda a: emu.place(_grey(Path(a[0]))), "lift": lambda _: emu.lift()},
            emu.faults,
        )


@main.command()
@click.option("--name", default="王建国", show_default=True)
@click.option("--ssn", default="", help="social-security number (default: a valid made-up one)")
@click.option("--sex", type=click.Choice(["M", "F"]), default="M", show_default=True)
@click.option("--birth-date", type=click.DateTime(["%Y-%m-%d"]), default="1948-05-02")
@click.option("--card-number", default="A01234567", show_default=True)
@click.option("--port", type=int, default=VPCD_PORT, show_default=True, help="vpcd port")
@friendly_errors
def sscard(
    *, name: str, ssn: str, sex: str, birth_date: dt.datetime, card_number: str, port: int
) -> None:
    """A social-security card in vsmartcard's virtual reader (pcscd must be running).

    Stdin commands: insert | remove | quit.

    Example: lifecert-emulator sscard --name 李桂兰 --sex F --birth-date 1951-09-30
    """
    born = birth_date.date()
    try:
        number = idnumber.validate(ssn) if ssn else idnumber.make("310101", born, 11 + (sex == "F"))
    except idnumber.IdNumberError as exc:
        raise ConfigError(f"--ssn {ssn!r}: {exc}") from None
    holder = SocialSecurityHolder(card_number, number, name, sex, "01", born)
    card = VirtualSocialSecurityCard(holder, port=port)
    try:
        card.insert()
    except ConnectionError as exc:
        raise ConfigError(str(exc)) from None
    click.echo(f"social-security card {card_number} ({name}, {number}) in vpcd on port {port}")
    _control({"insert": lambda _: card.insert(), "remove": lambda _: card.remove()}, None)
    card.remove()
