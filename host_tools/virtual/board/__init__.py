# The virtual board. Every module here also runs on the MicroPython unix port, where this
# folder is put on the path so that `machine`, `network` and `esp32` resolve to the stand-ins.
