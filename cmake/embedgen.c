/*
 * embedgen: build-time generator that turns files into C byte arrays.
 *
 *   embedgen OUT.c PREFIX ROOT FILE...
 *
 * Writes OUT.c defining `const lumu_embed_entry PREFIX[]` (terminated by a
 * zeroed entry).  For every FILE (a path below ROOT):
 *   - name:  the Lua module name (ROOT/lumu/cli.lua -> "lumu.cli",
 *            ROOT/lumu/cli/init.lua -> "lumu.cli"), or the relative path for
 *            files that are not .lua
 *   - chunk: "@" + basename(ROOT) + "/" + relative path, e.g.
 *            "@stdlib/lumu/cli.lua", so tracebacks look like file paths
 *   - data/size: the file's bytes (NUL-terminated for convenience; size
 *            excludes the terminator); for a .lua file its Lua bytecode
 * Entries are written in the order given; the caller sorts them so the output
 * is deterministic.  Only this build tool uses stdio; it is never linked into
 * lumu.
 *
 * .lua files are embedded as bytecode, compiled here with the Lua that lumu
 * links (so the format matches) and dumped WITH debug information: chunk
 * name and line numbers stay in tracebacks and error messages.  Loading
 * bytecode at start-up is several times faster than compiling the source
 * (tests/bench/startup.sh).  A syntax error in the stdlib fails the build.
 */
#include <lauxlib.h>
#include <lua.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "embedgen: %s: %s\n", what, path);
    return 1;
}

/* True when the file root/rel exists. */
static int file_exists(const char *root, int rootlen, const char *rel)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%.*s/%s", rootlen, root, rel);
    if (n < 0 || (size_t)n >= sizeof path)
        return 0;
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

/* Derives the module name of a relative path into buf (size n), as
 * package.path ("?.lua;?/init.lua") would find it: a/b/init.lua is module
 * "a.b" unless a/b.lua exists (which require("a.b") finds first); then it
 * is "a.b.init". */
static void module_name(const char *root, int rootlen, const char *rel, char *buf, size_t n)
{
    size_t len = strlen(rel);
    snprintf(buf, n, "%s", rel);
    if (len > 4 && strcmp(rel + len - 4, ".lua") == 0) {
        buf[len - 4] = '\0';
        len -= 4;
        if (len > 5 && strcmp(buf + len - 5, "/init") == 0) {
            char sibling[1024];
            snprintf(sibling, sizeof sibling, "%.*s.lua", (int)(len - 5), buf);
            if (!file_exists(root, rootlen, sibling))
                buf[len - 5] = '\0';
        }
        for (char *p = buf; *p; p++)
            if (*p == '/')
                *p = '.';
    }
}

typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
} bytes;

/* Appends n bytes; 1 on no memory. */
static int add_bytes(bytes *b, const void *p, size_t n)
{
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n < n)
            cap *= 2;
        unsigned char *np = realloc(b->p, cap);
        if (!np)
            return 1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    return add_bytes(ud, p, n);
}

/* The bytes to embed for path into *out: the file, or for a .lua file its
 * bytecode with debug information, compiled under the chunk name `chunk`.
 * Returns 0, or 1 after printing why. */
static int file_bytes(const char *path, const char *chunk, bytes *out)
{
    FILE *in = fopen(path, "rb");
    if (!in)
        return fail("cannot open", path);
    bytes src = {0};
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (add_bytes(&src, buf, n)) {
            fclose(in);
            free(src.p);
            return fail("out of memory", path);
        }
    int err = ferror(in);
    fclose(in);
    if (err) {
        free(src.p);
        return fail("read error", path);
    }
    size_t len = strlen(path);
    if (len < 4 || strcmp(path + len - 4, ".lua") != 0) {
        *out = src;
        return 0;
    }
    lua_State *L = luaL_newstate();
    if (!L) {
        free(src.p);
        return fail("out of memory", path);
    }
    int rc = luaL_loadbufferx(L, src.p ? (const char *)src.p : "", src.n, chunk, "t");
    free(src.p);
    if (rc != LUA_OK) {
        fprintf(stderr, "embedgen: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    bytes bc = {0};
    if (lua_dump(L, dump_writer, &bc, 0 /* keep debug information */) != 0) {
        lua_close(L);
        free(bc.p);
        return fail("cannot dump", path);
    }
    lua_close(L);
    *out = bc;
    return 0;
}

/* Writes s_data_<idx> for path; *size = its length.  0, or 1 on failure. */
static int emit_file(FILE *out, const char *path, const char *chunk, size_t idx, long *size)
{
    bytes b = {0};
    if (file_bytes(path, chunk, &b))
        return 1;
    fprintf(out, "static const unsigned char s_data_%zu[] = {", idx);
    for (size_t i = 0; i < b.n; i++) {
        if (i % 16 == 0)
            fputs("\n ", out);
        fprintf(out, "%d,", b.p[i]);
    }
    fputs("0};\n", out);
    *size = (long)b.n;
    free(b.p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: embedgen OUT.c PREFIX ROOT FILE...\n");
        return 2;
    }
    const char *outpath = argv[1], *prefix = argv[2], *root = argv[3];
    size_t rootlen = strlen(root);
    while (rootlen > 1 && root[rootlen - 1] == '/')
        rootlen--;
    const char *base = root + rootlen;
    while (base > root && base[-1] != '/')
        base--;
    int baselen = (int)(root + rootlen - base);

    FILE *out = fopen(outpath, "w");
    if (!out)
        return fail("cannot write", outpath);
    fputs("/* Generated by cmake/embedgen.c: do not edit. */\n"
          "#include \"embed.h\"\n",
          out);
    long *sizes = calloc((size_t)argc, sizeof *sizes);
    if (!sizes) {
        fclose(out);
        remove(outpath);
        return fail("out of memory", outpath);
    }
    for (int i = 4; i < argc; i++) {
        const char *path = argv[i];
        if (strncmp(path, root, rootlen) != 0 || path[rootlen] != '/') {
            fclose(out);
            remove(outpath);
            free(sizes);
            return fail("file is not below ROOT", path);
        }
        char chunk[4200];
        snprintf(chunk, sizeof chunk, "@%.*s/%s", baselen, base, path + rootlen + 1);
        if (emit_file(out, path, chunk, (size_t)(i - 4), &sizes[i])) {
            fclose(out);
            remove(outpath);
            free(sizes);
            return 1;
        }
    }
    fprintf(out, "const lumu_embed_entry %s[] = {\n", prefix);
    for (int i = 4; i < argc; i++) {
        const char *rel = argv[i] + rootlen + 1;
        char name[512];
        module_name(root, (int)rootlen, rel, name, sizeof name);
        fprintf(out, "  {\"%s\", \"@%.*s/%s\", s_data_%d, %ld},\n", name, baselen,
                base, rel, i - 4, sizes[i]);
    }
    free(sizes);
    fputs("  {0, 0, 0, 0}\n};\n", out);
    if (fclose(out) != 0)
        return fail("write error", outpath);
    return 0;
}
