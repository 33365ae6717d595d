#include "html.h"

#include <ctype.h>
#include <errno.h>
#include <gumbo.h>
#include <iconv.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Finds a charset named by a <meta> tag near the top of the page. */
static int sniff_charset(const char *html, size_t len, char *out, size_t size) {
    size_t n = len < 1024 ? len : 1024;
    for (size_t i = 0; i + 8 < n; i++) {
        if (strncasecmp(html + i, "charset=", 8) != 0)
            continue;
        size_t j = i + 8, k = 0;
        if (j < n && (html[j] == '"' || html[j] == '\''))
            j++;
        while (j < n && k + 1 < size &&
               (isalnum((unsigned char)html[j]) || html[j] == '-' || html[j] == '_'))
            out[k++] = html[j++];
        out[k] = '\0';
        return k > 0;
    }
    return 0;
}

static int is_utf8_name(const char *charset) {
    return strcasecmp(charset, "utf-8") == 0 || strcasecmp(charset, "utf8") == 0 ||
           strcasecmp(charset, "us-ascii") == 0;
}

/* Converts to UTF-8 with iconv; *out is malloc'ed. */
static int to_utf8(const char *in, size_t len, const char *charset, char **out, size_t *out_len,
                   char *err, size_t err_size) {
    iconv_t cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1) {
        snprintf(err, err_size, "the page's charset '%s' is not one this system converts", charset);
        return -EINVAL;
    }
    size_t cap = len * 4 + 16;
    char *buf = malloc(cap);
    if (!buf) {
        iconv_close(cd);
        return -ENOMEM;
    }
    char *src = (char *)in, *dst = buf;
    size_t left = len, room = cap - 1;
    while (left > 0) {
        if (iconv(cd, &src, &left, &dst, &room) != (size_t)-1)
            break;
        if (errno == E2BIG)
            break; /* cannot happen: 4 bytes per input byte is enough */
        /* An invalid or truncated sequence: U+FFFD for its first byte. */
        if (room < 3)
            break;
        memcpy(dst, "\xEF\xBF\xBD", 3);
        dst += 3;
        room -= 3;
        src++;
        left--;
    }
    iconv_close(cd);
    *dst = '\0';
    *out = buf;
    *out_len = (size_t)(dst - buf);
    return 0;
}

typedef struct writer {
    FILE *f;
    int brk;   /* a break is due before the next text: 1 line, 2 paragraph */
    int space; /* a space is due before the next text */
    int empty; /* nothing written yet */
    int pre;   /* inside <pre>: keep spacing */
} writer;

static void text_out(writer *w, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!w->pre && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f')) {
            w->space = 1;
            continue;
        }
        if (!w->empty && w->brk)
            fputs(w->brk == 2 ? "\n\n" : "\n", w->f);
        else if (!w->empty && w->space)
            fputc(' ', w->f);
        w->brk = w->space = 0;
        w->empty = 0;
        fputc(c, w->f);
    }
}

static void block_break(writer *w, int kind) {
    if (kind > w->brk)
        w->brk = kind;
    w->space = 0;
}

static int skipped(GumboTag tag) {
    switch (tag) {
    case GUMBO_TAG_SCRIPT:
    case GUMBO_TAG_STYLE:
    case GUMBO_TAG_NOSCRIPT:
    case GUMBO_TAG_TEMPLATE:
    case GUMBO_TAG_NAV:
    case GUMBO_TAG_HEADER:
    case GUMBO_TAG_FOOTER:
    case GUMBO_TAG_ASIDE:
    case GUMBO_TAG_FORM:
    case GUMBO_TAG_IFRAME:
    case GUMBO_TAG_SVG:
    case GUMBO_TAG_BUTTON:
    case GUMBO_TAG_SELECT:
    case GUMBO_TAG_HEAD:
    case GUMBO_TAG_OBJECT:
    case GUMBO_TAG_CANVAS:
    case GUMBO_TAG_MENU:
        return 1;
    default:
        return 0;
    }
}

static int is_block(GumboTag tag) {
    switch (tag) {
    case GUMBO_TAG_P:
    case GUMBO_TAG_DIV:
    case GUMBO_TAG_H1:
    case GUMBO_TAG_H2:
    case GUMBO_TAG_H3:
    case GUMBO_TAG_H4:
    case GUMBO_TAG_H5:
    case GUMBO_TAG_H6:
    case GUMBO_TAG_UL:
    case GUMBO_TAG_OL:
    case GUMBO_TAG_DL:
    case GUMBO_TAG_DT:
    case GUMBO_TAG_DD:
    case GUMBO_TAG_PRE:
    case GUMBO_TAG_BLOCKQUOTE:
    case GUMBO_TAG_TABLE:
    case GUMBO_TAG_TR:
    case GUMBO_TAG_SECTION:
    case GUMBO_TAG_ARTICLE:
    case GUMBO_TAG_MAIN:
    case GUMBO_TAG_FIGURE:
    case GUMBO_TAG_FIGCAPTION:
    case GUMBO_TAG_HR:
    case GUMBO_TAG_ADDRESS:
    case GUMBO_TAG_DETAILS:
    case GUMBO_TAG_SUMMARY:
        return 1;
    default:
        return 0;
    }
}

/* ---- bounding the parse ------------------------------------------------- *
 *
 * gumbo's tree construction is quadratic in the depth of the open-element
 * stack and in the length of the list of active formatting elements (every
 * new element checks scopes and re-opens the formatting elements a block
 * closed), so 100,000 nested <div>s take tens of seconds and misnested <b>s
 * hundreds of megabytes. Browsers bound it (Chromium stops nesting at 512,
 * libxml2 at 256); gumbo has no such option, so the page is first scanned
 * for how deeply its tags nest, and the parse itself runs under a budget of
 * memory and time. Either refusal is "page too complex". */

static const char *const void_tags[] = {"area",   "base",  "br",     "col",  "embed", "hr",
                                        "img",    "input", "keygen", "link", "meta",  "param",
                                        "source", "track", "wbr",    NULL};
/* Their content is text up to their end tag. */
static const char *const raw_text_tags[] = {"iframe", "noembed",  "noframes", "plaintext", "script",
                                            "style",  "textarea", "title",    "xmp",       NULL};
static const char *const formatting_tags[] = {"a",      "b",      "big",  "code", "em",
                                              "font",   "i",      "nobr", "s",    "small",
                                              "strike", "strong", "tt",   "u",    NULL};
/* Start tags that close an open <p> first (HTML's "close a p element"). */
static const char *const closes_p[] = {
    "address", "article", "aside",    "blockquote", "center", "details", "dialog", "dir",
    "div",     "dl",      "fieldset", "figcaption", "figure", "footer",  "form",   "h1",
    "h2",      "h3",      "h4",       "h5",         "h6",     "header",  "hgroup", "hr",
    "listing", "main",    "menu",     "nav",        "ol",     "p",       "pre",    "section",
    "summary", "table",   "ul",       NULL};
/* The elements a search for an open element stops at: HTML's scopes. */
static const char *const default_scope[] = {"applet", "caption", "html",     "marquee", "object",
                                            "table",  "td",      "template", "th",      NULL};
static const char *const button_scope[] = {"applet",   "button", "caption", "html",
                                           "marquee",  "object", "table",   "td",
                                           "template", "th",     NULL};
static const char *const list_item_scope[] = {"applet",   "caption", "html",  "marquee",
                                              "object",   "ol",      "table", "td",
                                              "template", "th",      "ul",    NULL};
static const char *const table_scope[] = {"html", "table", "template", NULL};

static int one_of(const char *name, const char *const *list) {
    for (; *list; list++)
        if (strcmp(name, *list) == 0)
            return 1;
    return 0;
}

/* Reads a tag name at s (lower-cased, truncated to size - 1) and returns
 * its length in the page. */
static size_t tag_name(const char *s, const char *end, char *name, size_t size) {
    size_t n = 0, k = 0;
    while (s + n < end && !isspace((unsigned char)s[n]) && s[n] != '/' && s[n] != '>') {
        if (k + 1 < size)
            name[k++] = (char)tolower((unsigned char)s[n]);
        n++;
    }
    name[k] = '\0';
    return n;
}

/* The end of the tag whose attributes begin at s (just past its '>'), and
 * whether it ended in "/>". */
static const char *tag_end(const char *s, const char *end, int *self_closing) {
    char quote = 0;
    *self_closing = 0;
    for (; s < end; s++) {
        if (quote) {
            if (*s == quote)
                quote = 0;
        } else if (*s == '"' || *s == '\'') {
            quote = *s;
        } else if (*s == '>') {
            *self_closing = s[-1] == '/';
            return s + 1;
        }
    }
    return end;
}

static const char *find_ci(const char *s, const char *end, const char *needle) {
    size_t n = strlen(needle);
    for (; s + n <= end; s++)
        if (strncasecmp(s, needle, n) == 0)
            return s;
    return end;
}

/* A model of gumbo's two structures that grow: the stack of open elements
 * and the list of active formatting elements, each at most limit + 1 long
 * (the scan stops past limit). */
enum { NAME = 16 };

typedef struct active_element {
    uint64_t key; /* the tag and its attributes: equal keys are the same element */
    char name[NAME];
} active_element;

typedef struct scan {
    char (*stack)[NAME];
    size_t depth, limit;
    active_element *active;
    size_t n_active;
    size_t foreign; /* open <svg>s and <math>s */
} scan;

static void pop_to(scan *sc, size_t k) {
    for (size_t j = k; j < sc->depth; j++)
        sc->foreign -= strcmp(sc->stack[j], "svg") == 0 || strcmp(sc->stack[j], "math") == 0;
    sc->depth = k;
}

/* Pops the nearest open element named one of names and everything above
 * it, unless an element of scope comes first (scope NULL: none). */
static void close_open(scan *sc, const char *const *names, const char *const *scope) {
    for (size_t k = sc->depth; k > 0; k--) {
        if (one_of(sc->stack[k - 1], names)) {
            pop_to(sc, k - 1);
            return;
        }
        if (scope && one_of(sc->stack[k - 1], scope))
            return;
    }
}

static void active_remove(scan *sc, size_t i) {
    memmove(sc->active + i, sc->active + i + 1, (sc->n_active - i - 1) * sizeof(*sc->active));
    sc->n_active--;
}

/* The last active formatting element named name, or SIZE_MAX. */
static size_t active_find(const scan *sc, const char *name) {
    for (size_t i = sc->n_active; i > 0; i--)
        if (strcmp(sc->active[i - 1].name, name) == 0)
            return i - 1;
    return SIZE_MAX;
}

/* A formatting element starts (attrs: its attribute text): an open <a> or
 * <nobr> is closed first, and as HTML's "Noah's Ark" clause says, a fourth
 * identical element pushes the earliest of the three out of the list. */
static void formatting_start(scan *sc, const char *name, const char *attrs, size_t attrs_len) {
    uint64_t key = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = name; *p; p++)
        key = (key ^ (unsigned char)*p) * 1099511628211ULL;
    for (size_t i = 0; i < attrs_len; i++)
        key = (key ^ (unsigned char)attrs[i]) * 1099511628211ULL;
    if (strcmp(name, "a") == 0 || strcmp(name, "nobr") == 0) {
        size_t i = active_find(sc, name);
        if (i != SIZE_MAX)
            active_remove(sc, i);
        const char *const names[] = {name, NULL};
        close_open(sc, names, strcmp(name, "a") == 0 ? NULL : default_scope);
    }
    size_t same = 0, first = SIZE_MAX;
    for (size_t i = 0; i < sc->n_active; i++)
        if (sc->active[i].key == key && same++ == 0)
            first = i;
    if (same >= 3)
        active_remove(sc, first);
    active_element *e = &sc->active[sc->n_active++];
    e->key = key;
    memcpy(e->name, name, NAME);
}

static void start_tag(scan *sc, const char *name, const char *attrs, size_t attrs_len,
                      int self_closing) {
    if (one_of(name, void_tags) || strcmp(name, "html") == 0 || strcmp(name, "head") == 0 ||
        strcmp(name, "body") == 0 || (self_closing && sc->foreign)) /* "/>" only in SVG, MathML */
        return;
    static const char *const p[] = {"p", NULL}, *const li[] = {"li", NULL},
                             *const dd_dt[] = {"dd", "dt", NULL}, *const tr[] = {"tr", NULL},
                             *const cell[] = {"td", "th", NULL}, *const option[] = {"option", NULL},
                             *const options[] = {"option", "optgroup", NULL};
    if (one_of(name, closes_p))
        close_open(sc, p, button_scope);
    if (strcmp(name, "li") == 0)
        close_open(sc, li, list_item_scope);
    else if (strcmp(name, "dd") == 0 || strcmp(name, "dt") == 0)
        close_open(sc, dd_dt, default_scope);
    else if (strcmp(name, "tr") == 0)
        close_open(sc, tr, table_scope);
    else if (strcmp(name, "td") == 0 || strcmp(name, "th") == 0)
        close_open(sc, cell, table_scope);
    else if (strcmp(name, "option") == 0)
        close_open(sc, option, NULL);
    else if (strcmp(name, "optgroup") == 0)
        close_open(sc, options, NULL);
    if (one_of(name, formatting_tags))
        formatting_start(sc, name, attrs, attrs_len);
    sc->foreign += strcmp(name, "svg") == 0 || strcmp(name, "math") == 0;
    memcpy(sc->stack[sc->depth++], name, NAME);
}

static void end_tag(scan *sc, const char *name) {
    if (one_of(name, formatting_tags)) {
        size_t i = active_find(sc, name);
        if (i != SIZE_MAX)
            active_remove(sc, i);
    }
    const char *const names[] = {name, NULL};
    close_open(sc, names, NULL);
}

size_t html_nesting_depth(const char *html, size_t len, size_t limit) {
    scan sc = {.limit = limit};
    sc.stack = malloc((limit + 1) * sizeof(*sc.stack));
    sc.active = malloc((limit + 1) * sizeof(*sc.active));
    if (!sc.stack || !sc.active) {
        free(sc.stack);
        free(sc.active);
        return SIZE_MAX;
    }
    const char *s = html, *end = html + len;
    size_t deepest = 0;
    while (deepest <= limit && (s = memchr(s, '<', (size_t)(end - s)))) {
        s++;
        char name[NAME];
        int self_closing;
        if (s < end && *s == '!') {
            s = end - s >= 3 && memcmp(s, "!--", 3) == 0 ? find_ci(s + 3, end, "-->")
                                                         : memchr(s, '>', (size_t)(end - s));
            if (!s)
                break;
        } else if (s < end && *s == '/') {
            s += 1 + tag_name(s + 1, end, name, sizeof(name));
            s = tag_end(s, end, &self_closing);
            end_tag(&sc, name);
        } else if (s < end && isalpha((unsigned char)*s)) {
            s += tag_name(s, end, name, sizeof(name));
            const char *attrs = s;
            s = tag_end(s, end, &self_closing);
            if (one_of(name, raw_text_tags)) {
                char close[NAME + 2];
                snprintf(close, sizeof(close), "</%s", name);
                s = find_ci(s, end, close);
                continue;
            }
            start_tag(&sc, name, attrs, (size_t)(s - attrs), self_closing);
            size_t now = sc.depth > sc.n_active ? sc.depth : sc.n_active;
            if (now > deepest)
                deepest = now;
        }
    }
    free(sc.stack);
    free(sc.active);
    return deepest;
}

/* The parser's memory: every block is on a list, so that a parse stopped
 * half way (by a longjmp out of the allocator) is freed whole. */
typedef union block {
    struct {
        union block *prev, *next;
        size_t size;
    } h;
    max_align_t align;
} block;

typedef struct budget {
    jmp_buf escape;
    block list; /* the sentinel of a circular list */
    size_t used, limit;
    unsigned long calls;
    struct timespec deadline;
    int why; /* what stopped the parse: 1 memory, 2 time, 3 malloc failed */
} budget;

static int past(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec > deadline->tv_nsec);
}

static void *budget_alloc(void *ud, size_t size) {
    budget *b = ud;
    if (size > b->limit - b->used) {
        b->why = 1;
        longjmp(b->escape, 1);
    }
    /* gumbo allocates for every node and attribute: a clock read every
     * thousand allocations bounds a runaway parse at little cost. */
    if ((++b->calls & 1023) == 0 && past(&b->deadline)) {
        b->why = 2;
        longjmp(b->escape, 1);
    }
    block *k = malloc(sizeof(block) + size);
    if (!k) {
        b->why = 3;
        longjmp(b->escape, 1);
    }
    k->h.size = size;
    k->h.next = b->list.h.next;
    k->h.prev = &b->list;
    b->list.h.next->h.prev = k;
    b->list.h.next = k;
    b->used += size;
    return k + 1;
}

static void budget_free(void *ud, void *p) {
    if (!p)
        return;
    budget *b = ud;
    block *k = (block *)p - 1;
    k->h.prev->h.next = k->h.next;
    k->h.next->h.prev = k->h.prev;
    b->used -= k->h.size;
    free(k);
}

static void budget_free_all(budget *b) {
    while (b->list.h.next != &b->list)
        budget_free(b, b->list.h.next + 1);
}

/* gumbo_parse_with_options under b; NULL when the budget stopped it (its
 * memory is then freed by budget_free_all). */
static GumboOutput *parse_within(budget *b, const GumboOptions *options, const char *html,
                                 size_t len) {
    if (setjmp(b->escape))
        return NULL;
    return gumbo_parse_with_options(options, html, len);
}

/* Depth-first, with an explicit stack: hostile pages nest deeply. */
static void render(writer *w, const GumboNode *root) {
    typedef struct frame {
        const GumboNode *node;
        unsigned next; /* the next child to visit */
    } frame;
    size_t cap = 64, depth = 0;
    frame *stack = malloc(cap * sizeof(*stack));
    if (!stack)
        return;
    stack[depth++] = (frame){root, 0};
    while (depth > 0) {
        frame *f = &stack[depth - 1];
        const GumboNode *n = f->node;
        if (n->type == GUMBO_NODE_TEXT || n->type == GUMBO_NODE_CDATA ||
            n->type == GUMBO_NODE_WHITESPACE) {
            text_out(w, n->v.text.text);
            depth--;
            continue;
        }
        if (n->type != GUMBO_NODE_ELEMENT && n->type != GUMBO_NODE_TEMPLATE) {
            depth--;
            continue;
        }
        GumboTag tag = n->v.element.tag;
        if (f->next == 0) { /* entering */
            if (skipped(tag) && n != root) {
                depth--;
                continue;
            }
            if (tag == GUMBO_TAG_BR) {
                block_break(w, 1);
            } else if (tag == GUMBO_TAG_LI) {
                block_break(w, 1);
                text_out(w, "*");
                w->space = 1;
            } else if (is_block(tag)) {
                block_break(w, 2);
            }
            if (tag == GUMBO_TAG_PRE)
                w->pre++;
        }
        const GumboVector *kids = &n->v.element.children;
        if (f->next < kids->length) {
            const GumboNode *child = kids->data[f->next++];
            if (depth == cap) {
                frame *grown = realloc(stack, cap * 2 * sizeof(*stack));
                if (!grown)
                    break;
                stack = grown;
                cap *= 2;
            }
            stack[depth++] = (frame){child, 0};
            continue;
        }
        if (tag == GUMBO_TAG_PRE)
            w->pre--;
        if (is_block(tag))
            block_break(w, 2);
        depth--;
    }
    free(stack);
}

/* The first element with tag in document order, root included; walked
 * through the parent links rather than recursively. */
static const GumboNode *find_tag(const GumboNode *root, GumboTag tag) {
    const GumboNode *n = root;
    for (;;) {
        if (n->type == GUMBO_NODE_ELEMENT) {
            if (n->v.element.tag == tag)
                return n;
            if (n->v.element.children.length) {
                n = n->v.element.children.data[0];
                continue;
            }
        }
        /* the next sibling of n or of its nearest ancestor that has one */
        for (;;) {
            if (n == root)
                return NULL;
            const GumboNode *parent = n->parent;
            unsigned next = n->index_within_parent + 1;
            if (next < parent->v.element.children.length) {
                n = parent->v.element.children.data[next];
                break;
            }
            n = parent;
        }
    }
}

/* The text of a node with spaces folded; malloc'ed. */
static char *node_text(const GumboNode *node) {
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    if (!f)
        return NULL;
    writer w = {f, 0, 0, 1, 0};
    if (node)
        render(&w, node);
    if (fclose(f) != 0)
        return NULL;
    return s;
}

static char *copy_or_null(const char *s) { return s ? strdup(s) : NULL; }

static const char *meta_description(const GumboNode *head) {
    if (!head)
        return NULL;
    const GumboVector *kids = &head->v.element.children;
    for (unsigned i = 0; i < kids->length; i++) {
        const GumboNode *k = kids->data[i];
        if (k->type != GUMBO_NODE_ELEMENT || k->v.element.tag != GUMBO_TAG_META)
            continue;
        const GumboAttribute *name = gumbo_get_attribute(&k->v.element.attributes, "name");
        const GumboAttribute *content = gumbo_get_attribute(&k->v.element.attributes, "content");
        if (name && content && strcasecmp(name->value, "description") == 0)
            return content->value;
    }
    return NULL;
}

int html_extract(const char *html, size_t len, const char *charset, html_page *page, char *err,
                 size_t err_size) {
    memset(page, 0, sizeof(*page));
    char sniffed[64];
    if (!charset && sniff_charset(html, len, sniffed, sizeof(sniffed)))
        charset = sniffed;
    char *converted = NULL;
    if (charset && !is_utf8_name(charset)) {
        size_t clen;
        int rc = to_utf8(html, len, charset, &converted, &clen, err, err_size);
        if (rc)
            return rc;
        html = converted;
        len = clen;
    }
    size_t depth = html_nesting_depth(html, len, HTML_MAX_DEPTH);
    if (depth > HTML_MAX_DEPTH) {
        free(converted);
        snprintf(err, err_size, "page too complex: its elements nest more than %d deep",
                 HTML_MAX_DEPTH);
        return -E2BIG;
    }
    budget *b = calloc(1, sizeof(*b));
    if (!b) {
        free(converted);
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    b->list.h.next = b->list.h.prev = &b->list;
    b->limit = len > (SIZE_MAX - HTML_MIN_BUDGET) / HTML_BYTES_PER_BYTE
                   ? SIZE_MAX
                   : HTML_MIN_BUDGET + len * HTML_BYTES_PER_BYTE;
    clock_gettime(CLOCK_MONOTONIC, &b->deadline);
    b->deadline.tv_sec += HTML_MAX_SECONDS;
    GumboOptions options = kGumboDefaultOptions;
    options.max_errors = 0; /* parse errors are normal on the web; do not keep them */
    options.allocator = budget_alloc;
    options.deallocator = budget_free;
    options.userdata = b;
    GumboOutput *out = parse_within(b, &options, html, len);
    if (!out) {
        budget_free_all(b);
        free(converted);
        if (b->why == 1)
            snprintf(err, err_size, "page too complex: parsing it needed more than %zu MB",
                     b->limit >> 20);
        else if (b->why == 2)
            snprintf(err, err_size, "page too complex: parsing it took more than %d s",
                     HTML_MAX_SECONDS);
        else
            snprintf(err, err_size, "out of memory parsing the page");
        int rc = b->why == 3 ? -ENOMEM : -E2BIG;
        free(b);
        return rc;
    }
    const GumboNode *root = out->root;
    const GumboNode *head = find_tag(root, GUMBO_TAG_HEAD);
    const GumboNode *title = head ? find_tag(head, GUMBO_TAG_TITLE) : NULL;
    const GumboNode *body = find_tag(root, GUMBO_TAG_BODY);
    const GumboNode *main = body ? find_tag(body, GUMBO_TAG_ARTICLE) : NULL;
    if (!main && body)
        main = find_tag(body, GUMBO_TAG_MAIN);
    if (!main)
        main = body ? body : root;
    page->title = node_text(title);
    if (page->title && !*page->title && body) {
        free(page->title);
        page->title = node_text(find_tag(body, GUMBO_TAG_H1));
    }
    const GumboAttribute *lang = root->type == GUMBO_NODE_ELEMENT
                                     ? gumbo_get_attribute(&root->v.element.attributes, "lang")
                                     : NULL;
    page->language = copy_or_null(lang && *lang->value ? lang->value : NULL);
    page->description = copy_or_null(meta_description(head));
    page->text = node_text(main);
    gumbo_destroy_output(&options, out);
    free(b);
    free(converted);
    if (!page->title || !page->text) {
        html_page_free(page);
        snprintf(err, err_size, "out of memory rendering the page");
        return -ENOMEM;
    }
    return 0;
}

void html_page_free(html_page *page) {
    free(page->title);
    free(page->description);
    free(page->language);
    free(page->text);
    memset(page, 0, sizeof(*page));
}
