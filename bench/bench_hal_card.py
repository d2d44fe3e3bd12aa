"""Card read (find + select + read basic info) over the GA/T 467 emulator on a pty.

Run: python bench/bench_hal_card.py [--reads 50]

Two figures: the pty as it is (a pty moves bytes at memory speed, whatever
baud rate is set on it), and the emulator pacing its traffic at 115200 baud
8N1 (10 bits per byte) to show what a real serial line costs.
"""

import argparse
import statistics
import time

from hal.card.ga467 import GA467CardReader
from hal.card.ga467_frames import Command, command, response
from hal.emulators.ga467 import GA467Emulator, ResidentCard

BAUD = 115200


def protocol_bytes(card: ResidentCard) -> int:
    """Bytes on the line for one read (commands + replies)."""
    sent = sum(len(command(c)) for c in Command)
    replies = len(response(0x9F, bytes(4))) + len(response(0x90, bytes(8)))
    replies += len(response(0x90, bytes(4 + 256 + len(card.photo))))
    return sent + replies


def run(reads: int, pace: int | None) -> list[float]:
    card = ResidentCard.demo(bytes(1024))
    times = []
    with GA467Emulator(card, pace_baud=pace) as emu, GA467CardReader(emu.path) as reader:
        reader.poll()  # warm up
        for _ in range(reads):
            start = time.perf_counter()
            assert reader.poll() is not None
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=50)
    args = parser.parse_args()
    size = protocol_bytes(ResidentCard.demo(bytes(1024)))
    print(
        f"protocol bytes per read: {size} ({size * 10 / BAUD * 1000:.1f} ms of wire time at {BAUD})"
    )
    for label, pace in (("pty, unpaced", None), (f"paced at {BAUD} 8N1", BAUD)):
        times = run(args.reads, pace)
        print(
            f"{label:>22}: median {statistics.median(times) * 1000:.1f} ms, "
            f"p95 {sorted(times)[int(len(times) * 0.95) - 1] * 1000:.1f} ms over {len(times)} reads"
        )


if __name__ == "__main__":
    main()
