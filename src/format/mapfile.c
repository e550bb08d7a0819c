#include "format/mapfile.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"

gllm_status gllm_map_file(const char *path, const char *what, const void **data, size_t *size) {
    if (!path) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: no path", what);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: cannot open %s", what, path);
    struct stat st;
    if (fstat(fd, &st) || st.st_size <= 0) {
        close(fd);
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: %s is empty or unreadable", what, path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "%s: cannot map %s", what, path);
    *data = map, *size = (size_t)st.st_size;
    return GLLM_OK;
}

void gllm_unmap_file(const void *data, size_t size) {
    if (data) munmap((void *)data, size);
}
