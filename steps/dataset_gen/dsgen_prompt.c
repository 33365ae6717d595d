/* dsgen_prompt.c - the API path's messages and the reading of the answers
 * (dsgen_prompt.h). The prompts follow the structure of the LLM Engineer's
 * Handbook's InstructionDatasetGenerator and PreferenceDatasetGenerator
 * (llm_engineering/application/dataset/generation.py): a system message
 * naming what is generated, then the task, its rules, one example, the
 * JSON structure wanted and the extract last. */
#include "dsgen_prompt.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char system_instruction[] =
    "You are a helpful assistant who generates instruction-answer pairs based on the given "
    "context. Provide your response in JSON format.";
static const char system_preference[] =
    "You are a helpful assistant who generates instruction-answer triples based on the given "
    "context. Provide your response in JSON format.";

/* A user message: "Based on the following extract, generate N ", the
 * kind's task, the JSON rule, the kind's structure, "Extract:" and the
 * extract. */
static const char json_rule[] =
    "Structure the answer in JSON format, ready to be loaded by a JSON parser, as a list of "
    "objects (where an object is required, an object whose only key \"samples\" holds that list). "
    "Do not add any extra characters and provide your response in JSON format with the following "
    "structure:\n";

static const char user_instruction[] =
    "instruction-answer pairs. Each instruction "
    "must ask to write about a specific topic contained in the context. Each answer must provide "
    "a relevant paragraph based on the information found in the context. Only use concepts from "
    "the context to generate the instructions. Instructions must never explicitly mention a "
    "context, a system, a course, or an extract. Instructions must be self-contained and general. "
    "Answers must imitate the writing style of the context.\n"
    "\n"
    "Example instruction: Explain the concept of tax.\n"
    "Example answer: Tax is a compulsory contribution to state revenue, levied by the government "
    "on workers' income and business profits, or added to the cost of some goods, services, and "
    "transactions.\n"
    "\n";
static const char structure_instruction[] = "[\n"
                                            "    {\"instruction\": \"...\", \"answer\": \"...\"},\n"
                                            "    ...\n"
                                            "]\n";

static const char user_preference[] =
    "instruction-answer triples. Each triple should "
    "consist of:\n"
    "1. An instruction asking about a specific topic in the context.\n"
    "2. A generated answer that attempts to answer the instruction based on the context, named "
    "as 'rejected'.\n"
    "3. An extracted answer that is a relevant excerpt directly from the given context, named as "
    "'chosen'.\n"
    "\n"
    "Instructions must be self-contained and general, without explicitly mentioning a context, "
    "system, course, or extract.\n"
    "\n"
    "Important:\n"
    "- Ensure that the extracted answer, the chosen one, is a verbatim copy from the context, "
    "including all punctuation and apostrophes.\n"
    "- Do not add any ellipsis (...) or [...] to indicate skipped text in the extracted answer.\n"
    "- If the relevant text is not continuous, use two separate sentences from the context "
    "instead of skipping text.\n"
    "\n";
static const char structure_preference[] = "[\n"
                                           "    {\n"
                                           "        \"instruction\": \"...\",\n"
                                           "        \"rejected\": \"...\",\n"
                                           "        \"chosen\": \"...\"\n"
                                           "    },\n"
                                           "    ...\n"
                                           "]\n";

const char *dsgen_system_prompt(dsgen_kind kind) {
    return kind == DSGEN_PREFERENCE ? system_preference : system_instruction;
}

char *dsgen_user_prompt(dsgen_kind kind, size_t pairs, const char *extract) {
    int pref = kind == DSGEN_PREFERENCE;
    const char *task = pref ? user_preference : user_instruction;
    const char *structure = pref ? structure_preference : structure_instruction;
    static const char fmt[] = "Based on the following extract, generate %zu %s%s%s\nExtract:\n%s\n";
    int n = snprintf(NULL, 0, fmt, pairs, task, json_rule, structure, extract);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        snprintf(s, (size_t)n + 1, fmt, pairs, task, json_rule, structure, extract);
    return s;
}

/* A string field of an item, non-empty, or NULL. */
static const char *field(const bson_t *item, const char *key) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, item, key) || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    const char *s = bson_iter_utf8(&it, NULL);
    for (const char *p = s; *p; p++)
        if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
            return s;
    return NULL;
}

static void item(dsgen_set *set, size_t source, const char *category, const bson_t *obj,
                 const char *extract, dsgen_parsed *out, int *rc) {
    int pref = set->kind == DSGEN_PREFERENCE;
    const char *instruction = field(obj, "instruction");
    const char *answer = field(obj, pref ? "chosen" : "answer");
    const char *rejected = pref ? field(obj, "rejected") : NULL;
    if (!instruction || !answer || (pref && !rejected)) {
        set->dropped[DSGEN_DROP_MISSING_FIELD]++;
        return;
    }
    int added = dsgen_set_add(set, source, category, instruction, answer, rejected);
    if (added < 0) {
        *rc = added;
        return;
    }
    out->kept += added;
    if (added && pref && extract && !strstr(extract, answer))
        out->not_verbatim++;
}

/* The list: the document's "items" (the bare list wrapped), or the one
 * array among an object's values. */
static int find_list(const bson_t *doc, int wrapped, bson_iter_t *list) {
    bson_iter_t it;
    if (wrapped)
        return bson_iter_init_find(&it, doc, "items") && BSON_ITER_HOLDS_ARRAY(&it) &&
               bson_iter_recurse(&it, list);
    int found = 0;
    if (!bson_iter_init(&it, doc))
        return 0;
    while (bson_iter_next(&it))
        if (BSON_ITER_HOLDS_ARRAY(&it)) {
            if (found++)
                return 0; /* two lists: which one is meant? */
            bson_iter_recurse(&it, list);
        }
    return found == 1;
}

int dsgen_parse_response(dsgen_set *set, size_t source, const char *category, const char *content,
                         const char *extract, dsgen_parsed *out) {
    memset(out, 0, sizeof(*out));
    const char *s = content ? content : "";
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", s[n - 1]))
        n--;
    while (n && strchr(" \t\r\n", *s))
        s++, n--;
    /* A fence: ```json ... ``` (or bare ```). */
    if (n >= 6 && strncmp(s, "```", 3) == 0 && strncmp(s + n - 3, "```", 3) == 0) {
        const char *nl = memchr(s, '\n', n);
        if (nl) {
            n = (size_t)(s + n - 3 - (nl + 1));
            s = nl + 1;
        }
    }
    int wrapped = n > 0 && s[0] == '[';
    char *text = malloc(n + 16);
    if (!text)
        return -ENOMEM;
    int len = snprintf(text, n + 16, wrapped ? "{\"items\": %.*s}" : "%.*s", (int)n, s);
    bson_t doc;
    bson_error_t error;
    if (n == 0 || (!wrapped && s[0] != '{') || !bson_init_from_json(&doc, text, len, &error)) {
        free(text);
        /* A list or object that never closes: the model ran out of tokens. */
        int open = n > 0 && (s[0] == '[' || s[0] == '{') && s[n - 1] != ']' && s[n - 1] != '}';
        set->dropped[open ? DSGEN_DROP_TRUNCATED : DSGEN_DROP_NOT_JSON]++;
        return 0;
    }
    free(text);
    bson_iter_t list;
    if (!find_list(&doc, wrapped, &list)) {
        /* One object of the kind's fields, not in a list: read it as one. */
        if (field(&doc, "instruction")) {
            int rc = 0;
            out->items = 1;
            item(set, source, category, &doc, extract, out, &rc);
            bson_destroy(&doc);
            return rc;
        }
        bson_destroy(&doc);
        set->dropped[DSGEN_DROP_WRONG_SHAPE]++;
        return 0;
    }
    int rc = 0;
    while (rc == 0 && bson_iter_next(&list)) {
        out->items++;
        const uint8_t *data;
        uint32_t dlen;
        bson_t obj;
        if (!BSON_ITER_HOLDS_DOCUMENT(&list)) {
            set->dropped[DSGEN_DROP_WRONG_SHAPE]++;
            continue;
        }
        bson_iter_document(&list, &dlen, &data);
        if (!bson_init_static(&obj, data, dlen)) {
            set->dropped[DSGEN_DROP_WRONG_SHAPE]++;
            continue;
        }
        item(set, source, category, &obj, extract, out, &rc);
    }
    bson_destroy(&doc);
    return rc;
}
