// Laterne's 32-bit unix variant: the ESP32 port's settings where the unix port allows them
// (feature level EXTRA_FEATURES, single-precision floats, NORMAL error reporting, object
// representation A, no FFI/SSL/btree) and a GC heap of the ESP32's shape: a first area of
// 56 KB (env MPY32_FIRST_AREA overrides it, e.g. 64 KB for the C3/S3), grown on demand by
// further areas (py/gc.c split heap, as ports/esp32) until `-X heapsize` bytes are used up.
// No allocation can span two areas, exactly as on the chip.
#include <stddef.h>

#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_FLOAT)
#define MICROPY_OBJ_REPR (MICROPY_OBJ_REPR_A)
#define MICROPY_GC_SPLIT_HEAP (1)
#define MICROPY_GC_SPLIT_HEAP_AUTO (1)

// esp32heap.c: the budget, the first area and the allocator of further areas.
long esp32heap_first_area(long budget);
void *esp32heap_alloc(size_t n);
void esp32heap_free(void *p);
#define MICROPY_GC_FIRST_AREA_SIZE(budget) esp32heap_first_area(budget)
#define MP_PLAT_ALLOC_HEAP(n) esp32heap_alloc(n)
#define MP_PLAT_FREE_HEAP(p) esp32heap_free(p)

#include "variants/mpconfigvariant_common.h"

#undef MICROPY_ERROR_REPORTING
#define MICROPY_ERROR_REPORTING (MICROPY_ERROR_REPORTING_NORMAL)
