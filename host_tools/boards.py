# The board files in boards/: load one by name, list them, validate them all (JSON Schema plus
# the checks a schema cannot express: file name, flash offset for the chip, usable pins).
import json
from pathlib import Path

from host_tools import paths
from host_tools.errors import UserError

SCHEMA_FILE = "schema.json"

# GPIOs a board file may route to the sensor or the LED, per chip family. On the ESP32,
# GPIO6-11 drive the flash chip and GPIO34-39 are input-only (no open-drain output for I2C).
MAX_GPIO = {"esp32": 39, "esp32s2": 46, "esp32s3": 48, "esp32c2": 20, "esp32c3": 21,
            "esp32c5": 28, "esp32c6": 30, "esp32h2": 27, "esp32p4": 54}
UNUSABLE = {"esp32": set(range(6, 12)) | set(range(34, 40))}
GENERIC_BUILD_SUFFIX = {"esp32": "", "esp32s2": "_S2", "esp32s3": "_S3", "esp32c2": "_C2",
                        "esp32c3": "_C3", "esp32c5": "_C5", "esp32c6": "_C6", "esp32h2": "_H2",
                        "esp32p4": "_P4"}
# The GC heap MicroPython's ESP32 port starts with (MICROPY_GC_INITIAL_HEAP_SIZE in
# ports/esp32/mpconfigport.h, without PSRAM), in KB. The port grows it by further areas "so
# they can grow the heap once (double it) and still have enough internal RAM to start WiFi
# and make a HTTPS request"; a board's budget leaves HEAP_MARGIN_KB of that doubled heap
# unbudgeted, as the 96 KB of an ESP32 (of about 112 KB) do. docs/heap.md has the why.
FIRST_AREA_KB = {"esp32": 56, "esp32s2": 36, "esp32c2": 36}
FIRST_AREA_KB_OTHER = 64
HEAP_MARGIN_KB = 16


def _folder(folder):
    return Path(folder) if folder is not None else paths.BOARDS


def list_boards(folder=None):
    """Names of the board files (sorted), without the schema."""
    return sorted(p.stem for p in _folder(folder).glob("*.json") if p.name != SCHEMA_FILE)


def load_board(name, folder=None):
    """The board dict for `name`; UserError naming the known boards when there is none."""
    path = _folder(folder) / (str(name) + ".json")
    known = list_boards(folder)
    if name not in known or not path.is_file():
        raise UserError("unknown board %r" % name,
                        "known boards: %s (see `laterne boards`)" % ", ".join(known))
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise UserError("board file %s is not valid JSON: %s" % (path, e),
                        "run `laterne boards --check`")


def bootloader_offset(chip):
    """Where the first image goes for `chip`, from esptool's own chip definitions."""
    from esptool.targets import CHIP_DEFS
    return CHIP_DEFS[chip].BOOTLOADER_FLASH_OFFSET


def _schema_errors(board, schema):
    try:
        import jsonschema
    except ImportError:
        raise UserError("the board schema check needs the jsonschema package",
                        "run `make setup` (installs the test extras)")
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(board), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.path) or "(top level)"
        out.append("%s: %s" % (where, err.message))
    return out


def semantic_errors(board, stem):
    """Checks beyond the schema, on a board that passed it."""
    out = []
    if board["name"] != stem:
        out.append("name: %r does not match the file name %r" % (board["name"], stem + ".json"))
    chip = board["chip"]
    want = bootloader_offset(chip)
    if board["flash_offset"] != want:
        out.append("flash_offset: %#x is wrong for %s, which boots from %#x"
                   % (board["flash_offset"], chip, want))
    build = board["micropython_build"]
    if build.startswith("ESP32_GENERIC") and build != "ESP32_GENERIC" + GENERIC_BUILD_SUFFIX[chip]:
        out.append("micropython_build: %s is not the generic build for %s (expected %s)"
                   % (build, chip, "ESP32_GENERIC" + GENERIC_BUILD_SUFFIX[chip]))
    heap = board["gc_heap"]
    first = FIRST_AREA_KB.get(chip, FIRST_AREA_KB_OTHER)
    if heap["first_area_kb"] != first:
        out.append("gc_heap.first_area_kb: %d is not the %d KB MicroPython's %s port starts "
                   "with" % (heap["first_area_kb"], first, chip))
    top = 2 * first - HEAP_MARGIN_KB
    if not first <= heap["budget_kb"] <= top:
        out.append("gc_heap.budget_kb: %d is outside %d..%d: the %s port grows its %d KB "
                   "heap once, and %d KB of that stay unbudgeted" % (
                       heap["budget_kb"], first, top, chip, first, HEAP_MARGIN_KB))
    pins = {"i2c.sda": board["i2c"]["sda"], "i2c.scl": board["i2c"]["scl"]}
    if board["led"]:
        pins["led.pin"] = board["led"]["pin"]
    seen = {}
    for key, pin in pins.items():
        if pin > MAX_GPIO.get(chip, 48):
            out.append("%s: GPIO%d does not exist on %s" % (key, pin, chip))
        elif pin in UNUSABLE.get(chip, ()):
            out.append("%s: GPIO%d cannot be used on %s (flash or input-only pin)"
                       % (key, pin, chip))
        if pin in seen:
            out.append("%s: GPIO%d is already used by %s" % (key, pin, seen[pin]))
        seen[pin] = key
    return out


def validate_all(folder=None):
    """Every problem in every board file, as 'file: key: reason' strings (empty when all good)."""
    folder = _folder(folder)
    try:
        schema = json.loads((folder / SCHEMA_FILE).read_text())
    except (OSError, ValueError) as e:
        return ["%s: cannot read the schema: %s" % (SCHEMA_FILE, e)]
    errors = []
    names = list_boards(folder)
    if not names:
        errors.append("%s: no board files" % folder)
    for stem in names:
        fname = stem + ".json"
        try:
            board = json.loads((folder / fname).read_text())
        except (OSError, ValueError) as e:
            errors.append("%s: not valid JSON: %s" % (fname, e))
            continue
        problems = _schema_errors(board, schema)
        if not problems:
            problems = semantic_errors(board, stem)
        errors.extend("%s: %s" % (fname, p) for p in problems)
    return errors
