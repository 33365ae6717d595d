/* html.h - a web page turned into an article: its title, description,
 * language and main text, through gumbo's HTML5 parser. The main text is
 * the page's <article>, else its <main>, else its <body>, without scripts,
 * styles, navigation, headers, footers, asides and forms; blocks become
 * paragraphs separated by a blank line, list items lines beginning "* ",
 * and <pre> keeps its spacing. */
#ifndef SLUICE_CRAWL_HTML_H
#define SLUICE_CRAWL_HTML_H

#include <stddef.h>

typedef struct html_page {
    char *title;       /* <title>, else the first <h1>; "" when neither */
    char *description; /* <meta name="description">, or NULL */
    char *language;    /* <html lang>, or NULL */
    char *text;        /* the main text, UTF-8 */
} html_page;

/* Parses len bytes of HTML. charset is the Content-Type header's (NULL if
 * it gave none); otherwise a <meta> charset in the first 1,024 bytes is
 * used, else UTF-8, and other charsets are converted with iconv. Returns 0
 * and fills page (free with html_page_free), or a negative code with a
 * message in err. */
int html_extract(const char *html, size_t len, const char *charset, html_page *page, char *err,
                 size_t err_size);
void html_page_free(html_page *page);

/* The bounds on one page's parse; past any of them html_extract fails with
 * -E2BIG and "page too complex: ..." (the crawl goes on with other pages).
 * Elements nested deeper than Chromium's 512 are refused before parsing;
 * the parser may then use HTML_MIN_BUDGET plus HTML_BYTES_PER_BYTE per
 * byte of the page (gumbo typically needs 10 to 20) for HTML_MAX_SECONDS. */
#define HTML_MAX_DEPTH 512
#define HTML_MIN_BUDGET ((size_t)32 << 20)
#define HTML_BYTES_PER_BYTE 40
#define HTML_MAX_SECONDS 20

/* An upper estimate of how deep gumbo's tree construction will nest len
 * bytes of html: the larger of its stack of open elements and its list of
 * active formatting elements, each modelled on HTML's rules (an end tag
 * closes its nearest open namesake and all above it; <p>, <li>, <dd>, <tr>,
 * <td> and <option> close an open one of their kind; a block closes an
 * open <p>; an <a> closes an open <a>; a fourth identical formatting
 * element drops the earliest). Counting stops past limit (a result > limit
 * says only that). SIZE_MAX when out of memory. */
size_t html_nesting_depth(const char *html, size_t len, size_t limit);

#endif
