#include "html.h"

#include <ctype.h>
#include <errno.h>
#include <gumbo.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
        snprintf(err, err_size, "the page's charset '%s' is not one this system converts",
                 charset);
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
    case GUMBO_TAG_SCRIPT: case GUMBO_TAG_STYLE: case GUMBO_TAG_NOSCRIPT:
    case GUMBO_TAG_TEMPLATE: case GUMBO_TAG_NAV: case GUMBO_TAG_HEADER:
    case GUMBO_TAG_FOOTER: case GUMBO_TAG_ASIDE: case GUMBO_TAG_FORM:
    case GUMBO_TAG_IFRAME: case GUMBO_TAG_SVG: case GUMBO_TAG_BUTTON:
    case GUMBO_TAG_SELECT: case GUMBO_TAG_HEAD: case GUMBO_TAG_OBJECT:
    case GUMBO_TAG_CANVAS: case GUMBO_TAG_MENU:
        return 1;
    default:
        return 0;
    }
}

static int is_block(GumboTag tag) {
    switch (tag) {
    case GUMBO_TAG_P: case GUMBO_TAG_DIV: case GUMBO_TAG_H1: case GUMBO_TAG_H2:
    case GUMBO_TAG_H3: case GUMBO_TAG_H4: case GUMBO_TAG_H5: case GUMBO_TAG_H6:
    case GUMBO_TAG_UL: case GUMBO_TAG_OL: case GUMBO_TAG_DL: case GUMBO_TAG_DT:
    case GUMBO_TAG_DD: case GUMBO_TAG_PRE: case GUMBO_TAG_BLOCKQUOTE:
    case GUMBO_TAG_TABLE: case GUMBO_TAG_TR: case GUMBO_TAG_SECTION:
    case GUMBO_TAG_ARTICLE: case GUMBO_TAG_MAIN: case GUMBO_TAG_FIGURE:
    case GUMBO_TAG_FIGCAPTION: case GUMBO_TAG_HR: case GUMBO_TAG_ADDRESS:
    case GUMBO_TAG_DETAILS: case GUMBO_TAG_SUMMARY:
        return 1;
    default:
        return 0;
    }
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

static const GumboNode *find_tag(const GumboNode *root, GumboTag tag) {
    if (root->type != GUMBO_NODE_ELEMENT)
        return NULL;
    if (root->v.element.tag == tag)
        return root;
    const GumboVector *kids = &root->v.element.children;
    for (unsigned i = 0; i < kids->length; i++) {
        const GumboNode *hit = find_tag(kids->data[i], tag);
        if (hit)
            return hit;
    }
    return NULL;
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
    GumboOptions options = kGumboDefaultOptions;
    options.max_errors = 0; /* parse errors are normal on the web; do not keep them */
    GumboOutput *out = gumbo_parse_with_options(&options, html, len);
    if (!out) {
        free(converted);
        snprintf(err, err_size, "the HTML parser failed");
        return -ENOMEM;
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
    const GumboAttribute *lang =
        root->type == GUMBO_NODE_ELEMENT ? gumbo_get_attribute(&root->v.element.attributes, "lang")
                                         : NULL;
    page->language = copy_or_null(lang && *lang->value ? lang->value : NULL);
    page->description = copy_or_null(meta_description(head));
    page->text = node_text(main);
    gumbo_destroy_output(&kGumboDefaultOptions, out);
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
