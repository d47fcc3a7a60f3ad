# Laterne's 32-bit unix variant (see mpconfigvariant.h). The vendored source subset has no
# git submodules, so everything that needs one is off. Frozen: the virtual board (../manifest.py).
FROZEN_MANIFEST = $(VARIANT_DIR)/../manifest.py
MICROPY_FORCE_32BIT = 1
MICROPY_PY_FFI = 0
MICROPY_PY_BTREE = 0
MICROPY_PY_SSL = 0
MICROPY_SSL_AXTLS = 0
MICROPY_SSL_MBEDTLS = 0
# py/gc.c's split-heap growth does arithmetic on void *, which the unix port's -Werror refuses
CFLAGS_EXTRA += -Wno-pointer-arith
