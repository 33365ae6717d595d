/* The crawl step's parts without a network: robots.txt rules, the HTML to
 * text rendering, the dispatch table, and a local git repository. */
#include <bson/bson.h>
#include <errno.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "git.h"
#include "html.h"
#include "robots.h"
#include "web.h"

static robots *parse(const char *text) {
    robots *r = robots_parse(text, strlen(text), "sluice-crawl");
    cr_assert_not_null(r);
    return r;
}

Test(robots, the_most_specific_group_and_the_longest_rule_win) {
    robots *r = parse("User-agent: *\nDisallow: /\n\n"
                      "User-agent: sluice\nDisallow: /private/\nAllow: /private/open\n"
                      "Disallow: /*.pdf$\n");
    cr_expect(robots_allowed(r, "/articles/a.html"));
    cr_expect_not(robots_allowed(r, "/private/x.html"));
    cr_expect(robots_allowed(r, "/private/open/x.html"));
    cr_expect_not(robots_allowed(r, "/files/a.pdf"));
    cr_expect(robots_allowed(r, "/files/a.pdf?x=1"));
    robots_free(r);
}

Test(robots, star_group_comments_case_and_empty_disallow) {
    robots *r = parse("# hello\nUSER-AGENT: BadBot\nDisallow: /\n\nuser-agent: * # all\n"
                      "disallow: /tmp  # not this\r\n");
    cr_expect(robots_allowed(r, "/"));
    cr_expect_not(robots_allowed(r, "/tmp/a"));
    cr_expect_not(robots_allowed(r, "/tmpfile"));
    robots_free(r);
    r = parse("User-agent: *\nDisallow:\n");
    cr_expect(robots_allowed(r, "/anything"));
    robots_free(r);
    r = parse("User-agent: other\nDisallow: /\n");
    cr_expect(robots_allowed(r, "/anything"), "no group names us: everything is allowed");
    robots_free(r);
}

Test(robots, groups_sharing_rules_and_ties_going_to_allow) {
    robots *r = parse("User-agent: a\nUser-agent: *\nDisallow: /x\nAllow: /x\n");
    cr_expect(robots_allowed(r, "/x/y"));
    robots_free(r);
    robots *none = robots_disallow_all(), *all = robots_allow_all();
    cr_expect_not(robots_allowed(none, "/"));
    cr_expect(robots_allowed(all, "/private"));
    robots_free(none);
    robots_free(all);
}

static void extract(const char *html, const char *charset, html_page *p) {
    char err[256];
    cr_assert_eq(html_extract(html, strlen(html), charset, p, err, sizeof(err)), 0, "%s", err);
}

Test(html, main_text_without_scripts_styles_navigation_or_footers) {
    html_page p;
    extract("<!doctype html><html lang=fr><head><title> The  title </title>"
            "<meta name=description content='About it'><style>p{STYLE}</style>"
            "<script>SCRIPT()</script></head><body><header><nav>NAV</nav></header>"
            "<article><h1>Head</h1><p>One <em>two</em>&amp;three&#8217;s.</p>"
            "<ul><li>a</li><li>b</li></ul><pre>x  =  1\n  y</pre><aside>ASIDE</aside>"
            "</article><footer>FOOT</footer></body></html>",
            NULL, &p);
    cr_expect_str_eq(p.title, "The title");
    cr_expect_str_eq(p.description, "About it");
    cr_expect_str_eq(p.language, "fr");
    cr_expect_str_eq(p.text, "Head\n\nOne two&three\xe2\x80\x99s.\n\n* a\n* b\n\nx  =  1\n  y");
    html_page_free(&p);
}

Test(html, body_when_no_article_and_h1_when_no_title) {
    html_page p;
    extract("<html><head><title></title></head><body><h1>Only <b>heading</b></h1>"
            "<div>Text<br>next line</div><script>x</script></body></html>",
            NULL, &p);
    cr_expect_str_eq(p.title, "Only heading");
    cr_expect_null(p.description);
    cr_expect_null(p.language);
    cr_expect_str_eq(p.text, "Only heading\n\nText\nnext line");
    html_page_free(&p);
}

Test(html, latin1_pages_by_header_or_meta_and_broken_utf8) {
    html_page p;
    extract("<html><body><p>caf\xe9 na\xefve</p></body></html>", "ISO-8859-1", &p);
    cr_expect_str_eq(p.text, "caf\xc3\xa9 na\xc3\xafve");
    html_page_free(&p);
    extract("<html><head><meta charset=\"iso-8859-1\"></head><body><p>\xe9t\xe9</p></body></html>",
            NULL, &p);
    cr_expect_str_eq(p.text, "\xc3\xa9t\xc3\xa9");
    html_page_free(&p);
    extract("<p>bad \xff\xfe bytes</p>", NULL, &p);
    cr_expect(bson_utf8_validate(p.text, strlen(p.text), false), "the text is valid UTF-8");
    html_page_free(&p);
    char err[256];
    cr_expect_neq(html_extract("<p>x</p>", 8, "no-such-charset", &p, err, sizeof(err)), 0);
    cr_expect(strstr(err, "no-such-charset"), "%s", err);
}

static char *repeat(const char *head, const char *unit, size_t times, const char *tail) {
    size_t n = strlen(unit);
    char *html = malloc(strlen(head) + n * times + strlen(tail) + 1);
    cr_assert_not_null(html);
    char *w = html + sprintf(html, "%s", head);
    for (size_t i = 0; i < times; i++, w += n)
        memcpy(w, unit, n);
    strcpy(w, tail);
    return html;
}

static void too_complex(const char *html, const char *why) {
    html_page p;
    char err[256];
    cr_expect_eq(html_extract(html, strlen(html), NULL, &p, err, sizeof(err)), -E2BIG);
    cr_expect(strstr(err, "page too complex") && strstr(err, why), "%s", err);
}

/* gumbo is quadratic in nesting: 100,000 <div>s took 18.8 s. */
Test(html, nesting_deeper_than_512_is_too_complex) {
    char *deep = repeat("", "<div>", 20000, "deep");
    too_complex(deep, "nest more than 512 deep");
    free(deep);
    /* misnested formatting elements, each different: each <p> re-opens
     * every <b> */
    char *misnested = malloc(600 * 32 + 8), *w = misnested;
    cr_assert_not_null(misnested);
    for (int i = 0; i < 600; i++)
        w += sprintf(w, "<p><b class=c%d>", i);
    strcpy(w, "text");
    too_complex(misnested, "nest more than 512 deep");
    free(misnested);
}

/* What gumbo closes on its own is not counted: identical unclosed <b>s
 * (it keeps three), unclosed <a>s (a new one closes the last), <p>s closed
 * by blocks, <li>s, <tr>s and <td>s closed by the next. */
Test(html, elements_html_closes_on_its_own_do_not_add_up) {
    const char *units[] = {"<p><b>x",
                           "<a name=n>x",
                           "<p>x<div>y</div>",
                           "<li>x<li>y",
                           "<table><tr><td>x<td>y<tr><td>z</table>",
                           "<dt>x<dd>y",
                           "<select><option>x<option>y</select>"};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        char *html = repeat("<body>", units[i], 2000, "</body>");
        cr_expect_lt(html_nesting_depth(html, strlen(html), 512), 8, "%s", units[i]);
        html_page p;
        extract(html, NULL, &p);
        html_page_free(&p);
        free(html);
    }
}

Test(html, nesting_within_the_bound_is_kept) {
    char *html = repeat("", "<div>", 500, "deep");
    html_page p;
    extract(html, NULL, &p);
    cr_expect_str_eq(p.text, "deep");
    html_page_free(&p);
    free(html);
    /* closed, unclosed-by-design (<p>, <li>), void and raw-text elements do
     * not add up, nor do self-closed ones inside SVG */
    html = repeat("<ul>",
                  "<li><p>a<br><img src=x><div>b</div><script>if (a<b) x = '<div>';"
                  "</script><svg><path d='M0'/></svg><b>c</b>",
                  2000, "</ul>");
    cr_expect_lt(html_nesting_depth(html, strlen(html), 512), 5);
    extract(html, NULL, &p);
    html_page_free(&p);
    free(html);
}

Test(html, nesting_depth_counts_end_tags_closing_their_nearest_namesake) {
    const char *html = "<div><span><div><i>x</div></span><em><q>y";
    cr_expect_eq(html_nesting_depth(html, strlen(html), 512), 4);
    html = "<div><div><div><div><div><div>";
    cr_expect_eq(html_nesting_depth(html, strlen(html), 3), 4, "stops past the limit");
}

/* A page is a byte range, not a string: "<!" at its very end must not be
 * read past (fuzz_crawl found a strncmp reaching one byte beyond). */
Test(html, a_declaration_cut_at_the_end_of_the_page_is_not_read_past) {
    char *page = malloc(2);
    cr_assert_not_null(page);
    memcpy(page, "<!", 2);
    cr_expect_eq(html_nesting_depth(page, 2, 512), 0);
    free(page);
}

static dispatch_result classify(dispatch *d, const char *link) {
    dispatch_result r;
    char err[256];
    cr_assert_eq(dispatch_link(d, link, &r, err, sizeof(err)), 0, "%s: %s", link, err);
    return r;
}

Test(dispatch, links_go_to_crawlers_by_domain_with_pipeline_rules_first) {
    dispatch *d = dispatch_new();
    cr_assert_not_null(d);
    dispatch_result r = classify(d, "https://github.com/user/repo");
    cr_expect_eq(r.kind, CRAWL_GIT);
    cr_expect_str_eq(r.platform, "github");
    r = classify(d, "https://maximelabonne.medium.com/post-1");
    cr_expect_eq(r.kind, CRAWL_ARTICLE);
    cr_expect_str_eq(r.platform, "medium");
    cr_expect_str_eq(r.domain, "maximelabonne.medium.com");
    r = classify(d, "https://www.linkedin.com/posts/x");
    cr_expect_eq(r.kind, CRAWL_POST);
    r = classify(d, "https://example.org/blog/a.html");
    cr_expect_eq(r.kind, CRAWL_ARTICLE);
    cr_expect_str_eq(r.platform, "example.org");
    r = classify(d, "https://git.example.org/team/tool.git");
    cr_expect_eq(r.kind, CRAWL_GIT);
    r = classify(d, "file:///srv/repo");
    cr_expect_eq(r.kind, CRAWL_GIT);
    cr_expect_str_eq(r.domain, "local");
    r = classify(d, "demo/repos/twin-notes");
    cr_expect_eq(r.kind, CRAWL_GIT);
    r = classify(d, "https://notgithub.com/a");
    cr_expect_eq(r.kind, CRAWL_ARTICLE, "a domain matches itself and its subdomains only");

    char err[256];
    cr_assert_eq(dispatch_add(d, "example.org=git:forge", err, sizeof(err)), 0);
    r = classify(d, "https://code.example.org/x");
    cr_expect_eq(r.kind, CRAWL_GIT);
    cr_expect_str_eq(r.platform, "forge");
    cr_expect_neq(dispatch_add(d, "example.org=ftp", err, sizeof(err)), 0);
    cr_expect(strstr(err, "no crawler 'ftp'"), "%s", err);
    cr_expect_neq(dispatch_add(d, "=git", err, sizeof(err)), 0);
    cr_expect_neq(dispatch_link(d, "ftp://example.org/file", &r, err, sizeof(err)), 0);
    cr_expect(strstr(err, "no crawler takes"), "%s", err);
    dispatch_free(d);
}

Test(git, a_repository_becomes_its_text_files) {
    char dir[] = "/tmp/sluice-git-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd %s && git init -q r && cd r && mkdir -p src img && echo 'int x;' > src/a.c && "
             "printf 'hello\\n' > README.md && printf '\\211PNG\\r\\n\\032\\n' > img/logo.png && "
             "echo '{}' > package-lock.json && printf 'a\\000b' > blob.dat && "
             "head -c 3000 /dev/zero | tr '\\0' x > big.txt && printf '\\377\\376' > latin.txt && "
             "git add . && git -c user.name=t -c user.email=t@t commit -qm one",
             dir);
    cr_assert_eq(system(cmd), 0);
    char err[512], repo[600];
    cr_assert_eq(git_crawl_init(err, sizeof(err)), 0);
    snprintf(repo, sizeof(repo), "%s/r", dir);
    bson_t files = BSON_INITIALIZER;
    git_stats st;
    cr_assert_eq(git_crawl(repo, dir, 2000, &files, &st, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(st.kept, 2);
    cr_expect_eq(st.skipped_large, 1);
    cr_expect_eq(st.skipped_binary, 2, "blob.dat and latin.txt");
    cr_expect_eq(st.skipped_ignored, 2, "logo.png and package-lock.json");
    bson_iter_t it;
    cr_expect(bson_iter_init_find(&it, &files, "src/a.c"));
    cr_expect_str_eq(bson_iter_utf8(&it, NULL), "int x;\n");
    cr_expect(bson_iter_init_find(&it, &files, "README.md"));
    bson_destroy(&files);

    /* A file:// URL is cloned (bare, no checkout) and gives the same files. */
    bson_t cloned = BSON_INITIALIZER;
    char url[700];
    snprintf(url, sizeof(url), "file://%s", repo);
    cr_assert_eq(git_crawl(url, dir, 2000, &cloned, &st, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(st.kept, 2);
    bson_destroy(&cloned);

    bson_t none = BSON_INITIALIZER;
    snprintf(url, sizeof(url), "%s/not-a-repo", dir);
    cr_expect_neq(git_crawl(url, dir, 2000, &none, &st, err, sizeof(err)), 0);
    cr_expect(strstr(err, "not-a-repo"), "%s", err);
    bson_destroy(&none);
    char name[64];
    git_repo_name("https://github.com/user/tool.git", name, sizeof(name));
    cr_expect_str_eq(name, "tool");
    git_repo_name("/srv/repos/notes/", name, sizeof(name));
    cr_expect_str_eq(name, "notes");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

static void redacted(const char *url, const char *want) {
    char out[256];
    web_redact_url(url, out, sizeof(out));
    cr_expect_str_eq(out, want, "%s", url);
}

Test(web, credentials_in_links_are_masked_and_nothing_else) {
    redacted("https://example.com/a?k=S3cret&kind=x", "https://example.com/a?k=***&kind=x");
    redacted("https://example.com/a?api_key=S3cret&page=2#top",
             "https://example.com/a?api_key=***&page=2#top");
    redacted("https://example.com/a?page=2&access_token=abc&X-Amz-Signature=f00&sig=1",
             "https://example.com/a?page=2&access_token=***&X-Amz-Signature=***&sig=***");
    redacted("https://ada:pa55@example.com/repo.git?Password=x",
             "https://ada:***@example.com/repo.git?Password=***");
    redacted("https://example.com/a#frag?token=x", "https://example.com/a#frag?token=x");
    redacted("/local/path", "/local/path");
}

Test(web, credentials_are_masked_in_messages_that_quote_the_link) {
    char text[200] = "cannot open '/srv/x.git?token=S3cret&k=1' for ada:pa55word: S3cret";
    web_redact_text(text, sizeof(text), "https://ada:pa55word@h/x.git?token=S3cret&k=1");
    cr_expect_str_eq(text, "cannot open '/srv/x.git?token=***&k=1' for ada:***: ***");
}
