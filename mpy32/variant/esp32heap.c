// The ESP32's GC heap shape on the unix port. ports/esp32 starts MicroPython with one area of
// MICROPY_GC_INITIAL_HEAP_SIZE (56 KB on the ESP32) and lets py/gc.c add areas while the
// IDF heap has room (gc_get_max_new_split() is its largest free block). Here the room is the
// board's budget (`-X heapsize`) minus what the GC already holds.
#include <stdlib.h>

#include "py/gc.h"
#include "py/misc.h"

#define DEFAULT_FIRST_AREA (56 * 1024)
#define HEADER MICROPY_BYTES_PER_GC_BLOCK

static long budget;
static long held;   // bytes of every area, the first included

long esp32heap_first_area(long total) {
    long first = DEFAULT_FIRST_AREA;
    const char *env = getenv("MPY32_FIRST_AREA");
    if (env != NULL && atol(env) > 0) {
        first = atol(env);
    }
    budget = total;
    held = first < total ? first : total;
    return held;
}

size_t gc_get_max_new_split(void) {
    return budget > held ? (size_t)(budget - held) : 0;
}

void *esp32heap_alloc(size_t n) {
    // py/gc.c keeps no size for the areas it frees, so the size travels in a header in front
    // of the area (one GC block long, so the area stays block-aligned)
    byte *p = malloc(n + HEADER);
    if (p == NULL) {
        return NULL;
    }
    *(size_t *)p = n;
    held += (long)n;
    return p + HEADER;
}

void esp32heap_free(void *area) {
    byte *p = (byte *)area - HEADER;
    held -= (long)*(size_t *)p;
    free(p);
}
