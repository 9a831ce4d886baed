/*
 * lazy_archive: the libarchive functions lumu uses, forwarded to
 * libarchive.so.13 loaded on first use (see lazylib.h).  lua/l_archive.c
 * checks availability when the module is opened.
 */
#include "lazylib.h"

#include <archive.h>
#include <archive_entry.h>

#define ARCHIVE_SYMBOLS(X)                                                               \
    X(archive_entry_clear)                                                               \
    X(archive_entry_filetype)                                                            \
    X(archive_entry_free)                                                                \
    X(archive_entry_hardlink)                                                            \
    X(archive_entry_is_encrypted)                                                        \
    X(archive_entry_mtime)                                                               \
    X(archive_entry_new)                                                                 \
    X(archive_entry_pathname)                                                            \
    X(archive_entry_pathname_utf8)                                                       \
    X(archive_entry_perm)                                                                \
    X(archive_entry_set_filetype)                                                        \
    X(archive_entry_set_mtime)                                                           \
    X(archive_entry_set_pathname_utf8)                                                   \
    X(archive_entry_set_perm)                                                            \
    X(archive_entry_set_size)                                                            \
    X(archive_entry_size)                                                                \
    X(archive_entry_size_is_set)                                                         \
    X(archive_entry_symlink)                                                             \
    X(archive_error_string)                                                              \
    X(archive_format_name)                                                               \
    X(archive_read_data)                                                                 \
    X(archive_read_free)                                                                 \
    X(archive_read_new)                                                                  \
    X(archive_read_next_header)                                                          \
    X(archive_read_open_memory)                                                          \
    X(archive_read_support_filter_gzip)                                                  \
    X(archive_read_support_filter_none)                                                  \
    X(archive_read_support_format_tar)                                                   \
    X(archive_read_support_format_zip)                                                   \
    X(archive_read_support_format_zip_seekable)                                          \
    X(archive_version_details)                                                           \
    X(archive_write_close)                                                               \
    X(archive_write_data)                                                                \
    X(archive_write_finish_entry)                                                        \
    X(archive_write_free)                                                                \
    X(archive_write_header)                                                              \
    X(archive_write_new)                                                                 \
    X(archive_write_open)                                                                \
    X(archive_write_set_bytes_in_last_block)                                             \
    X(archive_write_set_format_option)                                                   \
    X(archive_write_set_format_zip)

LUMU_LAZY_DEFINE(lumu_lazy_archive, "archive", "libarchive.so.13", ARCHIVE_SYMBOLS);

#define FN(name) LUMU_LAZY_FN(lumu_lazy_archive, name)

/* archive_entry.h */

LUMU_LAZY_SHIM __LA_MODE_T archive_entry_filetype(struct archive_entry *e)
{
    return FN(archive_entry_filetype)(e);
}

LUMU_LAZY_SHIM const char *archive_entry_hardlink(struct archive_entry *e)
{
    return FN(archive_entry_hardlink)(e);
}

LUMU_LAZY_SHIM const char *archive_entry_pathname(struct archive_entry *e)
{
    return FN(archive_entry_pathname)(e);
}

LUMU_LAZY_SHIM const char *archive_entry_pathname_utf8(struct archive_entry *e)
{
    return FN(archive_entry_pathname_utf8)(e);
}

LUMU_LAZY_SHIM __LA_MODE_T archive_entry_perm(struct archive_entry *e)
{
    return FN(archive_entry_perm)(e);
}

LUMU_LAZY_SHIM la_int64_t archive_entry_size(struct archive_entry *e)
{
    return FN(archive_entry_size)(e);
}

LUMU_LAZY_SHIM int archive_entry_size_is_set(struct archive_entry *e)
{
    return FN(archive_entry_size_is_set)(e);
}

LUMU_LAZY_SHIM const char *archive_entry_symlink(struct archive_entry *e)
{
    return FN(archive_entry_symlink)(e);
}

LUMU_LAZY_SHIM struct archive_entry *archive_entry_clear(struct archive_entry *e)
{
    return FN(archive_entry_clear)(e);
}

LUMU_LAZY_SHIM void archive_entry_free(struct archive_entry *e)
{
    FN(archive_entry_free)(e);
}

LUMU_LAZY_SHIM int archive_entry_is_encrypted(struct archive_entry *e)
{
    return FN(archive_entry_is_encrypted)(e);
}

LUMU_LAZY_SHIM time_t archive_entry_mtime(struct archive_entry *e)
{
    return FN(archive_entry_mtime)(e);
}

LUMU_LAZY_SHIM struct archive_entry *archive_entry_new(void)
{
    return FN(archive_entry_new)();
}

LUMU_LAZY_SHIM void archive_entry_set_filetype(struct archive_entry *e, unsigned int type)
{
    FN(archive_entry_set_filetype)(e, type);
}

LUMU_LAZY_SHIM void archive_entry_set_mtime(struct archive_entry *e, time_t t, long ns)
{
    FN(archive_entry_set_mtime)(e, t, ns);
}

LUMU_LAZY_SHIM void archive_entry_set_pathname_utf8(struct archive_entry *e, const char *name)
{
    FN(archive_entry_set_pathname_utf8)(e, name);
}

LUMU_LAZY_SHIM void archive_entry_set_perm(struct archive_entry *e, __LA_MODE_T perm)
{
    FN(archive_entry_set_perm)(e, perm);
}

LUMU_LAZY_SHIM void archive_entry_set_size(struct archive_entry *e, la_int64_t size)
{
    FN(archive_entry_set_size)(e, size);
}

/* archive.h */

LUMU_LAZY_SHIM const char *archive_error_string(struct archive *a)
{
    return FN(archive_error_string)(a);
}

LUMU_LAZY_SHIM const char *archive_format_name(struct archive *a)
{
    return FN(archive_format_name)(a);
}

LUMU_LAZY_SHIM la_ssize_t archive_read_data(struct archive *a, void *buf, size_t n)
{
    return FN(archive_read_data)(a, buf, n);
}

LUMU_LAZY_SHIM int archive_read_free(struct archive *a)
{
    return FN(archive_read_free)(a);
}

LUMU_LAZY_SHIM struct archive *archive_read_new(void)
{
    return FN(archive_read_new)();
}

LUMU_LAZY_SHIM int archive_read_next_header(struct archive *a, struct archive_entry **e)
{
    return FN(archive_read_next_header)(a, e);
}

LUMU_LAZY_SHIM int archive_read_open_memory(struct archive *a, const void *buff, size_t size)
{
    return FN(archive_read_open_memory)(a, buff, size);
}

LUMU_LAZY_SHIM int archive_read_support_filter_gzip(struct archive *a)
{
    return FN(archive_read_support_filter_gzip)(a);
}

LUMU_LAZY_SHIM int archive_read_support_filter_none(struct archive *a)
{
    return FN(archive_read_support_filter_none)(a);
}

LUMU_LAZY_SHIM int archive_read_support_format_tar(struct archive *a)
{
    return FN(archive_read_support_format_tar)(a);
}

LUMU_LAZY_SHIM int archive_read_support_format_zip(struct archive *a)
{
    return FN(archive_read_support_format_zip)(a);
}

LUMU_LAZY_SHIM const char *archive_version_details(void)
{
    return FN(archive_version_details)();
}

LUMU_LAZY_SHIM int archive_read_support_format_zip_seekable(struct archive *a)
{
    return FN(archive_read_support_format_zip_seekable)(a);
}

LUMU_LAZY_SHIM int archive_write_close(struct archive *a)
{
    return FN(archive_write_close)(a);
}

LUMU_LAZY_SHIM la_ssize_t archive_write_data(struct archive *a, const void *buf, size_t n)
{
    return FN(archive_write_data)(a, buf, n);
}

LUMU_LAZY_SHIM int archive_write_finish_entry(struct archive *a)
{
    return FN(archive_write_finish_entry)(a);
}

LUMU_LAZY_SHIM int archive_write_free(struct archive *a)
{
    return FN(archive_write_free)(a);
}

LUMU_LAZY_SHIM int archive_write_header(struct archive *a, struct archive_entry *e)
{
    return FN(archive_write_header)(a, e);
}

LUMU_LAZY_SHIM struct archive *archive_write_new(void)
{
    return FN(archive_write_new)();
}

LUMU_LAZY_SHIM int archive_write_open(struct archive *a, void *client, archive_open_callback *open,
                                      archive_write_callback *write, archive_close_callback *close)
{
    return FN(archive_write_open)(a, client, open, write, close);
}

LUMU_LAZY_SHIM int archive_write_set_bytes_in_last_block(struct archive *a, int n)
{
    return FN(archive_write_set_bytes_in_last_block)(a, n);
}

LUMU_LAZY_SHIM int archive_write_set_format_option(struct archive *a, const char *m, const char *o, const char *v)
{
    return FN(archive_write_set_format_option)(a, m, o, v);
}

LUMU_LAZY_SHIM int archive_write_set_format_zip(struct archive *a)
{
    return FN(archive_write_set_format_zip)(a);
}
