# Writing MicroPython images with esptool's API, image checks and esptool's log.
