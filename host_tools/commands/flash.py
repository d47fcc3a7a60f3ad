# `laterne flash`: write a MicroPython image to one board (host_tools/flash/flasher.py does it).
from host_tools import boards


def add_arguments(parser):
    parser.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    parser.add_argument("--board", required=True,
                        help="board name from boards/ (%s)" % ", ".join(boards.list_boards()))
    parser.add_argument("--firmware", required=True, metavar="FILE.bin",
                        help="the MicroPython .bin for the board's build (a local file)")
    parser.add_argument("--erase", action="store_true",
                        help="erase the whole flash first, also on a board that already runs MicroPython "
                             "(a first install is detected and erased anyway)")
    parser.add_argument("--baud", type=int, default=460800,
                        help="baud rate for writing (default 460800; falls back to 115200)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    from host_tools.flash.flasher import flash_board  # esptool is slow to import: only when used
    result = flash_board(args.port, boards.load_board(args.board), args.firmware,
                         erase=args.erase, baud=args.baud, progress=not args.no_progress)
    print("PASS: flashed %s (%s, MAC %s) at %#x, verified" % (
        result["board"], result["chip"], result["mac"], result["offset"]))
    return 0
