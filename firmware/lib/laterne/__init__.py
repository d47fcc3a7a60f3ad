# Laterne firmware core. Modules in this package are pure logic (CPython and MicroPython);
# only laterne.hw touches machine/network/esp32.
VERSION = "0.1.0"
