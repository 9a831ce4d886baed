/* Embedded files table, written at build time by cmake/embedgen.c. */
#ifndef LUMU_EMBED_H
#define LUMU_EMBED_H

#include <stddef.h>

typedef struct lumu_embed_entry {
    const char *name;          /* module name, e.g. "lumu.cli" */
    const char *chunk;         /* chunk name, e.g. "@stdlib/lumu/cli.lua" */
    const unsigned char *data; /* Lua bytecode (luaU_dump with debug
                                  info) of the file, NUL-terminated */
    long size;                 /* bytes, without the terminator */
} lumu_embed_entry;

/* The stdlib/ tree; terminated by an entry whose name is NULL. */
extern const lumu_embed_entry lumu_stdlib[];

#endif
