/*
 * config: parser for the AWS shared config and credentials files
 * (~/.aws/config, ~/.aws/credentials), accepting exactly what the AWS CLI
 * (botocore on Python's configparser.RawConfigParser) accepts.
 *
 *   aws_config_file f;
 *   aws_config_file_init(&f);
 *   if (!aws_config_parse(buf, len, "~/.aws/config", &f, &err))
 *       ... err.message is "~/.aws/config:12: duplicate key 'region' ..." ...
 *   for (size_t i = 0; i < f.section_count; i++) ... f.sections[i] ...
 *   aws_config_file_clean(&f);
 *
 * Input is a buffer (no file access here), so the parser is fuzzable.
 *
 * Rules (configparser + botocore, strict mode, no interpolation):
 *   - Lines end at "\n", "\r\n" or "\r".  A UTF-8 byte order mark at the very
 *     start is skipped.  Invalid UTF-8 or a NUL byte is an error (the CLI
 *     fails to decode such a file).
 *   - A line whose first non-blank character is '#' or ';' is a comment.
 *     There are no inline comments: "region = x # y" has the value "x # y".
 *   - "[name]" (leading blanks allowed) opens a section; the name is
 *     everything between the first '[' and the LAST ']' of the line, kept
 *     verbatim (so "[ a ]" is the section " a "); text after that ']' is
 *     ignored.  A section may appear only once per file.  [DEFAULT] is
 *     configparser's defaults section: it may repeat, is not reported as a
 *     section, and its keys are added to every section that lacks them.
 *   - "key = value" or "key: value": split at the first '=' or ':'; the key
 *     is right-trimmed and lower-cased (ASCII), the value trimmed.  An empty
 *     key, a line with neither delimiter, or a key before any section header
 *     is an error.  A key may appear only once per section.
 *   - A line indented deeper than the key line that started the current
 *     value continues that value (joined with "\n", blank lines inside kept,
 *     trailing blank lines dropped).  Lines right after a section header
 *     are never continuations.  Comment lines inside a value are skipped.
 *   - Sub-sections (botocore): when a value is empty on its key line and
 *     continues on indented lines ("s3 =\n  addressing_style = path"), each
 *     non-blank continuation line must be "subkey = value" (split at the
 *     first '=' only; subkeys keep their case; a repeated subkey replaces
 *     the earlier one).  A line without '=' is an error.
 *
 * Error messages name the file and line and never quote the offending line
 * (it may hold a secret key).
 */
#ifndef LUMU_AWS_CONFIG_H
#define LUMU_AWS_CONFIG_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>

/* How botocore reads a section header of the CONFIG file (the credentials
 * file uses raw section names: profile = header). */
typedef enum aws_config_kind {
    AWS_CONFIG_OTHER = 0,      /* anything else ("preview", "plugins", ...) */
    AWS_CONFIG_PROFILE,        /* "default", or "profile NAME" */
    AWS_CONFIG_SSO_SESSION,    /* "sso-session NAME" */
    AWS_CONFIG_SERVICES,       /* "services NAME" */
    AWS_CONFIG_IGNORED         /* starts with profile/sso-session/services but
                                  is not exactly two shell words: botocore drops it */
} aws_config_kind;

typedef struct aws_config_entry {
    char *key;                      /* lower-cased for top-level keys */
    char *value;                    /* the joined value ("" allowed) */
    size_t line;                    /* 1-based line of the key */
    bool nested;                    /* value was a sub-section: see sub[] */
    struct aws_config_entry *sub;   /* nested entries (sub[i].sub == NULL) */
    size_t sub_count;
} aws_config_entry;

typedef struct aws_config_section {
    char *header;                   /* text between the brackets, verbatim */
    aws_config_kind kind;
    char *name;                     /* profile / session / services name, else NULL */
    size_t line;
    aws_config_entry *entries;      /* in file order, then [DEFAULT] keys */
    size_t entry_count;
} aws_config_section;

typedef struct aws_config_file {
    aws_config_section *sections;   /* in file order ([DEFAULT] excluded) */
    size_t section_count;
} aws_config_file;

void aws_config_file_init(aws_config_file *f);

/* Frees everything f owns and re-initializes it (idempotent). */
void aws_config_file_clean(aws_config_file *f);

/* Parses len bytes of buf (NUL bytes inside are an error, not an end).
 * filename (NULL = "<config>") is only used in error messages.  f must be
 * initialized; previous contents are freed first.  On failure f is left
 * empty and err is filled: AWS_ERR_PARSE "FILE:LINE: what", or
 * AWS_ERR_NO_MEMORY. */
bool aws_config_parse(const char *buf, size_t len, const char *filename, aws_config_file *f,
                      aws_error *err);

/* Classifies a config-file section header as botocore does.  When the kind
 * is PROFILE / SSO_SESSION / SERVICES the name is returned in *name
 * (allocated; caller frees with aws_free).  Returns false only on no
 * memory. */
bool aws_config_classify(const char *header, aws_config_kind *kind, char **name, aws_error *err);

/* Python's shlex.split (POSIX mode, no comments) of s into at most max
 * words, each allocated (caller frees).  *count receives the number of words
 * (may exceed max: only the first max are stored).  Returns false with
 * AWS_ERR_PARSE on an unterminated quote or a trailing backslash, or on no
 * memory; no words are left allocated then. */
bool aws_config_shlex(const char *s, char **words, size_t max, size_t *count, aws_error *err);

/* The entry with this key in a section (or in a nested entry list), or NULL. */
const aws_config_entry *aws_config_find(const aws_config_entry *entries, size_t count,
                                        const char *key);

#endif
