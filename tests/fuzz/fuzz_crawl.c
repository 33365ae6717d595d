/* fuzz_crawl - libFuzzer target for what the crawl step reads from the
 * network: robots.txt rules and HTML pages. The first byte picks the
 * parser; for robots.txt the last line of the input is a path to check, for
 * HTML the second byte picks a declared charset. Any crash, leak or
 * sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"
#include "robots.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const charsets[] = {NULL,        "utf-8",  "iso-8859-1", "windows-1252",
                                       "shift_jis", "utf-16", "bogus"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    if (data[0] & 1) {
        robots *r = robots_parse(text, len, "sluice-crawl");
        if (!r)
            return 0;
        const char *nl = memchr(text, '\n', len);
        size_t plen = nl ? len - (size_t)(nl + 1 - text) : 0;
        char *path = malloc(plen + 2);
        if (path) {
            path[0] = '/';
            if (plen)
                memcpy(path + 1, nl + 1, plen);
            path[plen + 1] = '\0';
            (void)robots_allowed(r, path);
            free(path);
        }
        robots_free(r);
        return 0;
    }
    html_page page;
    char err[256];
    const char *charset = charsets[data[1] % (sizeof(charsets) / sizeof(*charsets))];
    if (html_extract(text, len, charset, &page, err, sizeof(err)) == 0)
        html_page_free(&page);
    return 0;
}
